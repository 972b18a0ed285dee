"""Benchmark: `excap upload` against a plain boto3 `upload_file` of the same files, same run; prints JSON.

    python bench/upload.py [--episodes 4] [--mib 64] [--part-size-mb 8] [--rounds 2]

Starts its own SeaweedFS server (`weed server -s3` on loopback, as the tests do), records one 1 s simulated
episode and makes `--episodes` valid copies of it, each padded with `--mib` MiB of random bytes in an HDF5 user
block. Each round uploads the folder with `excap upload DIR s3://... --once` (a fresh prefix and state, so all
of it is sent: validation, SHA-256 of each file and each part, multipart, HEAD verification) and with boto3's
`upload_file` (managed transfer, default TransferConfig: threads, 8 MiB parts, no checksum of its own), in
turn. Reported: MB/s of each (median over rounds) and the ratio excap / boto3.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.seaweedfs import bench_store  # noqa: E402  (the tests' server set-up)
from tests.support.uplink import padded_episode  # noqa: E402


def record_episode(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "excap", "record", "--sim", "--duration", "1", "--out", str(folder),
                    "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=REPO)
    return next(folder.glob("*.h5"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--mib", type=int, default=64, help="padding per episode in MiB (a power of two)")
    parser.add_argument("--part-size-mb", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="excap-bench-upload-"))
    try:
        with bench_store(work) as (server, s3):
            source = record_episode(work / "recorded")
            folder = work / "station"
            for index in range(args.episodes):
                padded_episode(source, folder / f"episode-{index:02d}.h5", args.mib, seed=index)
            files = sorted(folder.glob("*.h5"))
            total = sum(p.stat().st_size for p in files)
            excap_s, boto3_s = [], []
            for round_ in range(args.rounds):
                shutil.rmtree(folder / ".excap", ignore_errors=True)
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "excap", "upload", str(folder), f"s3://bench/excap-{round_}",
                                "--once", "--endpoint-url", server.endpoint, "--part-size-mb", str(args.part_size_mb)],
                               check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                excap_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                for path in files:
                    s3.upload_file(str(path), "bench", f"boto3-{round_}/{path.name}")
                boto3_s.append(time.perf_counter() - start)
            excap_mbs = total / 1e6 / statistics.median(excap_s)
            boto3_mbs = total / 1e6 / statistics.median(boto3_s)
            print(json.dumps({
                "bytes": total, "files": len(files), "part_size_mb": args.part_size_mb, "rounds": args.rounds,
                "excap_upload_s": [round(s, 2) for s in excap_s], "boto3_upload_file_s": [round(s, 2) for s in boto3_s],
                "excap_upload_MBps": round(excap_mbs, 1), "boto3_upload_file_MBps": round(boto3_mbs, 1),
                "ratio_excap_over_boto3": round(excap_mbs / boto3_mbs, 2),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()},
            }, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
