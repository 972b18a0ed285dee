"""excap_recorder at a station: runs the devices of a station config (schema: excap.station) and records
them and the ROS topics of its `ros:` section.

`ros2 launch excap excap_station.launch.py station_config:=/etc/excap/station.yaml operator:=op-17`
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    example = os.path.join(get_package_share_directory("excap"), "launch", "excap_station.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("station_config", default_value=example,
                              description="station config (schema: excap.station, with a ros: section)"),
        DeclareLaunchArgument("operator", default_value="",
                              description="pseudonymous operator id (empty: the station config's session.operator)"),
        DeclareLaunchArgument("task", default_value="",
                              description="task of the demonstrations (empty: the station config's session.task)"),
        Node(
            package="excap",
            executable="excap_node",
            name="excap_recorder",
            output="screen",
            parameters=[{
                "station_config": LaunchConfiguration("station_config"),
                "operator": LaunchConfiguration("operator"),
                "task": LaunchConfiguration("task"),
            }],
        ),
    ])
