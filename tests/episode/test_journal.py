import json
import struct
import threading

import numpy as np
import pytest

from excap.bench.measure import peak_rss_mb, rss_mb
from excap.core.errors import JournalError
from excap.episode.journal import (
    HEADER,
    JournalWriter,
    RecordKind,
    decode_batch,
    encode_batch,
    encode_record,
    journal_is_live,
)
from excap.episode.journal_reader import RELEASE_BYTES, Damage, read_journal, scan_journal
from excap.episode.streams import camera_spec, control_spec, events_spec, rows_to_batch
from tests.support.descriptors import descriptors_to
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
    assert scan.damaged[0].offset == record_spans(path.read_bytes()[:0] + bytes(data))[-1].offset


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
    with pytest.raises(JournalError, match=r"gone.journal: cannot read journal \(No such file or directory\)$"):
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
    assert scan.summary() == f"skipped 1 damaged range(s) of {len(junk)} bytes"


def test_a_missing_journal_is_not_live(tmp_path):
    assert not journal_is_live(tmp_path / "gone.journal")


def batch_payload(index, rows, body):
    return struct.pack("<HI", index, rows) + body


def test_batches_that_do_not_fit_their_stream_are_refused_with_the_reason():
    events, control = events_spec(), control_spec(["boom"])
    specs = {0: events, 1: control}
    with pytest.raises(JournalError, match="undeclared stream #7"):
        decode_batch(batch_payload(7, 1, b""), specs)
    t_ns = struct.pack("<q", 5)
    with pytest.raises(JournalError, match=r"'events' is shorter than its 1 rows"):
        decode_batch(batch_payload(0, 1, t_ns + b"\x02\x00"), specs)  # value lengths cut short
    with pytest.raises(JournalError, match=r"'events' is shorter than its values"):
        decode_batch(batch_payload(0, 1, t_ns + struct.pack("<I", 9) + b"abc"), specs)
    with pytest.raises(JournalError, match="text is not UTF-8"):
        decode_batch(batch_payload(0, 1, t_ns + struct.pack("<I", 2) + b"\xff\xfe"), specs)
    with pytest.raises(JournalError, match=r"'control' is shorter than its 2 rows"):
        decode_batch(batch_payload(1, 2, t_ns * 2 + bytes(7)), specs)  # commands: 8 bytes needed
    with pytest.raises(JournalError, match="'control' has 3 stray bytes"):
        decode_batch(batch_payload(1, 1, t_ns + bytes(4) + b"\x01" + b"xyz"), specs)
    with pytest.raises(JournalError, match=r"^batch record shorter than its header$"):
        decode_batch(b"\x00\x00", specs)


def test_empty_values_at_the_very_end_of_a_batch_decode():
    events = events_spec()
    payload = encode_batch(0, events, rows_to_batch(events, [(1, "", ""), (2, "", "")]))
    index, batch = decode_batch(payload, {0: events})
    assert index == 0 and batch["kind"] == ["", ""] and batch["detail"] == ["", ""]


