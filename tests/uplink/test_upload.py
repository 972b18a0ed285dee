"""`excap upload` against a real SeaweedFS server: multipart, verified, resumable after a SIGKILL of the uploader
and after the object store goes away mid-upload, retention only after verification, and its status."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from excap.uplink.status import summary
from tests.support.paths import REPO
from tests.support.report import record
from tests.support.seaweedfs import SeaweedFS, free_ports, new_bucket
from tests.support.uplink import (
    padded_episode,
    parts_saved,
    report_of,
    run_excap_upload,
    run_upload,
    sha256,
    state_files,
    upload_command,
    upload_env,
)
from tests.support.waiting import wait_for

PART = ("--part-size-mb", "5")


def station_folder(root: Path, sim_episode: Path) -> dict[str, Path]:
    """Two finished episodes (4 and 1 parts of 5 MiB), and what must never be uploaded."""
    episodes = {"day1/a.h5": padded_episode(sim_episode, root / "day1/a.h5", 16, seed=1),
                "b.h5": root / "b.h5"}
    shutil.copy(sim_episode, root / "b.h5")
    (root / ".recording").mkdir()
    shutil.copy(sim_episode, root / ".recording" / "partial.h5")
    (root / ".recording" / "partial.journal").write_bytes(b"journal")
    (root / ".c.h5.tmp").write_bytes(b"temporary")
    (root / "broken.h5").write_bytes(b"not an HDF5 file")
    (root / "notes.txt").write_text("not an episode")
    return episodes


def keys(server: SeaweedFS, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in server.client().list_objects_v2(Bucket=bucket).get("Contents", []))


def test_upload_once_sends_only_final_valid_episodes_verified(seaweedfs: SeaweedFS, s3_bucket: str,
                                                              sim_episode: Path, tmp_path: Path) -> None:
    episodes = station_folder(tmp_path, sim_episode)
    target = f"s3://{s3_bucket}/station-1"
    done = run_upload(tmp_path, target, seaweedfs, "--once", "--json", "--verify", "full", *PART)
    assert done.returncode == 0, done.stderr
    report = report_of(done)
    assert keys(seaweedfs, s3_bucket) == sorted(f"station-1/{name}" for name in episodes)
    for name, path in episodes.items():
        head = seaweedfs.client().head_object(Bucket=s3_bucket, Key=f"station-1/{name}")
        assert head["Metadata"]["sha256"] == sha256(path) and head["ContentLength"] == path.stat().st_size
    big = seaweedfs.client().head_object(Bucket=s3_bucket, Key="station-1/day1/a.h5")
    assert big["ETag"].strip('"').endswith("-4")
    assert report["parts_sent"] == 5 and [name for name, _ in report["invalid"]] == ["broken.h5"]
    assert all(path.exists() for path in episodes.values())  # no retention policy: nothing deleted

    again = report_of(run_upload(tmp_path, target, seaweedfs, "--once", "--json", *PART))
    assert again["parts_sent"] == 0 and again["uploaded"] == [] and again["failed"] == []
    status = json.loads(run_excap_upload(str(tmp_path), "--status", "--json").stdout)
    assert (status["pending_episodes"], status["uploaded"], status["invalid"]) == (0, 2, 1)
    assert status["last_error"] == "" and status["target"] == target


def test_a_killed_uploader_resumes_without_resending_parts(seaweedfs: SeaweedFS, s3_bucket: str,
                                                           sim_episode: Path, tmp_path: Path) -> None:
    episode = padded_episode(sim_episode, tmp_path / "a.h5", 32, seed=2)  # 7 parts of 5 MiB
    digest, total = sha256(episode), -(-episode.stat().st_size // (5 << 20))
    target = f"s3://{s3_bucket}/kill"
    uploader = subprocess.Popen(upload_command(tmp_path, target, seaweedfs, "--once", "--max-rate", "8MB/s",
                                               "--delete-after-upload", *PART),
                                cwd=REPO, env=upload_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: parts_saved(tmp_path) >= 2 or uploader.poll() is not None, timeout=60,
                 message="two parts acknowledged")
        uploader.send_signal(signal.SIGKILL)
    finally:
        uploader.kill()
        uploader.communicate(timeout=30)
    assert uploader.returncode == -signal.SIGKILL
    assert episode.exists() and sha256(episode) == digest  # nothing deleted before verification
    assert keys(seaweedfs, s3_bucket) == []  # no partial object: it appears only on complete
    (state,) = state_files(tmp_path)
    saved = len(state["parts"])
    held = seaweedfs.client().list_parts(Bucket=s3_bucket, Key="kill/a.h5", UploadId=state["upload_id"])["Parts"]
    assert 2 <= saved <= len(held) < total

    resumed = run_upload(tmp_path, target, seaweedfs, "--once", "--json", "--delete-after-upload", *PART)
    assert resumed.returncode == 0, resumed.stderr
    report = report_of(resumed)
    (result,) = report["uploaded"]
    record("uplink", "parts after SIGKILL: saved, held by the store, adopted, sent",
           f"{saved}, {len(held)}, {result['parts_adopted']}, {result['parts_sent']} of {total}")
    # every part is sent once: the ones saved or held by the store (acknowledged, or finished by the store after
    # the kill) are not sent again
    assert result["parts_sent"] + result["parts_adopted"] + saved == total
    assert result["parts_sent"] <= total - len(held)
    assert report["deleted"] == ["a.h5"] and not episode.exists()
    head = seaweedfs.client().head_object(Bucket=s3_bucket, Key="kill/a.h5")
    assert head["Metadata"]["sha256"] == digest
    body = seaweedfs.client().get_object(Bucket=s3_bucket, Key="kill/a.h5")["Body"].read()
    assert __import__("hashlib").sha256(body).hexdigest() == digest


@pytest.fixture
def own_seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A server of this test's own, which the test stops and restarts."""
    server = SeaweedFS(tmp_path_factory.mktemp("own-seaweedfs")).start()
    yield server
    server.stop()


