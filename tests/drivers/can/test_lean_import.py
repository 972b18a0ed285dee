"""The long-running commands load python-can without its MF4 support (asammdf, pandas, polars: ~0.45 s and ~100 MB
per process where the `mf4` extra is installed); the MF4 commands keep it."""

import importlib.util
import json
import subprocess
import sys

from tests.support.paths import REPO
from tests.support.requirements import missing, require_ros

if importlib.util.find_spec("asammdf") is None:
    missing("asammdf (the mf4 extra, in dev) is what python-can would load: pip install -e '.[dev]'",
            module_level=True)

HEAVY = ("asammdf", "pandas", "polars")


def run_python(code: str, timeout: float = 60) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_can_is_imported_without_asammdf_which_stays_importable() -> None:
    result = run_python(f"""
import json, sys
from excap.drivers.can.lean_import import import_can_without_mf4
first = import_can_without_mf4()
loaded = [name for name in {HEAVY!r} if name in sys.modules]
import can
with can.Bus(interface="virtual", channel="lean") as tx, can.Bus(interface="virtual", channel="lean") as rx:
    tx.send(can.Message(arbitration_id=0x18FEF100, data=bytes(8)))
    received = rx.recv(5.0)
import can.io.mf4
mf4_support = can.io.mf4.asammdf is not None
import asammdf
print(json.dumps({{"first": first, "again": import_can_without_mf4(), "loaded": loaded,
                  "received": received is not None, "mf4_support": mf4_support, "asammdf": asammdf.__name__}}))
""")
    assert result == {"first": True, "again": False, "loaded": [], "received": True, "mf4_support": False,
                      "asammdf": "asammdf"}


def test_without_the_call_python_can_loads_asammdf() -> None:
    """Control: the plain import does load them (what the call avoids is real)."""
    result = run_python(f"import json, sys, can; print(json.dumps([n for n in {HEAVY[:2]!r} if n in sys.modules]))")
    assert result == list(HEAVY[:2])


def test_a_recording_process_never_loads_asammdf(tmp_path) -> None:
    out = tmp_path / "episodes"
    result = run_python(f"""
import atexit, json, sys
def report():
    print(json.dumps({{"loaded": [n for n in {HEAVY!r} if n in sys.modules], "can": "can" in sys.modules}}))
atexit.register(report)
from excap.cli.main import main
sys.argv = ["excap", "record", "--sim", "--duration", "1", "--cameras", "1", "--width", "160", "--height", "120",
            "--quiet", "--out", {str(out)!r}]
main()
""", timeout=120)
    assert result == {"loaded": [], "can": True}
    assert len(list(out.glob("*.h5"))) == 1


def test_the_ros_node_loads_python_can_without_asammdf() -> None:
    """`ros2 run excap excap_node` imports the node's module first: python-can comes in lean there too."""
    require_ros(module_level=False)
    result = run_python(f"""
import json, sys
import excap.ros.node
print(json.dumps({{"loaded": [n for n in {HEAVY!r} if n in sys.modules], "can": "can" in sys.modules}}))
""")
    assert result == {"loaded": [], "can": True}
