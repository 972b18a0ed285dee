"""Conversion between episodes and other recordings (CAN logs)."""
