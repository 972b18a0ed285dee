import numpy as np
import pytest

from capture_node.errors import JournalError
from capture_node.journal import JournalWriter, journal_is_live, read_journal
from capture_node.streams import camera_spec, control_spec, events_spec, rows_to_batch


def write_sample_journal(path):
    control, camera, events = control_spec(["boom", "arm"]), camera_spec("side", 4, 4, 30, "test"), events_spec()
    writer = JournalWriter(path)
    writer.write_metadata({"episode_id": "e1", "start_t_ns": 10})
    writer.write_batch(control, rows_to_batch(control, [(11, [0.5, -0.25], True), (12, [0.0, 1.0], False)]))
    writer.write_batch(camera, rows_to_batch(camera, [(13, 0, b"\xff\xd8jpeg"), (14, 33, b"")]))
    writer.update_metadata({"outcome": "success"})
    writer.write_batch(events, rows_to_batch(events, [(15, "marker", '{"n": "é"}')]))
    return writer


def test_round_trip_of_every_column_kind(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    contents, batches = read_journal(path)
    got = list(batches)
    assert contents.metadata == {"episode_id": "e1", "start_t_ns": 10, "outcome": "success"}
    assert [spec.path for spec, _ in got] == ["control", "cameras/side", "events"]
    control = got[0][1]
    np.testing.assert_array_equal(control["t_ns"], [11, 12])
    np.testing.assert_array_equal(control["commands"], np.array([[0.5, -0.25], [0.0, 1.0]], np.float32))
    assert control["enabled"].tolist() == [True, False]
    assert [bytes(f) for f in got[1][1]["frames"]] == [b"\xff\xd8jpeg", b""]
    assert got[2][1]["detail"] == ['{"n": "é"}']
    assert contents.torn_tail == ""


@pytest.mark.parametrize("cut", [1, 7, 20])
def test_torn_tail_keeps_every_whole_record(tmp_path, cut):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    contents, batches = read_journal(path)
    assert [spec.path for spec, _ in batches] == ["control", "cameras/side"]
    assert contents.metadata["outcome"] == "success"
    assert "cut short" in contents.torn_tail


def test_corrupted_record_stops_reading_at_the_checksum(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    contents, batches = read_journal(path)
    assert len(list(batches)) == 2
    assert contents.torn_tail == "record checksum mismatch"


def test_foreign_file_is_refused(tmp_path):
    path = tmp_path / "x.journal"
    path.write_bytes(b"hello world")
    with pytest.raises(JournalError, match="not an excap journal"):
        read_journal(path)


def test_lock_tells_live_from_orphaned(tmp_path):
    path = tmp_path / "a.journal"
    writer = write_sample_journal(path)
    assert journal_is_live(path)
    writer.close()
    assert not journal_is_live(path)
    with pytest.raises(JournalError, match="already exists"):
        JournalWriter(path)
