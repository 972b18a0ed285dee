"""The episode format: metadata, schema, HDF5 writer, journal, reader, steps and validation."""
