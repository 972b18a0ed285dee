"""Argument types shared by the `excap` sub-commands."""

import argparse
from collections.abc import Callable


def positive(kind: type) -> Callable[[str], float]:
    """An argparse type: `kind(text)`, refused unless greater than zero."""
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value
    return parse


def non_negative(kind: type) -> Callable[[str], float]:
    """An argparse type: `kind(text)`, refused if below zero or not finite."""
    def parse(text: str) -> float:
        value = kind(text)
        if not value >= 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be zero or more, not {text}")
        return value
    return parse
