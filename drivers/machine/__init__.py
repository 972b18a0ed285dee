"""Machine profiles, the mapping from sticks to machine functions, and the command link to the machine."""
