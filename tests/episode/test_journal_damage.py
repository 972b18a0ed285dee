"""A real journal cut and bit-flipped at hundreds of offsets, and fuzzed: recovery never crashes, keeps every
intact record, and never deletes a journal it did not fully recover.

The rows a recovery must return are computed from the undamaged journal's record boundaries
(tests.support.journals), independently of the reader under test.
"""

import json
import os
import random
import shutil
import statistics
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from excap.core.clock import now_ns
from excap.episode.journal_reader import read_journal
from excap.episode.metadata import EpisodeMetadata
from excap.episode.streams import camera_spec, control_spec, joystick_spec
from excap.episode.validation import validate_episode
from excap.record.recorder import Recorder, RecorderConfig
from excap.record.recovery import RecoveryStatus, quarantine_dir, recover_journal
from tests.support.fuzzing import fuzz_settings, tried
from tests.support.journals import BATCH, expected_rows, record_spans
from tests.support.jpeg import jpeg_frame
from tests.support.report import record

SCALE = float(os.environ.get("EXCAP_FUZZ_SCALE", "1"))  # see tests/support/fuzzing.py
CUTS = max(20, int(200 * SCALE))
FLIPS = max(20, int(200 * SCALE))
EPISODE_ID = "20261204T000000Z_exc-1_abcdef"


@pytest.fixture(scope="module")
def real_journal(tmp_path_factory):
    """The whole journal of a short real recording (three streams, every column kind), as bytes."""
    out = tmp_path_factory.mktemp("journal")
    kept = out / "kept.journal"
    recorder = Recorder(RecorderConfig(out, journal_interval_s=0.05, on_phase=lambda phase: (
        phase == "writers_done" and shutil.copyfile(recorder.paths.journal, kept))),
        EpisodeMetadata(machine_kind="excavator", machine_model="m", machine_id="exc-1", control_pattern="iso",
                        profile="excavator_20t", episode_id=EPISODE_ID))
    with recorder:
        control = recorder.add_stream(control_spec(["boom", "arm"]))
        joystick = recorder.add_stream(joystick_spec("op", ["x", "y"], ["a"], "sim", "test"))
        camera = recorder.add_stream(camera_spec("side", 8, 8, 30, "test"))
        recorder.set_outcome("success")
        for i in range(40):
            for j in range(10):
                t_ns = now_ns()
                control.put((t_ns, [i / 40, -j / 10], True))
                joystick.put((t_ns, t_ns, [0.1, 0.2], [j % 2]))
            camera.put((now_ns(), 0, jpeg_frame(i)))
            recorder.event("marker", n=i)
            # Spread the rows over many journal drains (each drain writes one record per stream).
            deadline = now_ns() + 12_000_000
            while now_ns() < deadline:
                pass
    return kept.read_bytes()


def recover_bytes(folder, data):
    """Put `data` where a crashed recorder leaves its journal, recover it, and return the result."""
    recording = folder / ".recording"
    recording.mkdir(parents=True)
    journal = recording / f"{EPISODE_ID}.journal"
    journal.write_bytes(data)
    result = recover_journal(journal)
    assert result.status is not RecoveryStatus.KEPT, result.note
    if result.episode is not None:
        assert validate_episode(result.episode) == []
    if result.status is not RecoveryStatus.RECOVERED:  # anything short of a full recovery keeps the journal
        kept = quarantine_dir(folder) / journal.name
        assert kept.read_bytes() == data and kept.with_suffix(".note").read_text().strip()
    return result


def test_the_real_journal_spans_many_records(real_journal):
    spans = record_spans(real_journal)
    assert len(spans) > 40 and sum(s.rows for s in spans if s.kind == BATCH) > 800


