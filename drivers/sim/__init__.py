"""The simulated excavator: kinematics, J1939 traffic, rendered cameras and a scripted operator."""
