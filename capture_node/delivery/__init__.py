"""Authenticated delivery to partners: partner keys and grants, the partner HTTP API, S3 push and pull."""
