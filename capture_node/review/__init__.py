"""Reviewing episodes: task-phase annotation, plots, review videos and panels."""
