"""What every layer uses: the one clock, excap's errors, YAML files, private state folders and worker threads."""
