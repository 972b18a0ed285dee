"""The repository builds as an ament_python package with colcon, as in a ROS 2 workspace."""

import shutil
import subprocess

from tests.support.paths import REPO
from tests.support.requirements import missing, require_colcon


def tracked_files() -> list[str]:
    result = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        missing("not a git checkout: the package's files cannot be listed")
    return result.stdout.split()


def test_colcon_build_installs_package_launch_files_schemas_and_scripts(tmp_path):
    colcon = require_colcon()
    source = tmp_path / "ws" / "src" / "excap"
    for name in tracked_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    result = subprocess.run([str(colcon), "build", "--packages-select", "excap"], cwd=tmp_path / "ws",
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    install = tmp_path / "ws" / "install" / "excap"
    share = install / "share" / "excap"
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "excap").exists()
    assert (share / "package.xml").read_text() == (REPO / "package.xml").read_text()
    assert {p.name for p in (share / "launch").iterdir()} >= {"excap_sim.launch.py", "excap_station.launch.py"}
    assert (share / "schemas" / "episode" / "v1.yaml").exists()
    assert (share / "schemas" / "can" / "excavator_j1939.dbc").exists()
    assert {p.name for p in (install / "lib" / "excap").iterdir()} >= {"excap", "excap_node"}  # for `ros2 run`
