"""The SQLite catalogue of a folder of episodes, and selections of it."""
