"""excap as a ROS 2 node: runs a station config's devices, publishes them, records them and ROS topics on services.

Import `excap.ros.env` (or call `prepare_ros_environment()`) before importing rclpy.
"""
