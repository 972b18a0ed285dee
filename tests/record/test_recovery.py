"""Recovery resolves every state a crash can leave, keeps what it cannot fully recover, and keeps labels."""

import hashlib
import json
import shutil
import subprocess
import tracemalloc

import h5py
import pytest

from excap.core.clock import now_ns
from excap.episode.journal import HEADER, JournalWriter
from excap.episode.journal_reader import scan_journal
from excap.episode.metadata import EpisodeMetadata
from excap.episode.streams import camera_spec, can_spec, control_spec, rows_to_batch
from excap.episode.validation import validate_episode
from excap.record.disk_space import describe, free_bytes
from excap.record.recorder import Recorder, RecorderConfig
from excap.record.recovery import PENDING_BYTES, RecoveryStatus, quarantine_dir, recover_directory, recover_journal
from tests.support.commands import excap_command
from tests.support.journals import BATCH, METADATA, crash_copy, expected_rows, record_spans
from tests.support.jpeg import jpeg_frame
from tests.support.paths import REPO
from tests.support.waiting import wait_for


def metadata(**overrides):
    return EpisodeMetadata(**{"machine_kind": "excavator", "machine_model": "m", "machine_id": "exc-1",
                              "control_pattern": "iso", "profile": "excavator_20t", **overrides})


def journal_rows(path, stream="control"):
    scan = scan_journal(path)
    index = next((i for i, spec in scan.streams.items() if spec.path == stream), None)
    return scan.rows.get(index, 0)


def crashed_recording(tmp_path, rows=300, label=None, name="crashed"):
    """A folder holding what kill -9 leaves of a recording with `rows` control rows (and a label)."""
    live = tmp_path / f"{name}-live"
    recorder = Recorder(RecorderConfig(live), metadata())
    recorder.start()
    control = recorder.add_stream(control_spec(["boom"]))
    camera = recorder.add_stream(camera_spec("side", 4, 4, 30, "test"))
    if label:
        recorder.set_outcome(label)
    for i in range(rows):
        control.put((now_ns(), [i / rows], True))
        if i % 10 == 0:
            camera.put((now_ns(), 0, jpeg_frame(0)))
    journal = recorder.paths.journal
    wait_for(lambda: journal_rows(journal) == rows and (not label or scan_journal(journal).metadata.get("outcome")),
             message="rows and label in the journal")
    out = tmp_path / name
    copied = crash_copy(recorder.paths.recording_dir, recorder.metadata.episode_id, out)
    recorder.stop()
    return out, copied


@pytest.mark.parametrize("label", [None, "success", "failure"])
def test_a_label_given_before_the_crash_is_kept_and_no_label_becomes_aborted(tmp_path, label):
    out, _ = crashed_recording(tmp_path, label=label)
    [result] = recover_directory(out)
    assert result.status is RecoveryStatus.RECOVERED and result.rows >= 300
    with h5py.File(result.episode, "r") as f:
        assert f.attrs["recovered"] and f.attrs["outcome"] == (label or "aborted")
        assert f["control/t_ns"].shape == (300,)


def test_leftover_journal_of_a_complete_published_episode_is_removed(tmp_path):
    kept = tmp_path / "kept.journal"
    recorder = Recorder(RecorderConfig(tmp_path / "out", on_phase=lambda phase: phase == "published" and
                                       shutil.copyfile(recorder.paths.journal, kept)), metadata())
    with recorder:
        recorder.add_stream(control_spec(["boom"])).put((now_ns(), [0.5], True))
        recorder.add_stream(can_spec("can1", "virtual"))  # declared, no rows
    episode = recorder.paths.final
    digest = hashlib.sha256(episode.read_bytes()).hexdigest()
    shutil.copyfile(kept, recorder.paths.journal)  # the state of a kill between the rename and the delete
    [result] = recover_directory(tmp_path / "out")
    assert result.status is RecoveryStatus.ALREADY_PUBLISHED
    assert result.journal == recorder.paths.journal and result.episode == episode and result.rows == 0
    assert result.line() == f"{episode}: already published: the episode was complete; leftover journal removed"
    assert not recorder.paths.journal.exists() and not quarantine_dir(tmp_path / "out").exists()
    assert hashlib.sha256(episode.read_bytes()).hexdigest() == digest


