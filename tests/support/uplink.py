"""Episodes and commands for the station uplink tests (excap upload against SeaweedFS)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tests.support.commands import excap_command
from tests.support.paths import REPO
from tests.support.seaweedfs import SeaweedFS, credentials_env

MiB = 1 << 20


def padded_episode(source: Path, target: Path, padding_mib: int, seed: int = 0) -> Path:
    """A copy of a recorded episode with an HDF5 user block of `padding_mib` MiB random bytes in front: still a
    valid episode, and large and incompressible enough to need several multipart parts."""
    target.parent.mkdir(parents=True, exist_ok=True)
    userblock = padding_mib * MiB
    with h5py.File(source, "r") as original, h5py.File(target, "w", userblock_size=userblock) as copy:
        for name, value in original.attrs.items():
            copy.attrs[name] = value
        for name in original:
            original.copy(original[name], copy, name=name)
    with target.open("r+b") as handle:
        handle.write(np.random.default_rng(seed).bytes(userblock))
    return target


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def upload_command(folder: Path, target: str, server: SeaweedFS, *options: str) -> list[str]:
    return excap_command("upload", str(folder), target, "--endpoint-url", server.endpoint, *options)


def run_excap_upload(*args: str) -> subprocess.CompletedProcess[str]:
    """`excap upload ARGS...` as given (no endpoint added), with the store's credentials."""
    return subprocess.run(excap_command("upload", *args), capture_output=True, text=True, timeout=60, cwd=REPO,
                          env=upload_env())


def upload_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **credentials_env()}


def run_upload(folder: Path, target: str, server: SeaweedFS, *options: str,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(upload_command(folder, target, server, *options), capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=upload_env())


def report_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON report of `excap upload --once --json` (its last stdout line)."""
    assert done.stdout.strip(), done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def state_files(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((folder / ".excap" / "uplink").glob("*.json"))
            if p.name != "uploader.json"]


def parts_saved(folder: Path) -> int:
    """Parts recorded as acknowledged in the episode state files."""
    try:
        return sum(len(state["parts"]) for state in state_files(folder))
    except (OSError, ValueError):  # a state file being replaced right now
        return 0
