"""Load: partner downloads over loopback while the station records; prints JSON.

    python bench/load_downloads.py [--downloads 20] [--cameras 4] [--duration 60] [--browsers 0]

A simulated station (`--cameras` cameras at 640x480, 30 fps, its machine's CAN traffic, the scripted operator)
runs in this process with its page and API, and records one episode started over the API. Meanwhile `excap serve`
(a process of its own, on loopback) serves a folder holding a recorded episode and a dataset export, to one
partner granted the dataset, and `--downloads` threads (in a process of their own, as partners are) download at
the same time, over and over until the recording ends: the export's files (every file of the manifest, SHA-256
checked against it) and the partner's copy of the episode (SHA-256 checked against its ETag). With `--browsers N`,
N headless Chromium windows keep the station page open the whole time (its live status and camera previews; needs
Debian's chromium and chromium-driver).

Result: download errors (failed requests and digest mismatches), files and bytes downloaded, throughput, the
recording's drops (dropped samples and `drop` events) and achieved rates, whether the episode is valid, frames
the simulated cameras skipped at the source (woken too late), load."""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import h5py
import httpx

from excap.delivery.partners import PartnerStore
from excap.episode.reader import EpisodeReader
from excap.episode.summary import summarize
from excap.episode.validation import validate_episode
from excap.station.app import RunningStation
from excap.station.sim import SimSessionOptions, run_sim_session, simulated_station

DATASET = "load-v1"
EPISODE_ID = "20260101T000000Z_sim-excavator-01_load01"
TOKEN_ENV = "EXCAP_LOAD_TOKEN"


@dataclass
class Downloads:
    files: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, size: int) -> None:
        with self.lock:
            self.files += 1
            self.bytes += size

    def error(self, what: str) -> None:
        with self.lock:
            self.errors.append(what)


