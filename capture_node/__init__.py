"""excap capture node: one clock, bounded queues, crash-safe journal and HDF5 episodes."""

__version__ = "0.1.0"

__all__ = ["__version__"]
