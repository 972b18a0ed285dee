"""`excap bench capture`: the recorder under a camera load produced by another process, beside the alternatives."""
