"""excap as a ROS 2 node: records ROS topics and/or drives the simulated machine, with services to run episodes.

Import `capture_node.ros.env` (or call `prepare_ros_environment()`) before importing rclpy.
"""
