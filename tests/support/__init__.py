"""Importable helpers shared by the tests (no tests here)."""
