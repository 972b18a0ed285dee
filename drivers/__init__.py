"""Device drivers and the simulated machines: plain Python objects that produce timestamped samples."""

if __name__ != "excap.drivers":
    raise ImportError(f"the drivers are imported as 'excap.drivers', not as {__name__!r}")