def test_the_store_going_away_mid_upload_loses_nothing(own_seaweedfs: SeaweedFS, s3_env: dict[str, str],
                                                       sim_episode: Path, tmp_path: Path) -> None:
    server = own_seaweedfs
    bucket = new_bucket(server)
    folder = tmp_path / "station"
    episode = padded_episode(sim_episode, folder / "a.h5", 32, seed=3)
    digest, total = sha256(episode), -(-episode.stat().st_size // (5 << 20))
    uploader = subprocess.Popen(upload_command(folder, f"s3://{bucket}/down", server, "--once", "--json",
                                               "--max-rate", "8MB/s", "--retries", "200", "--backoff-max", "1",
                                               "--delete-after-upload",
                                               *PART),
                                cwd=REPO, env=upload_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: parts_saved(folder) >= 2 or uploader.poll() is not None, timeout=60,
                 message="two parts acknowledged")
        server.stop()
        saved_before_stop = parts_saved(folder)
        wait_for(lambda: summary(folder).last_error or uploader.poll() is not None, timeout=60,
                 message="the uploader noticing the store is gone")
        assert uploader.poll() is None and episode.exists()
        assert "cannot reach the object store" in summary(folder).last_error
        restart = time.monotonic()
        server.start()
        record("uplink", "SeaweedFS restart after SIGKILL, s", round(time.monotonic() - restart, 1))
        out, err = uploader.communicate(timeout=180)
    finally:
        if uploader.poll() is None:
            uploader.kill()
            uploader.communicate(timeout=30)
    assert uploader.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    retries = err.count("retry ")
    record("uplink", "parts sent around a store outage", f"{report['parts_sent']} of {total}, {retries} retries")
    assert saved_before_stop >= 2 and retries >= 1
    assert report["parts_sent"] == total  # one process: each part acknowledged once, none sent again
    assert report["deleted"] == ["a.h5"] and not episode.exists()
    assert server.client().head_object(Bucket=bucket, Key="down/a.h5")["Metadata"]["sha256"] == digest
    assert summary(folder).last_error == ""


def test_retention_deletes_only_verified_copies(seaweedfs: SeaweedFS, s3_bucket: str, sim_episode: Path,
                                                tmp_path: Path) -> None:
    for name in ("a.h5", "b.h5"):
        shutil.copy(sim_episode, tmp_path / name)
    target = f"s3://{s3_bucket}/keep"
    first = report_of(run_upload(tmp_path, target, seaweedfs, "--once", "--json", *PART))
    assert len(first["uploaded"]) == 2 and first["deleted"] == []
    seaweedfs.client().delete_object(Bucket=s3_bucket, Key="keep/a.h5")  # the remote copy is lost
    old = report_of(run_upload(tmp_path, target, seaweedfs, "--once", "--json", "--keep-days", "0", *PART))
    assert old["deleted"] == ["b.h5"] and (tmp_path / "a.h5").exists() and not (tmp_path / "b.h5").exists()
    again = report_of(run_upload(tmp_path, target, seaweedfs, "--once", "--json", "--keep-free-gb", "1e9", *PART))
    assert [r["relative"] for r in again["uploaded"]] == ["a.h5"]  # uploaded again, then deleted for disk space
    assert again["deleted"] == ["a.h5"] and not (tmp_path / "a.h5").exists()
    assert keys(seaweedfs, s3_bucket) == ["keep/a.h5", "keep/b.h5"]


def test_status_and_errors_in_plain_words(sim_episode: Path, tmp_path: Path, s3_env: dict[str, str]) -> None:
    shutil.copy(sim_episode, tmp_path / "a.h5")
    (port,) = free_ports(1)
    nowhere = SeaweedFS(tmp_path / "never-started", ports={"s3.port": port})
    failed = run_upload(tmp_path, "s3://bucket-x/p", nowhere, "--once", "--retries", "2")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    state = summary(tmp_path)
    assert (state.pending_episodes, state.pending_bytes) == (1, sim_episode.stat().st_size)
    assert f"cannot reach the object store at http://127.0.0.1:{port}" in state.last_error
    line = run_excap_upload(str(tmp_path), "--status").stdout.strip()
    assert line.startswith("uplink: 1 episodes pending") and "last error: " in line

    for bad, message in ((("--max-rate", "fast"), "--max-rate 'fast'"), ((), "s3://BUCKET")):
        target = ["s3://bucket-x/p"] if bad else []
        wrong = run_excap_upload(str(tmp_path), *target, *bad)
        assert wrong.returncode == 2 and wrong.stderr.startswith("excap: error: ") and message in wrong.stderr
        assert len(wrong.stderr.strip().splitlines()) == 1


def test_watching_uploads_episodes_as_they_are_finished(seaweedfs: SeaweedFS, s3_bucket: str, sim_episode: Path,
                                                       tmp_path: Path) -> None:
    uploader = subprocess.Popen(upload_command(tmp_path, f"s3://{s3_bucket}/watch", seaweedfs, "--interval", "0.2"),
                                cwd=REPO, env=upload_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for index, name in enumerate(("first.h5", "second.h5")):
            recording = tmp_path / ".recording" / name  # the recorder finishes an episode by a rename
            recording.parent.mkdir(exist_ok=True)
            shutil.copy(sim_episode, recording)
            wait_for(lambda: summary(tmp_path).active, message="the uploader's first pass")
            assert keys(seaweedfs, s3_bucket) == sorted(f"watch/{n}" for n in ("first.h5", "second.h5")[:index])
            recording.rename(tmp_path / name)
            wait_for(lambda n=name: f"watch/{n}" in keys(seaweedfs, s3_bucket), timeout=30,
                     message=f"{name} uploaded")
        uploader.send_signal(signal.SIGTERM)
        _, err = uploader.communicate(timeout=30)
    finally:
        if uploader.poll() is None:
            uploader.kill()
            uploader.communicate(timeout=30)
    assert uploader.returncode == 0, err
    assert "uploaded first.h5" in err and "uploaded second.h5" in err
    assert summary(tmp_path).pending_episodes == 0


def test_a_file_changed_after_an_interrupted_upload_is_sent_afresh(seaweedfs: SeaweedFS, s3_bucket: str,
                                                                   sim_episode: Path, tmp_path: Path) -> None:
    episode = padded_episode(sim_episode, tmp_path / "a.h5", 16, seed=5)
    target = f"s3://{s3_bucket}/changed"
    uploader = subprocess.Popen(upload_command(tmp_path, target, seaweedfs, "--once", "--max-rate", "4MB/s",
                                               "--parallel", "1", *PART),
                                cwd=REPO, env=upload_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: parts_saved(tmp_path) >= 1 or uploader.poll() is not None, timeout=60,
                 message="one part acknowledged")
    finally:
        uploader.kill()
        uploader.wait(timeout=30)
    s3 = seaweedfs.client()
    assert len(s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])) == 1
    with episode.open("r+b") as handle:  # the user block changes: still a valid episode, other bytes
        handle.write(b"changed")
    report = report_of(run_upload(tmp_path, target, seaweedfs, "--once", "--json", *PART))
    assert report["uploaded"][0]["parts_sent"] == 4 and report["failed"] == []
    assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []  # the old upload was aborted
    assert s3.head_object(Bucket=s3_bucket, Key="changed/a.h5")["Metadata"]["sha256"] == sha256(episode)
