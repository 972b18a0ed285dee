"""excap_recorder at a station: records the station's ROS topics as set in a station file.

`ros2 launch excap excap_station.launch.py station_config:=/etc/excap/station.yaml operator:=op-17`
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    example = os.path.join(get_package_share_directory("excap"), "launch", "excap_station.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("station_config", default_value=example,
                              description="station file (schema: excap.ros_station)"),
        DeclareLaunchArgument("operator", default_value="anonymous", description="pseudonymous operator id"),
        DeclareLaunchArgument("task", default_value="", description="task of the demonstrations"),
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
