"""`excap bench capture`: how many camera streams excap records with zero drops, and what it costs, beside the
alternatives (`excap.bench.alternatives`), all fed by the same frame producer process (`excap.bench.frames`).

Every recorder runs in its own process, one after the other, on the same rings: excap (the simulated station with
shared-memory cameras, 2,000 CAN frames/s and a 200 Hz joystick: `excap.bench.excap_run`), excap with the cameras
only (the like-for-like comparison with the floor) and, with `compare`, the floor, ALOHA-style, LeRobot-style and
MCAP recorders. The load average at the start of each run is in the result.
"""

import contextlib
import multiprocessing
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from excap.bench.alternatives import ALTERNATIVES
from excap.bench.frames import FrameProducer

RESULT_TIMEOUT_PAD_S = 900.0


def _child(target: Callable[..., dict[str, Any]], args: tuple[Any, ...], kwargs: dict[str, Any],
           send: "multiprocessing.connection.Connection") -> None:
    try:
        send.send(target(*args, **kwargs))
    except BaseException as exc:  # reported to the parent as the run's failure
        send.send({"error": f"{type(exc).__name__}: {exc}"})
        raise


def in_process(name: str, seconds: float, target: Callable[..., dict[str, Any]], *args: Any,
               **kwargs: Any) -> dict[str, Any]:
    """`target(*args, **kwargs)`, a run of `seconds`, in a fresh (spawned) process; its result, with the load average
    at the start."""
    load = os.getloadavg()
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(target, args, kwargs, send), name=f"bench-{name}")
    process.start()
    result: dict[str, Any] = {"recorder": name, "error": "no result (the process died)"}
    if receive.poll(seconds + RESULT_TIMEOUT_PAD_S):
        with contextlib.suppress(EOFError):
            result = receive.recv()
    else:
        result = {"recorder": name, "error": "timed out"}
    process.join(30)
    if process.is_alive():
        process.kill()
    result.setdefault("recorder", name)
    result["load_average_at_start"] = [round(x, 2) for x in load]
    return result


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _run_excap(*args: Any) -> dict[str, Any]:
    """excap's run in its process, with python-can loaded as `excap record` loads it (excap.drivers.can.lean_import)."""
    from excap.drivers.can.lean_import import import_can_without_mf4

    import_can_without_mf4()
    from excap.bench.excap_run import run_excap

    return run_excap(*args)


def run_excap_streams(rings: list[str], seconds: float, fps: float, full_load: bool,
                      out_dir: Path | None) -> dict[str, Any]:
    return in_process("excap" if full_load else "excap (cameras only)", seconds, _run_excap, rings, seconds, fps,
                      full_load, out_dir)


def run_capture_bench(streams: int = 4, width: int = 640, height: int = 480, seconds: float = 60.0,
                      fps: float = 30.0, compare: bool = False, cameras_only: bool = False,
                      ram_cap_mb: float = 2048.0, codec: str = "libx264",
                      out_dir: Path | None = None) -> dict[str, Any]:
    """One comparison at `streams` x `width`x`height` at `fps` for `seconds` each (see the module)."""
    from excap.bench.alternatives import run_alternative

    started = datetime.now(UTC).isoformat(timespec="seconds")
    runs: list[dict[str, Any]] = []
    with FrameProducer(streams, width, height, fps) as producer:
        time.sleep(0.5)
        runs.append(run_excap_streams(producer.rings, seconds, fps, True, out_dir))
        if cameras_only or compare:
            runs.append(run_excap_streams(producer.rings, seconds, fps, False, out_dir))
        if compare:
            for kind in ALTERNATIVES:
                runs.append(in_process(kind, seconds, run_alternative, kind, producer.rings, seconds, fps,
                                       ram_cap_mb=ram_cap_mb, codec=codec, out_dir=out_dir))
    floor = next((r for r in runs if r.get("recorder") == "floor" and r.get("cpu_ms_per_frame")), None)
    for run in runs:
        if floor and run.get("cpu_ms_per_frame"):
            run["cpu_ratio_to_floor"] = round(run["cpu_ms_per_frame"] / floor["cpu_ms_per_frame"], 2)
    return {"benchmark": "capture", "streams": streams, "size": f"{width}x{height}", "fps": fps,
            "seconds": seconds, "started_utc": started, "machine": machine(), "producer": producer.report,
            "runs": runs}


def zero_drop(run: dict[str, Any]) -> bool:
    return "error" not in run and run.get("frames_lost", 1) == 0 and run.get("frames_kept", 0) > 0 \
        and not any(run.get("extra", {}).get("excap_drop_counters", {}).values())
