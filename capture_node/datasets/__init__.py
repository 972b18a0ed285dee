"""Datasets built from episode folders: a catalogue, an operator registry, and exports for learning frameworks."""
