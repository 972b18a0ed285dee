import numpy as np
import pytest

from capture_node.errors import JournalError
from capture_node.journal import HEADER, JournalWriter, journal_is_live, read_journal, scan_journal
from capture_node.streams import camera_spec, control_spec, events_spec, rows_to_batch
from tests.support.journals import record_spans


def write_sample_journal(path, checkpoint=False):
    control, camera, events = control_spec(["boom", "arm"]), camera_spec("side", 4, 4, 30, "test"), events_spec()
    writer = JournalWriter(path)
    writer.write_metadata({"episode_id": "e1", "start_t_ns": 10})
    writer.write_batch(control, rows_to_batch(control, [(11, [0.5, -0.25], True), (12, [0.0, 1.0], False)]))
    writer.write_batch(camera, rows_to_batch(camera, [(13, 0, b"\xff\xd8jpeg"), (14, 33, b"")]))
    writer.update_metadata({"outcome": "success"})
    if checkpoint:
        writer.checkpoint()
    writer.write_batch(events, rows_to_batch(events, [(15, "marker", '{"n": "é"}')]))
    return writer


def test_round_trip_of_every_column_kind(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    scan, batches = read_journal(path)
    got = list(batches)
    assert scan.metadata == {"episode_id": "e1", "start_t_ns": 10, "outcome": "success"}
    assert [spec.path for spec, _ in got] == ["control", "cameras/side", "events"]
    control = got[0][1]
    np.testing.assert_array_equal(control["t_ns"], [11, 12])
    np.testing.assert_array_equal(control["commands"], np.array([[0.5, -0.25], [0.0, 1.0]], np.float32))
    assert control["enabled"].tolist() == [True, False]
    assert [bytes(f) for f in got[1][1]["frames"]] == [b"\xff\xd8jpeg", b""]
    assert got[2][1]["detail"] == ['{"n": "é"}']
    assert scan.intact and scan.torn_tail is None and scan.damaged == []
    assert scan.rows == {0: 2, 1: 2, 2: 1}


@pytest.mark.parametrize("cut", [1, 7, 20])
def test_torn_tail_keeps_every_whole_record(tmp_path, cut):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    scan, batches = read_journal(path)
    assert [spec.path for spec, _ in batches] == ["control", "cameras/side"]
    assert scan.metadata["outcome"] == "success"
    assert scan.torn_tail is not None and "cut short" in scan.torn_tail.reason
    assert scan.intact  # a torn tail is what a crash leaves, not damage


def test_zero_filled_tail_is_a_torn_tail(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    path.write_bytes(path.read_bytes() + bytes(4096))
    scan = scan_journal(path)
    assert scan.torn_tail is not None and scan.torn_tail.reason == "zero-filled tail" and scan.intact


def test_a_damaged_record_in_the_middle_is_skipped_and_the_rest_is_read(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    data = bytearray(path.read_bytes())
    spans = record_spans(bytes(data))
    camera_batch = [s for s in spans if s.kind == 3][1]
    data[camera_batch.offset + HEADER.size + 3] ^= 0x10
    path.write_bytes(bytes(data))
    scan, batches = read_journal(path)
    assert [spec.path for spec, _ in batches] == ["control", "events"]
    assert scan.metadata["outcome"] == "success"
    assert not scan.intact
    assert scan.skipped_bytes == camera_batch.length and len(scan.damaged) == 1


def test_a_damaged_last_record_is_damage_not_a_cut(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    scan, batches = read_journal(path)
    assert len(list(batches)) == 2
    assert not scan.intact and scan.damaged[0].reason == "unreadable bytes up to the end"


def test_damaged_metadata_and_declarations_are_made_good_by_the_checkpoint(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path, checkpoint=True).close()
    data = bytearray(path.read_bytes())
    spans = record_spans(bytes(data))
    first_metadata, first_control_declaration = spans[0], spans[1]
    assert (first_metadata.kind, first_control_declaration.kind) == (1, 2)
    for span in (first_metadata, first_control_declaration):
        data[span.offset + HEADER.size + 1] ^= 0x01
    path.write_bytes(bytes(data))
    scan, batches = read_journal(path)
    # The control batch comes before its (damaged) declaration's copy, and is still decoded.
    assert [spec.path for spec, _ in batches] == ["control", "cameras/side", "events"]
    assert scan.metadata == {"episode_id": "e1", "start_t_ns": 10, "outcome": "success"}
    assert scan.metadata_records == 1
    assert scan.skipped_bytes == first_metadata.length + first_control_declaration.length


def test_a_flipped_file_magic_still_reads_every_record(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    data = bytearray(path.read_bytes())
    data[2] ^= 0x04
    path.write_bytes(bytes(data))
    scan, batches = read_journal(path)
    assert len(list(batches)) == 3 and not scan.has_magic and not scan.intact


@pytest.mark.parametrize("content", [b"", b"EXCA", b"hello world, not a journal at all"])
def test_empty_cut_and_foreign_files_have_no_records(tmp_path, content):
    path = tmp_path / "x.journal"
    path.write_bytes(content)
    scan, batches = read_journal(path)
    assert scan.empty and list(batches) == []


def test_missing_file_is_a_journal_error(tmp_path):
    with pytest.raises(JournalError, match="cannot read journal"):
        scan_journal(tmp_path / "gone.journal")


def test_lock_tells_live_from_orphaned(tmp_path):
    path = tmp_path / "a.journal"
    writer = write_sample_journal(path)
    assert journal_is_live(path)
    writer.close()
    assert not journal_is_live(path)
    with pytest.raises(JournalError, match="already exists"):
        JournalWriter(path)


def test_a_header_cut_short_at_the_end_is_a_torn_tail(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    data = path.read_bytes()
    last = record_spans(data)[-1]
    for keep, reason in ((5, "record header cut short"), (HEADER.size, "record cut short"),
                         (HEADER.size + 3, "record cut short")):
        path.write_bytes(data[:last.offset + keep])
        scan = scan_journal(path)
        assert scan.intact and scan.torn_tail is not None and scan.torn_tail.reason == reason, keep
        assert scan.torn_tail.offset == last.offset and scan.torn_tail.length == keep


@pytest.mark.parametrize("tail", [b"XXXXXXXXXXXXXXXXXXXXXXXX", b"\x01\x02junk", b"EXJR\x09" + bytes(20)])
def test_garbage_after_the_last_record_is_damage_not_a_cut(tmp_path, tail):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    path.write_bytes(path.read_bytes() + tail)
    scan, batches = read_journal(path)
    assert len(list(batches)) == 3
    assert not scan.intact and scan.torn_tail is None and scan.skipped_bytes == len(tail)


def test_false_record_magic_inside_damage_is_passed_over(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    data = path.read_bytes()
    second = record_spans(data)[1]
    junk = b"\x00EXJR\x03\x00\x00\x00\x10\x00\x00\x00\xde\xad\xbe\xefEXJRjunk"
    path.write_bytes(data[:second.offset] + junk + data[second.offset:])
    scan, batches = read_journal(path)
    assert [spec.path for spec, _ in batches] == ["control", "cameras/side", "events"]
    assert scan.skipped_bytes == len(junk) and len(scan.damaged) == 1
    assert scan.damaged[0].offset == second.offset and scan.damaged[0].reason == "bad record header or checksum"
    assert f"skipped 1 damaged range(s) of {len(junk)} bytes" in scan.summary()


def test_a_missing_journal_is_not_live(tmp_path):
    assert not journal_is_live(tmp_path / "gone.journal")