def test_leftover_journal_with_rows_the_episode_lacks_is_quarantined_not_deleted(tmp_path):
    out, journal = crashed_recording(tmp_path, rows=500)
    short, _ = crashed_recording(tmp_path, rows=20, name="short")
    [other] = recover_directory(short)
    final = out / f"{journal.name.removesuffix('.journal')}.h5"
    shutil.copyfile(other.episode, final)  # a valid episode under this name, without the journal's rows
    [result] = recover_directory(out)
    assert result.status is RecoveryStatus.QUARANTINED and "lacks rows of control" in result.note
    assert (quarantine_dir(out) / journal.name).exists() and not journal.exists()
    assert validate_episode(final) == []  # the existing episode is left as it was


def test_empty_and_foreign_journals_are_quarantined_and_never_stop_the_others(tmp_path):
    out, journal = crashed_recording(tmp_path)
    (out / ".recording" / "0-empty.journal").write_bytes(b"")
    (out / ".recording" / "1-foreign.journal").write_bytes(b"PK\x03\x04 not a journal " * 50)
    empty, foreign, real = recover_directory(out)
    folder = quarantine_dir(out)
    assert empty.status is foreign.status is RecoveryStatus.QUARANTINED
    assert empty.line() == (f"{out}/.recording/0-empty.journal: quarantined: empty journal (the recorder stopped "
                            f"before its first write); journal moved to {folder}/0-empty.journal")
    assert foreign.note.startswith("no readable record in 950 bytes; journal moved to ")
    assert empty.rows == foreign.rows == 0 and empty.episode is None
    assert real.status is RecoveryStatus.RECOVERED and real.journal == journal
    assert sorted(p.name for p in folder.glob("*.note")) == ["0-empty.note", "1-foreign.note"]
    assert not list((out / ".recording").glob("*.journal"))


