"""Recording: bounded queues into the episode writer, crash recovery, disk-space watch."""