def served_folder(root: Path, episode: Path) -> None:
    """A delivery folder: the recorded episode (as EPISODE_ID) and an export of it naming it (the episode file
    itself among the data files, beside its metadata)."""
    (root / "episodes").mkdir(parents=True)
    copy = root / "episodes" / "load.h5"
    shutil.copyfile(episode, copy)
    with h5py.File(copy, "r+") as handle:
        handle.attrs["episode_id"] = EPISODE_ID
    export = root / "exports" / DATASET
    (export / "meta").mkdir(parents=True)
    (export / "data" / "chunk-000").mkdir(parents=True)
    (export / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v3.0", "total_episodes": 1}))
    (export / "meta" / "episodes.jsonl").write_text(json.dumps({"episode_index": 0,
                                                                "source_episode_id": EPISODE_ID}) + "\n")
    shutil.copyfile(episode, export / "data" / "chunk-000" / "episode_000000.h5")
    (export / "data" / "chunk-000" / "random.bin").write_bytes(os.urandom(8 << 20))


def download(client: httpx.Client, path: str, expected_sha256: str | None) -> int:
    """GET `path` streamed to a digest; returns its size. Raises on a failed request or a digest mismatch
    (`expected_sha256` None: the ETag's)."""
    digest = hashlib.sha256()
    size = 0
    with client.stream("GET", path) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {response.status_code}")
        for chunk in response.iter_bytes(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        expected = expected_sha256 or response.headers.get("etag", "").strip('"')
    if digest.hexdigest() != expected:
        raise RuntimeError(f"{path}: SHA-256 {digest.hexdigest()} is not {expected}")
    return size


def downloader(url: str, token: str, stop: threading.Event, result: Downloads) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0) as client:
        while True:
            try:
                manifest = client.get(f"/v1/datasets/{DATASET}/manifest")
                manifest.raise_for_status()
                targets = [(f"/v1/datasets/{DATASET}/files/{f['path']}", f["sha256"])
                           for f in manifest.json()["files"]]
                for path, sha256 in [*targets, (f"/v1/episodes/{EPISODE_ID}", None)]:
                    result.count(download(client, path, sha256))
            except Exception as exc:  # every failure is a finding: counted, named, the thread goes on
                result.error(f"{type(exc).__name__}: {exc}")
            if stop.is_set():
                return


def run_downloads(url: str, token: str, downloads: int, duration_s: float) -> dict[str, Any]:
    """`downloads` threads downloading for `duration_s` (each finishes the round it is in); run in a child
    process (`client_process`)."""
    result = Downloads()
    stop = threading.Event()
    threads = [threading.Thread(target=downloader, args=(url, token, stop, result), daemon=True)
               for _ in range(downloads)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    stop.wait(duration_s)
    stop.set()
    hung = 0
    for thread in threads:
        thread.join(120)
        hung += thread.is_alive()
    return {"seconds": time.monotonic() - began, "files": result.files, "bytes": result.bytes,
            "errors": result.errors + [f"{hung} download threads still running after 120 s"] * bool(hung)}


def client_process(url: str, token: str, downloads: int, duration_s: float) -> dict[str, Any]:
    """`run_downloads` in a process of its own (this script with `client`; the token in its environment)."""
    done = subprocess.run([sys.executable, __file__, "client", url, str(downloads), str(duration_s)],
                          capture_output=True, text=True, env={**os.environ, TOKEN_ENV: token},
                          timeout=duration_s + 300)
    if done.returncode != 0:
        raise RuntimeError(f"the download client failed: {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@dataclass
class ServeProcess:
    url: str
    log: list[str] = field(default_factory=list)
    """What the server wrote to stderr (its warnings and errors name why a request was refused)."""


@contextmanager
def excap_serve(root: Path) -> Iterator[ServeProcess]:
    """`excap serve ROOT` on an ephemeral loopback port."""
    process = subprocess.Popen([sys.executable, "-m", "excap", "serve", str(root), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reader: threading.Thread | None = None
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        if not line.startswith("serving "):
            raise RuntimeError(f"excap serve did not start: {line}{process.stderr.read()}")
        served = ServeProcess(line.split(" on ")[1].split()[0])
        stderr = process.stderr
        reader = threading.Thread(target=lambda: served.log.extend(text.rstrip("\n") for text in stderr), daemon=True)
        reader.start()
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if reader is not None:
            reader.join(10)


@contextmanager
def station_pages(url: str, browsers: int, profiles: Path) -> Iterator[list[Any]]:
    """`browsers` headless Chromium windows on the station page."""
    if browsers == 0:
        yield []
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.browser import chromium

    with ExitStack() as stack:
        drivers = [stack.enter_context(chromium(profiles / f"browser-{i}")) for i in range(browsers)]
        for driver in drivers:
            driver.get(url)
        yield drivers


def page_updates(drivers: list[Any]) -> list[int]:
    """Camera preview loads each page counted (the page counts them in `data-loads`)."""
    counts = []
    for driver in drivers:
        loads = driver.execute_script(
            "return Array.from(document.querySelectorAll('[data-loads]'))"
            ".reduce((n, e) => n + Number(e.dataset.loads || 0), 0)")
        counts.append(int(loads or 0))
    return counts


def recording_figures(episode: Path) -> dict[str, Any]:
    summary = summarize(episode)
    with EpisodeReader(episode) as reader:
        dropped = sum(reader.stream(s.path).dropped for s in reader.streams)
    return {"drops": summary.drop_events, "dropped_samples": dropped, "duration_s": round(summary.duration_s, 2),
            "rates_hz": {s.stream: round(s.rate_hz, 1) for s in summary.streams
                         if s.stream.startswith(("cameras/", "joystick/", "control")) or s.stream.count("/") == 1},
            "valid": validate_episode(episode) == []}


def run_load(out: Path, downloads: int, cameras: int, duration_s: float, browsers: int = 0, width: int = 640,
             height: int = 480, fps: float = 30.0, source_s: float = 10.0) -> dict[str, Any]:
    """One load run (see the module); returns the result."""
    source = run_sim_session(SimSessionOptions(out_dir=out / "source", duration_s=source_s, cameras=2, width=width,
                                               height=height, fps=fps))
    root = out / "site"
    served_folder(root, source)
    store = PartnerStore(root)
    token = store.add("loadtest")
    store.grant("loadtest", DATASET)
    config = simulated_station(SimSessionOptions(out_dir=out / "station", cameras=cameras, width=width,
                                                 height=height, fps=fps, stale_timeout_s=0.5))
    running = RunningStation.start(config, port=0)
    try:
        assert running.server is not None
        page = running.server.url
        with excap_serve(root) as served, station_pages(page, browsers, out / "browsers") as drivers:
            started = httpx.post(f"{page}/api/start", json={}, timeout=30)
            if started.status_code != 200 or not running.runtime.recording:
                raise RuntimeError(f"the station did not start recording: {started.status_code} {started.text}")
            loads_before = page_updates(drivers)
            cpu0 = os.times()
            result = client_process(served.url, token, downloads, duration_s)
            cpu1 = os.times()
            loads_after = page_updates(drivers)
            skipped = {name: camera.counters.dropped for name, camera in running.runtime.cameras.items()}
            stopped = httpx.post(f"{page}/api/stop", json={"outcome": "success"}, timeout=60)
            if stopped.status_code != 200:
                raise RuntimeError(f"the station did not stop: {stopped.status_code} {stopped.text}")
    finally:
        running.stop()
    episodes = sorted((out / "station").rglob("*.h5"))
    if len(episodes) != 1:
        raise RuntimeError(f"expected one recorded episode, found {len(episodes)}")
    return {"downloads": downloads, "cameras": cameras, "resolution": f"{width}x{height}", "fps": fps,
            "browsers": browsers, "seconds": round(result["seconds"], 1), "download_errors": len(result["errors"]),
            "errors": result["errors"][:10],
            "server_log": served.log[:20],
            "files_downloaded": result["files"],
            "mb_downloaded": round(result["bytes"] / 1e6, 1),
            "download_mb_per_s": round(result["bytes"] / 1e6 / result["seconds"], 1),
            "page_preview_loads": [after - before for before, after in zip(loads_before, loads_after, strict=True)],
            "station_cpu_percent_of_one_core": round(
                100 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / result["seconds"], 1),
            "recording": recording_figures(episodes[0]),
            # frames a simulated camera did not render because it woke too late (a real sensor's skipped exposures,
            # since the station opened): the recorder never saw them, so they are no recording drop
            "camera_frames_skipped_at_source": skipped}


def main() -> None:
    if sys.argv[1:2] == ["client"]:  # the download client's process (see client_process)
        url, downloads, duration_s = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
        print(json.dumps(run_downloads(url, os.environ[TOKEN_ENV], downloads, duration_s)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--downloads", type=int, default=20)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--browsers", type=int, default=0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="excap-load-"))
    load0 = os.getloadavg()[0]
    result = run_load(out, args.downloads, args.cameras, args.duration, args.browsers, args.width, args.height,
                      args.fps)
    print(json.dumps({"benchmark": "load_downloads", "load_avg_1min_start": round(load0, 2),
                      "load_avg_1min_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(), **result},
                     indent=2))


if __name__ == "__main__":
    main()