def test_recover_command_prints_one_line_per_journal(tmp_path):
    out, _ = crashed_recording(tmp_path)
    (out / ".recording" / "0-empty.journal").write_bytes(b"")
    result = subprocess.run(excap_command("recover", str(out)), capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0 and result.stderr == ""
    first, second = result.stdout.strip().splitlines()
    assert ": quarantined: empty journal" in first and ": recovered: recovered " in second


def test_a_journal_held_by_a_running_recorder_is_left_alone(tmp_path):
    with Recorder(RecorderConfig(tmp_path), metadata()) as recorder:
        recorder.add_stream(control_spec(["boom"])).put((now_ns(), [0.5], True))
        assert recover_directory(tmp_path) == []
        assert recorder.paths.journal.exists()


def test_a_recording_stopped_before_its_first_rows_is_quarantined_not_published_invalid(tmp_path):
    recording = tmp_path / ".recording"
    recording.mkdir()
    writer = JournalWriter(recording / "early.journal")
    writer.write_metadata(metadata().to_attrs() | {"start_t_ns": 5, "started_at": "x", "clock_offset_ns": 0,
                                                   "recovered": False})
    writer.close()
    [result] = recover_directory(tmp_path)
    assert result.status is RecoveryStatus.QUARANTINED and result.rows == 0
    assert result.note.startswith("no valid episode could be rebuilt from 0 rows (required stream /control is missing)")
    assert list(tmp_path.glob("*.h5")) == []


def test_a_flipped_bit_in_the_first_record_loses_only_that_record(tmp_path):
    out, journal = crashed_recording(tmp_path, rows=400, label="success")
    data = bytearray(journal.read_bytes())
    spans = record_spans(bytes(data))
    assert spans[0].kind == METADATA
    data[spans[0].offset + HEADER.size + 5] ^= 0x20
    journal.write_bytes(bytes(data))
    [result] = recover_directory(out)
    assert result.status is RecoveryStatus.PARTLY_RECOVERED
    assert result.rows == expected_rows(spans, (spans[0].offset, spans[0].end))
    with h5py.File(result.episode, "r") as f:
        assert f.attrs["outcome"] == "success" and f.attrs["machine_id"] == "exc-1"
        assert f["control/t_ns"].shape == (400,)
    quarantined = quarantine_dir(out) / journal.name
    assert quarantined.read_bytes() == bytes(data)
    assert "skipped 1 damaged range(s)" in quarantined.with_suffix(".note").read_text()


def test_metadata_comes_from_the_partial_file_when_every_copy_in_the_journal_is_damaged(tmp_path):
    out, journal = crashed_recording(tmp_path, rows=100)
    data = bytearray(journal.read_bytes())
    spans = record_spans(bytes(data))
    for span in spans:
        if span.kind == METADATA:
            data[span.offset + HEADER.size + 2] ^= 0x01
    journal.write_bytes(bytes(data))
    [result] = recover_directory(out)
    assert result.status is RecoveryStatus.PARTLY_RECOVERED
    assert result.rows == sum(s.rows for s in spans if s.kind == BATCH)
    with h5py.File(result.episode, "r") as f:
        assert f.attrs["machine_id"] == "exc-1" and f.attrs["recovered"]
        detail = json.loads(f["events/detail"][-1])
        assert detail["metadata_from"].startswith("partial HDF5 file")
    assert (quarantine_dir(out) / journal.name.replace(".journal", ".h5.partial")).exists()


def test_an_interrupted_rebuild_is_made_again(tmp_path):
    out, journal = crashed_recording(tmp_path, rows=50)
    leftover = journal.with_name(journal.name.replace(".journal", ".h5.recovering"))
    leftover.write_bytes(b"half a rebuild")
    [result] = recover_directory(out)
    assert result.status is RecoveryStatus.RECOVERED and not leftover.exists()
    assert validate_episode(result.episode) == []


def test_what_recovery_did_is_one_line_per_journal(tmp_path):
    out, journal = crashed_recording(tmp_path, rows=30)
    [result] = recover_directory(out)
    assert result.journal == journal and result.rows == 30 + 3 + 1 and result.resolved  # control, frames, start
    assert result.line() == f"{result.episode}: recovered: {result.note}"
    assert result.note.startswith("recovered 34 rows from ")


def test_a_journal_that_cannot_be_read_is_kept_and_the_others_still_recovered(tmp_path):
    out, journal = crashed_recording(tmp_path, rows=30)
    unreadable = out / ".recording" / "0-folder.journal"
    unreadable.mkdir()
    first, second = recover_directory(out)
    assert first.journal == unreadable and first.status is RecoveryStatus.KEPT and not first.resolved
    assert first.episode is None and first.rows == 0
    assert first.note.startswith("not recovered, kept in place: ") and "cannot read journal" in first.note
    assert first.line() == f"{unreadable}: kept: {first.note}"
    assert second.journal == journal and second.status is RecoveryStatus.RECOVERED
    assert unreadable.is_dir()


def test_a_leftover_journal_beside_an_invalid_episode_is_quarantined(tmp_path):
    out, journal = crashed_recording(tmp_path, rows=30)
    final = out / f"{journal.name.removesuffix('.journal')}.h5"
    final.write_bytes(b"not an episode")
    [result] = recover_directory(out)
    assert result.status is RecoveryStatus.QUARANTINED and result.episode == final and result.rows == 0
    assert "not overwritten; journal kept in quarantine (not an HDF5 file); journal moved to " in result.note
    assert final.read_bytes() == b"not an episode"


def test_a_leftover_journal_is_quarantined_when_the_episode_lacks_a_stream(tmp_path):
    out, journal = crashed_recording(tmp_path, rows=10)  # one camera frame
    data = journal.read_bytes()
    [recovered] = recover_directory(out)
    with h5py.File(recovered.episode, "a") as f:
        del f["cameras"]
    journal.write_bytes(data)
    [result] = recover_directory(out)
    assert result.status is RecoveryStatus.QUARANTINED and "(lacks rows of cameras/side)" in result.note


def test_a_damaged_leftover_journal_is_quarantined_even_beside_a_complete_episode(tmp_path):
    kept = tmp_path / "kept.journal"
    recorder = Recorder(RecorderConfig(tmp_path / "out", on_phase=lambda phase: phase == "published" and
                                       shutil.copyfile(recorder.paths.journal, kept)), metadata())
    with recorder:
        recorder.add_stream(control_spec(["boom"])).put((now_ns(), [0.5], True))
    data = kept.read_bytes()
    spans = record_spans(data)
    flipped = bytearray(data)
    flipped[spans[-1].offset + HEADER.size + 1] ^= 0x01
    recorder.paths.journal.write_bytes(bytes(flipped))
    [result] = recover_directory(tmp_path / "out")
    assert result.status is RecoveryStatus.QUARANTINED and "skipped 1 damaged range(s)" in result.note
    assert validate_episode(recorder.paths.final) == []


def test_recovering_a_journal_a_recorder_holds_leaves_it_alone(tmp_path):
    with Recorder(RecorderConfig(tmp_path), metadata()) as recorder:
        result = recover_journal(recorder.paths.journal)
        assert result.status is RecoveryStatus.KEPT and result.journal == recorder.paths.journal
        assert result.line() == f"{recorder.paths.journal}: kept: journal is held by a running recorder"
        assert result.episode is None and result.rows == 0


def test_a_second_quarantine_of_the_same_episode_keeps_the_first(tmp_path):
    recording = tmp_path / ".recording"
    recording.mkdir()
    for content in (b"", b"EXCA"):
        (recording / "same.journal").write_bytes(content)
        [result] = recover_directory(tmp_path)
        assert result.status is RecoveryStatus.QUARANTINED
    folder = quarantine_dir(tmp_path)
    assert (folder / "same.journal").read_bytes() == b"" and (folder / "same.2.journal").read_bytes() == b"EXCA"
    assert (folder / "same.note").read_text() == "empty journal (the recorder stopped before its first write)\n"
    assert (folder / "same.2.note").read_text() == "no readable record in 4 bytes\n"
    assert result.quarantined == folder / "same.2.journal" and result.journal == recording / "same.journal"
    assert result.note.endswith(f"; journal moved to {folder / 'same.2.journal'}")


def journal_with(tmp_path, attrs, control_rows):
    """A crashed recorder's journal written with the real writer: metadata and control rows in batches."""
    recording = tmp_path / ".recording"
    recording.mkdir()
    control = control_spec(["boom"])
    writer = JournalWriter(recording / "20261204T000000Z_exc-1_000001.journal")
    writer.write_metadata(metadata(episode_id="20261204T000000Z_exc-1_000001").to_attrs() | {
        "start_t_ns": 1_000, "started_at": "2026-12-04T00:00:00Z", "clock_offset_ns": 0, "recovered": False,
        **attrs})
    for start in range(0, control_rows, 2000):
        rows = [(2_000 + i, [i / control_rows], True) for i in range(start, min(control_rows, start + 2000))]
        writer.write_batch(control, rows_to_batch(control, rows))
    writer.close()


def test_many_rows_are_rebuilt_in_order_with_chunks_sized_for_them(tmp_path):
    journal_with(tmp_path, {}, 20_000)
    [result] = recover_directory(tmp_path)
    assert result.status is RecoveryStatus.RECOVERED and result.rows == 20_000
    with h5py.File(result.episode, "r") as f:
        t_ns = f["control/t_ns"]
        assert t_ns[()].tolist() == list(range(2_000, 22_000))
        assert t_ns.chunks == (16384,)  # 20,000 int64 rows: 160 kB, the largest power of two of rows below
        assert f.attrs["start_t_ns"] == 1_000 and f.attrs["end_t_ns"] == 21_999
        assert f.attrs["duration_s"] == (21_999 - 1_000) / 1e9
        assert f["events/kind"][-1] == b"recovered"
        detail = json.loads(f["events/detail"][-1])
        assert detail.pop("recovered_at_t_ns") > 0
        assert detail == {"journal_records": 12, "rows": 20_000, "skipped_ranges": 0, "skipped_bytes": 0,
                          "unusable_records": 0, "torn_tail": "", "metadata_from": "journal"}
    assert result.note == "recovered 20000 rows from 12 journal records"  # metadata, declaration, 10 batches


def test_a_journal_cut_by_the_crash_is_fully_recovered_and_says_so(tmp_path):
    journal_with(tmp_path, {}, 4_000)
    [journal] = (tmp_path / ".recording").glob("*.journal")
    journal.write_bytes(journal.read_bytes()[:-100])
    [result] = recover_directory(tmp_path)
    assert result.status is RecoveryStatus.RECOVERED and result.rows == 2_000 and not journal.exists()
    assert result.note.startswith("recovered 2000 rows from 3 journal records; last ")
    assert result.note.endswith(" bytes cut short (record cut short)")
    with h5py.File(result.episode, "r") as f:
        assert json.loads(f["events/detail"][-1])["torn_tail"] == "record cut short"


def test_only_attributes_hdf5_can_hold_are_taken_from_the_journal(tmp_path):
    odd = {"": "empty name", "nul\0name": 1, "a_text": "fine", "b_nul": "x\0y", "c_max": 2**63 - 1,
           "d_over": 2**63, "e_min": -(2**63), "f_under": -(2**63) - 1, "g_flag": True, "h_ratio": 0.5,
           "i_list": [1, 2], "j_none": None, "X_marks": "kept"}
    journal_with(tmp_path, odd, 10)
    [result] = recover_directory(tmp_path)
    assert result.status is RecoveryStatus.RECOVERED
    with h5py.File(result.episode, "r") as f:
        names = set(f.attrs.keys())
        kept = {k: f.attrs[k] for k in odd if k in names}
    assert not any(name.startswith("nul") for name in names)
    assert kept == {"a_text": "fine", "c_max": 2**63 - 1, "e_min": -(2**63), "g_flag": True, "h_ratio": 0.5,
                    "X_marks": "kept"}


def test_without_room_to_rebuild_the_journal_is_kept_untouched(tmp_path):
    out, journal = crashed_recording(tmp_path, rows=50)
    data = journal.read_bytes()
    partial = journal.with_name(journal.name.replace(".journal", ".h5.partial"))
    free = free_bytes(out)
    result = recover_journal(journal, reserve_bytes=free)  # the reserve alone takes every free byte
    assert result.status is RecoveryStatus.KEPT and result.episode is None and result.rows == 0
    assert result.journal == journal
    assert result.note.startswith(f"not enough free disk space to rebuild it ({describe(free_bytes(out))} free, "
                                  "needs about ")
    assert result.note.endswith(f"MB); journal kept, free some space and run `excap recover {out}`")
    needed_mb = float(result.note.split("needs about ")[1].split(" MB")[0])
    assert len(data) / 1e6 + 8 + free / 1e6 <= needed_mb + 0.1
    assert journal.read_bytes() == data and partial.exists() and list(out.glob("*.h5")) == []
    assert recover_journal(journal).status is RecoveryStatus.RECOVERED


def test_a_rebuild_holds_a_bounded_amount_of_frames_whatever_the_number_of_cameras(tmp_path):
    """Frames wait for writing under one budget for all streams: 4 cameras of 10 MB each are rebuilt holding less
    than a third of them at any time (each stream's own budget would hold all 40 MB until the end)."""
    recording = tmp_path / ".recording"
    recording.mkdir()
    episode_id = "20261204T000000Z_exc-1_000002"
    writer = JournalWriter(recording / f"{episode_id}.journal")
    writer.write_metadata(metadata(episode_id=episode_id).to_attrs() | {
        "start_t_ns": 1_000, "started_at": "2026-12-04T00:00:00Z", "clock_offset_ns": 0, "recovered": False})
    control = control_spec(["boom"])
    writer.write_batch(control, rows_to_batch(control, [(2_000, [0.0], True)]))
    cameras = [camera_spec(f"cam{n}", 160, 120, 30, "test") for n in range(4)]
    frame = jpeg_frame(7, 160, 120)
    batches = -(-10_000_000 // (5 * len(frame)))  # 5 frames per batch, 10 MB per camera
    for number in range(batches):
        for camera in cameras:
            rows = [(2_000 + 5 * number + i, 0, frame) for i in range(5)]
            writer.write_batch(camera, rows_to_batch(camera, rows))
    writer.close()
    tracemalloc.start()
    try:
        [result] = recover_directory(tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status is RecoveryStatus.RECOVERED and result.rows == 1 + 4 * 5 * batches
    assert peak < 3 * PENDING_BYTES, f"{peak / 1e6:.1f} MB held"
    with h5py.File(result.episode, "r") as f:
        assert all(f[f"cameras/cam{n}/frames"].shape == (5 * batches,) for n in range(4))
