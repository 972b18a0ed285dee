"""Reading objects of an S3-compatible store: a seekable file object over Range GETs (`ranged`) and a download to
a local cache verified against the object's SHA-256 (`fetch`).

The functions take a client object (boto3's S3 client, created by the caller) and never import boto3 themselves.
Importing the package imports nothing else.
"""
