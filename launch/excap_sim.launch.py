"""excap_recorder on the simulated excavator: `ros2 launch excap excap_sim.launch.py out_dir:=/data/episodes`."""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

ARGUMENTS = {
    "out_dir": ("episodes", "episode folder"),
    "operator": ("sim-operator", "pseudonymous operator id"),
    "task": ("dig-and-load", "task of the demonstrations"),
    "site": ("simulated-site", "site name"),
    "pattern": ("", "control pattern: iso, sae, or empty for the profile's"),
    "cameras": ("2", "number of simulated cameras"),
}


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    node = Node(
        package="excap",
        executable="excap_node",
        name="excap_recorder",
        output="screen",
        parameters=[{
            "sim": True,
            "out_dir": LaunchConfiguration("out_dir"),
            "operator": LaunchConfiguration("operator"),
            "task": LaunchConfiguration("task"),
            "site": LaunchConfiguration("site"),
            "pattern": LaunchConfiguration("pattern"),
            "cameras": LaunchConfiguration("cameras"),
        }],
    )
    return LaunchDescription([*declared, node])
