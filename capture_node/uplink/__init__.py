"""Station uplink: finished episodes to an S3-compatible object store, resumable and verified by SHA-256.

`queue` picks the episodes that may go (final, validated `.h5` files), `state` keeps one small JSON state file per
episode under DIR/.excap/uplink/ (upload id, parts done with their ETags and SHA-256), `transfer` runs the
multipart upload (boto3, imported lazily: the `delivery` extra) with bounded retries and an optional bandwidth
cap, `retention` deletes local episodes only after their remote copy is verified, `status` summarises the
queue for `excap upload --status` and the station page (no boto3), and `runner` ties a pass together.
"""
