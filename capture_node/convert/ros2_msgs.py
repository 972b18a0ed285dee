"""ROS 2 message definitions (`ros2msg` text, as rosbag2 stores them in MCAP schemas) of the messages excap writes
to and reads from ROS 2 bags: each type's own fields, then its dependencies after a separator line."""

SEPARATOR = "=" * 80

TIME = "MSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n"
HEADER = "MSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n"
KEY_VALUE = "MSG: diagnostic_msgs/KeyValue\nstring key\nstring value\n"
DIAGNOSTIC_STATUS = ("MSG: diagnostic_msgs/DiagnosticStatus\nbyte OK=0\nbyte WARN=1\nbyte ERROR=2\nbyte STALE=3\n"
                     "byte level\nstring name\nstring message\nstring hardware_id\n"
                     "diagnostic_msgs/KeyValue[] values\n")


def _with(own: str, *dependencies: str) -> str:
    return own + "".join(f"{SEPARATOR}\n{dependency}" for dependency in dependencies)


JOY = "sensor_msgs/msg/Joy"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
IMAGE = "sensor_msgs/msg/Image"
JOINT_STATE = "sensor_msgs/msg/JointState"
CAN_FRAME = "can_msgs/msg/Frame"
CAN_FD_FRAME = "ros2_socketcan_msgs/msg/FdFrame"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"

DEFINITIONS: dict[str, str] = {
    JOY: _with("std_msgs/Header header\nfloat32[] axes\nint32[] buttons\n", HEADER, TIME),
    COMPRESSED_IMAGE: _with("std_msgs/Header header\nstring format\nuint8[] data\n", HEADER, TIME),
    IMAGE: _with("std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n"
                 "uint32 step\nuint8[] data\n", HEADER, TIME),
    JOINT_STATE: _with("std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\n"
                       "float64[] effort\n", HEADER, TIME),
    CAN_FRAME: _with("std_msgs/Header header\nuint32 id\nbool is_rtr\nbool is_extended\nbool is_error\nuint8 dlc\n"
                     "uint8[8] data\n", HEADER, TIME),
    CAN_FD_FRAME: _with("std_msgs/Header header\nuint32 id\nbool is_extended\nbool is_error\nuint8 len\n"
                        "uint8[] data\n", HEADER, TIME),
    DIAGNOSTIC_ARRAY: _with("std_msgs/Header header\ndiagnostic_msgs/DiagnosticStatus[] status\n", HEADER, TIME,
                            DIAGNOSTIC_STATUS, KEY_VALUE),
}

__all__ = ["CAN_FD_FRAME", "CAN_FRAME", "COMPRESSED_IMAGE", "DEFINITIONS", "DIAGNOSTIC_ARRAY", "IMAGE", "JOINT_STATE",
           "JOY"]
