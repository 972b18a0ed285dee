"""The `excap` command line, one module per command group."""
