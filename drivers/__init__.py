"""Device drivers and the simulated machine: plain Python objects that produce timestamped samples."""