def test_unusable_records_are_counted_and_reported(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    path.write_bytes(path.read_bytes() + encode_record(RecordKind.METADATA_UPDATE, b"[1, 2]")
                     + encode_record(RecordKind.STREAM, b"{not json"))
    scan, batches = read_journal(path)
    assert len(list(batches)) == 3
    assert scan.unusable_records == 2 and not scan.intact and scan.damaged == []
    assert scan.summary() == "skipped 0 damaged range(s) of 0 bytes and 2 unusable record(s)"


def test_checkpoints_come_at_their_interval_and_the_journal_is_private_to_its_owner(tmp_path):
    path = tmp_path / "a.journal"
    writer = JournalWriter(path, checkpoint_interval_s=60)
    writer.write_metadata({"episode_id": "e1"})
    for _ in range(3):
        writer.checkpoint_if_due()
    writer.close()
    assert [s.kind for s in record_spans(path.read_bytes())] == [1, 1]
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_file_header_cut_short_is_a_torn_tail_of_an_empty_journal(tmp_path):
    path = tmp_path / "a.journal"
    path.write_bytes(b"EXCA")
    scan = scan_journal(path)
    assert scan.empty and not scan.has_magic and scan.damaged == []
    assert scan.torn_tail is not None and scan.torn_tail.reason == "file header cut short"
    assert scan.torn_tail.length == 4 and scan.torn_tail.offset == 0
    path.write_bytes(b"EXCAPJ1\n" + b"EXJR\x01")
    scan = scan_journal(path)
    assert scan.has_magic and scan.torn_tail is not None and scan.torn_tail.reason == "record header cut short"
    assert scan.torn_tail.offset == 8


def test_a_record_with_reserved_bits_set_is_damage(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    data = bytearray(path.read_bytes())
    second = record_spans(bytes(data))[1]
    data[second.offset + 5] = 1  # the reserved byte after the kind; the checksum does not cover it
    path.write_bytes(bytes(data))
    scan, batches = read_journal(path)
    assert scan.damaged[0].offset == second.offset and scan.damaged[0].length == second.length
    assert [spec.path for spec, _ in batches] == ["cameras/side", "events"]


def test_declarations_without_a_number_count_in_order_and_conflicting_ones_are_unusable(tmp_path):
    control, events = control_spec(["boom"]), events_spec()
    path = tmp_path / "a.journal"
    old_style = [encode_record(RecordKind.STREAM, json.dumps(spec.to_json()).encode()) for spec in (control, events)]
    conflicting = encode_record(RecordKind.STREAM, json.dumps(control_spec(["arm", "x"]).to_json() | {"index": 0})
                                .encode())
    rows = [encode_record(RecordKind.BATCH, encode_batch(1, events, rows_to_batch(events, [(3, "a", "{}")]))),
            encode_record(RecordKind.BATCH, encode_batch(0, control, rows_to_batch(control, [(4, [0.5], True)])))]
    path.write_bytes(b"EXCAPJ1\n" + b"".join(old_style) + conflicting + b"".join(rows))
    scan, batches = read_journal(path)
    assert [spec.path for spec, _ in batches] == ["events", "control"]
    assert scan.streams == {0: control, 1: events} and scan.unusable_records == 1 and scan.records == 4


def test_checksummed_records_with_bad_payloads_are_unusable_not_fatal(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    before = scan_journal(path)
    path.write_bytes(path.read_bytes() + encode_record(RecordKind.BATCH, b"\x00\x00\x01")
                     + encode_record(RecordKind.BATCH, batch_payload(0, 1, b"junk"))
                     + encode_record(RecordKind.METADATA, b'"text"'))
    scan, batches = read_journal(path)
    assert scan.records == before.records + 1 and scan.unusable_records == 2  # the bad batch counts until read
    assert len(list(batches)) == 3
    assert scan.records == before.records and scan.unusable_records == 3 and scan.rows == before.rows
    assert scan.metadata == before.metadata and scan.metadata_records == before.metadata_records == 1


def test_the_summary_names_damage_and_a_torn_tail_in_one_line(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    data = bytearray(path.read_bytes())
    spans = record_spans(bytes(data))
    data[spans[2].offset + HEADER.size] ^= 0x01
    path.write_bytes(bytes(data[:-3]))
    assert scan_journal(path).summary() == (f"skipped 1 damaged range(s) of {spans[2].length} bytes; "
                                            f"last {spans[-1].length - 3} bytes cut short (record cut short)")


def test_records_from_offset_zero_are_read_without_the_file_magic(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    path.write_bytes(path.read_bytes()[8:])
    scan, batches = read_journal(path)
    assert len(list(batches)) == 3 and scan.records == len(record_spans(b"EXCAPJ1\n" + path.read_bytes()))
    assert scan.damaged == [] and not scan.has_magic


def test_a_journal_of_only_its_file_magic_is_empty_and_whole(tmp_path):
    path = tmp_path / "a.journal"
    path.write_bytes(b"EXCAPJ1\n")
    scan = scan_journal(path)
    assert scan.empty and scan.has_magic and scan.torn_tail is None and scan.damaged == []


def test_one_stray_byte_before_a_record_costs_nothing_but_itself(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    data = path.read_bytes()
    third = record_spans(data)[2]
    path.write_bytes(data[:third.offset] + b"Z" + data[third.offset:])
    scan, batches = read_journal(path)
    assert len(list(batches)) == 3 and scan.damaged == [Damage(third.offset, 1, "bad record header or checksum")]


def test_a_record_with_an_empty_payload_at_the_end_is_a_whole_record(tmp_path):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    path.write_bytes(path.read_bytes() + encode_record(RecordKind.METADATA_UPDATE, b""))
    scan = scan_journal(path)
    assert scan.unusable_records == 1 and scan.damaged == [] and scan.torn_tail is None


@pytest.mark.parametrize(("where", "value"), [(0, b"F"), (4, bytes([2]))])  # the record magic; the kind
def test_a_record_whose_magic_or_kind_changed_is_damage(tmp_path, where, value):
    path = tmp_path / "a.journal"
    write_sample_journal(path).close()
    data = bytearray(path.read_bytes())
    batch = record_spans(bytes(data))[2]
    assert batch.kind == 3
    data[batch.offset + where:batch.offset + where + 1] = value
    path.write_bytes(bytes(data))
    scan, batches = read_journal(path)
    assert scan.damaged == [Damage(batch.offset, batch.length, "bad record header or checksum")]
    assert scan.unusable_records == 0 and [spec.path for spec, _ in batches] == ["cameras/side", "events"]


def test_two_row_batches_cut_short_are_refused():
    events = events_spec()
    with pytest.raises(JournalError, match=r"'events' is shorter than its 2 rows"):
        decode_batch(batch_payload(0, 2, struct.pack("<qq", 1, 2) + bytes(5)), {0: events})


def test_a_removed_journal_loses_its_name_at_once_and_its_space_on_release(tmp_path):
    path = tmp_path / "a.journal"
    writer = write_sample_journal(path)
    writer.flush()
    writer.remove()
    assert not path.exists()
    assert len(descriptors_to(path)) == 1  # still open (and locked) until released
    released = threading.Thread(target=writer.release)
    released.start()
    released.join(timeout=20)
    assert descriptors_to(path) == []  # the deleted file's disk space is freed
    writer.close()  # nothing left to close: no error, no stray write
    assert not path.exists()
    JournalWriter(path).close()  # the name is free for a new journal


def test_reading_a_large_journal_keeps_only_a_window_of_it_resident(tmp_path):
    """Both passes over a journal six windows long raise the process's peak resident size by less than two windows
    (mapped pages count in it: holding the whole file mapped raised it by the whole journal)."""
    path = tmp_path / "large.journal"
    camera = camera_spec("front", 640, 480, 30, "test")
    frame = np.random.default_rng(3).bytes(256 * 1024)
    batches = 6 * RELEASE_BYTES // (4 * len(frame))
    writer = JournalWriter(path)
    writer.write_metadata({"episode_id": "e1", "start_t_ns": 0})
    for number in range(batches):
        writer.write_batch(camera, rows_to_batch(camera, [(4 * number + i, 0, frame) for i in range(4)]))
    writer.close()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # the peak resident size starts again from the resident size now
    before_mb = rss_mb()
    scan, read = read_journal(path)
    rows = sum(len(batch["t_ns"]) for _, batch in read)
    rise = (peak_rss_mb() - before_mb) * 1e6
    assert scan.intact and rows == 4 * batches
    assert path.stat().st_size >= 6 * RELEASE_BYTES
    assert rise < 2 * RELEASE_BYTES, f"peak resident size rose by {rise / 1e6:.1f} MB"
