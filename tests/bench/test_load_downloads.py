"""bench/load_downloads.py at a reduced scale: partner downloads from `excap serve` over loopback while the
simulated station records; every download arrives whole (SHA-256 checked), the recording drops nothing."""

import pytest

from tests.support.bench_scripts import bench_script
from tests.support.requirements import require_chromium

pytestmark = pytest.mark.slow


def check(result: dict, downloads: int) -> None:
    assert result["download_errors"] == 0, result["errors"]
    assert result["files_downloaded"] >= 5 * downloads  # each thread finished at least one round of 5 files
    recording = result["recording"]
    assert recording["drops"] == 0 and recording["dropped_samples"] == 0, recording
    assert recording["valid"]


def test_eight_downloads_while_two_cameras_record(tmp_path) -> None:
    result = bench_script("load_downloads").run_load(tmp_path, downloads=8, cameras=2, duration_s=4.0, width=320,
                                                     height=240, source_s=3.0)
    check(result, 8)
    assert result["page_preview_loads"] == []


def test_downloads_with_the_station_page_open_in_two_browsers(tmp_path) -> None:
    require_chromium()
    result = bench_script("load_downloads").run_load(tmp_path, downloads=4, cameras=2, duration_s=4.0, browsers=2,
                                                     width=320, height=240, source_s=3.0)
    check(result, 4)
    assert len(result["page_preview_loads"]) == 2 and min(result["page_preview_loads"]) > 0  # both pages were live
