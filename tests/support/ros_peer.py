"""A ROS 2 process that publishes sensor_msgs/Joy and sensor_msgs/Image with known stamps and values.

Message i has stamp (1000 + i) s + i µs; `expected_axes(i)`, `expected_buttons(i)`, `expected_image(i)`
give its contents, so a recording can be checked sample by sample. Runs until SIGINT/SIGTERM.
"""

import sys

import numpy as np

WIDTH, HEIGHT = 64, 48
BASE_SEC = 1000


def stamp_ns(i: int) -> int:
    return (BASE_SEC + i) * 1_000_000_000 + i * 1000


def index_of(t_device_ns: int) -> int:
    return t_device_ns // 1_000_000_000 - BASE_SEC


def expected_axes(i: int) -> list[float]:
    return [np.float32(i * 0.01).item(), -0.5, 1.0]


def expected_buttons(i: int) -> list[int]:
    return [i % 2, (i // 2) % 2, 1]


def expected_image(i: int) -> np.ndarray:
    """BGR, as the recording decodes it (the message is rgb8)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    bgr = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    bgr[..., 0] = (y * 5) % 256
    bgr[..., 1] = (x * 4) % 256
    bgr[..., 2] = (i * 9) % 256
    return bgr


def main(rate_hz: float = 30.0) -> int:
    from excap.ros.env import prepare_ros_environment

    prepare_ros_environment()
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import Image, Joy

    rclpy.init(args=sys.argv)
    node = rclpy.create_node("excap_test_peer")
    joy_pub = node.create_publisher(Joy, "/peer/joy", 50)
    image_pub = node.create_publisher(Image, "/peer/camera/image_raw", 50)
    counter = [0]

    def tick() -> None:
        i = counter[0]
        counter[0] += 1
        sec, nanosec = divmod(stamp_ns(i), 1_000_000_000)
        joy = Joy(axes=expected_axes(i), buttons=expected_buttons(i))
        joy.header.stamp.sec, joy.header.stamp.nanosec = sec, nanosec
        rgb = np.ascontiguousarray(expected_image(i)[..., ::-1])
        padded = np.zeros((HEIGHT, WIDTH * 3 + 8), np.uint8)  # rows padded: step > width * 3
        padded[:, : WIDTH * 3] = rgb.reshape(HEIGHT, WIDTH * 3)
        image = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", is_bigendian=0, step=WIDTH * 3 + 8,
                      data=padded.tobytes())
        image.header.stamp.sec, image.header.stamp.nanosec = sec, nanosec
        joy_pub.publish(joy)
        image_pub.publish(image)

    node.create_timer(1.0 / rate_hz, tick)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
