"""What rclpy needs from the environment, set up before rclpy is imported.

With a ROS 2 distribution (`source /opt/ros/<distro>/setup.bash`) nothing is changed here.

With the pip wheels (`pip install 'excap[ros]'`), the native libraries live in
`site-packages/ros_*.libs` and `<prefix>/lib`; the dynamic loader only reads LD_LIBRARY_PATH when a
process starts, so if those folders are missing from it the process is started again (exec) with
them added. The wheels' own start-up hook normally does that already; this covers the cases it
misses (a cleared LD_LIBRARY_PATH, e.g. under sudo or a service manager that passes the hook's
guard variable on). AMENT_PREFIX_PATH gets the prefix so ament_index finds this package's launch
files and message packages.
"""

import importlib.util
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

_REEXEC_GUARD = "EXCAP_ROS_ENV_REEXEC"


def wheel_prefix() -> Path | None:
    """The install prefix of pip-wheel rclpy, or None for a distribution install (or no rclpy)."""
    spec = importlib.util.find_spec("rclpy")
    if spec is None or spec.origin is None:
        return None
    site_packages = Path(spec.origin).resolve().parent.parent
    if not (site_packages / "ros_rclpy.libs").is_dir():
        return None
    return site_packages.parents[2]


def wheel_library_dirs(prefix: Path) -> list[str]:
    site_packages = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    dirs = [str(p) for p in sorted(site_packages.glob("ros_*.libs")) if p.is_dir()]
    return [*dirs, str(prefix / "lib")]


def _prepend_path(variable: str, entries: list[str], env: MutableMapping[str, str]) -> bool:
    current = [part for part in env.get(variable, "").split(os.pathsep) if part]
    missing = [entry for entry in entries if entry not in current]
    if missing:
        env[variable] = os.pathsep.join([*missing, *current])
    return bool(missing)


def prepare_ros_environment(reexec: bool = True) -> list[str]:
    """Make rclpy importable; returns the variables changed. May replace the process (exec) once."""
    prefix = wheel_prefix()
    if prefix is None:
        return []
    changed = []
    if _prepend_path("AMENT_PREFIX_PATH", [str(prefix)], os.environ):
        changed.append("AMENT_PREFIX_PATH")
    env = dict(os.environ)
    if _prepend_path("LD_LIBRARY_PATH", wheel_library_dirs(prefix), env):
        changed.append("LD_LIBRARY_PATH")
        if reexec and not os.environ.get(_REEXEC_GUARD):
            env[_REEXEC_GUARD] = "1"
            sys.stdout.flush()
            sys.stderr.flush()
            os.execve(sys.executable, sys.orig_argv, env)
        os.environ["LD_LIBRARY_PATH"] = env["LD_LIBRARY_PATH"]  # for child processes
    return changed


def rclpy_available() -> bool:
    """True if rclpy imports in this process (after `prepare_ros_environment(reexec=False)`)."""
    prepare_ros_environment(reexec=False)
    try:
        import rclpy  # noqa: F401
    except ImportError:
        return False
    return True
