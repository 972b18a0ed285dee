"""What every layer uses: the one clock, excap's errors, YAML files and private state folders."""