def test_cut_at_hundreds_of_offsets_recovers_every_whole_record(real_journal, tmp_path):
    spans = record_spans(real_journal)
    rng = random.Random(11)
    offsets = sorted(rng.sample(range(1, len(real_journal)), CUTS))
    fractions, published = [], 0
    total = expected_rows(spans, None)
    for index, cut in enumerate(offsets):
        result = recover_bytes(tmp_path / str(index), real_journal[:cut])
        want = expected_rows(spans, None, cut_at=cut)
        if result.episode is not None:
            published += 1
            assert result.rows == want, f"cut at {cut}"
            assert result.status is RecoveryStatus.RECOVERED  # a cut is what a crash leaves: fully recovered
        fractions.append(result.rows / total)
    record("journal damage", "cuts: offsets / episodes published", [CUTS, published])
    record("journal damage", "cuts: median fraction of rows recovered", round(statistics.median(fractions), 3))
    assert published >= CUTS * 0.9  # only cuts inside the first records (before /control) publish nothing


def test_a_bit_flipped_at_hundreds_of_offsets_loses_only_the_damaged_record(real_journal, tmp_path):
    spans = record_spans(real_journal)
    rng = random.Random(12)
    offsets = sorted(rng.sample(range(len(real_journal)), FLIPS))
    total = expected_rows(spans, None)
    fractions, quarantined, deleted_as_cut = [], 0, 0
    for index, offset in enumerate(offsets):
        data = bytearray(real_journal)
        data[offset] ^= 1 << rng.randrange(8)
        result = recover_bytes(tmp_path / str(index), bytes(data))
        assert result.episode is not None, f"flip at {offset}: {result.note}"
        assert result.rows == expected_rows(spans, (offset, offset + 1)), f"flip at {offset}"
        fractions.append(result.rows / total)
        if result.status is RecoveryStatus.RECOVERED:
            # Only a flip that makes the last record look longer than the file reads as a crash's cut.
            assert spans[-1].offset <= offset < spans[-1].end, f"flip at {offset}: journal deleted"
            deleted_as_cut += 1
        else:
            quarantined += 1
    record("journal damage", "flips: offsets / journals quarantined / read as a cut tail",
           [FLIPS, quarantined, deleted_as_cut])
    record("journal damage", "flips: median fraction of rows recovered", round(statistics.median(fractions), 4))


# -- fuzzing ------------------------------------------------------------------------------------


def _record(kind: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(bytes([kind])))
    return struct.pack("<4sBBHII", b"EXJR", kind, 0, 0, len(payload), crc) + payload


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
checksummed_records = st.lists(st.one_of(
    st.builds(lambda d: _record(1, json.dumps(d).encode()), st.dictionaries(st.text(max_size=12), json_values,
                                                                            max_size=6)),
    st.builds(lambda d: _record(2, json.dumps(d).encode()), json_values),
    st.builds(lambda i, rows, body: _record(3, struct.pack("<HI", i, rows) + body),
              st.integers(0, 3), st.integers(0, 2**32 - 1), st.binary(max_size=64)),
    st.builds(lambda kind, body: _record(kind, body), st.integers(0, 255), st.binary(max_size=32)),
), max_size=8)


@fuzz_settings(150)
@given(data=st.binary(max_size=2048))
def test_fuzz_arbitrary_bytes(tmp_path_factory, data):
    tried("journal recovery: arbitrary bytes")
    path = tmp_path_factory.mktemp("fuzz") / "reader.journal"
    path.write_bytes(data)
    scan, batches = read_journal(path)
    assert sum(1 for _ in batches) <= scan.records
    recover_bytes(tmp_path_factory.mktemp("fuzz"), data)


@fuzz_settings(150)
@given(records=checksummed_records, magic=st.booleans())
def test_fuzz_checksummed_records_of_any_content(tmp_path_factory, records, magic):
    tried("journal recovery: checksummed records of any content")
    recover_bytes(tmp_path_factory.mktemp("fuzz"), (b"EXCAPJ1\n" if magic else b"") + b"".join(records))


@fuzz_settings(100)
@given(seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 12), cut=st.floats(0.0, 1.0))
def test_fuzz_mutated_real_journals(real_journal, tmp_path_factory, seed, flips, cut):
    tried("journal recovery: mutated real journal")
    rng = random.Random(seed)
    data = bytearray(real_journal[:max(1, int(len(real_journal) * cut))] if cut < 0.999 else real_journal)
    for _ in range(flips):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    recover_bytes(tmp_path_factory.mktemp("fuzz"), bytes(data))
