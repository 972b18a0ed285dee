"""The station page's status carries the uplink's queue and last error (read from the episode folder)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.seaweedfs import SeaweedFS, free_ports
from tests.support.uplink import run_upload
from tests.support.waiting import wait_for


def test_station_status_shows_the_uplink(module_station, sim_episode: Path, tmp_path: Path,
                                         s3_env: dict[str, str]) -> None:
    out_dir = Path(module_station.out_dir)
    before = module_station.status()["uplink"]
    assert before["line"] == "uplink: not running here" and before["active"] is False
    shutil.copy(sim_episode, out_dir / "uplink-test.h5")
    (port,) = free_ports(1)
    failed = run_upload(out_dir, "s3://station-bucket/p", SeaweedFS(tmp_path / "down", ports={"s3.port": port}),
                        "--once", "--retries", "1")
    assert failed.returncode == 1
    uplink = wait_for(lambda: (u := module_station.status()["uplink"])["active"] and u, timeout=10,
                      message="the uplink in the station status")
    assert uplink["pending_episodes"] >= 1 and uplink["pending_bytes"] >= sim_episode.stat().st_size
    assert "cannot reach the object store" in uplink["last_error"]
    assert uplink["line"].startswith("uplink: ") and "cannot reach the object store at " in uplink["line"]
    assert uplink["line"].endswith(f"at http://127.0.0.1:{port} (connection refused or down)")
