import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from excap.core.clock import now_ns
from excap.core.errors import EpisodeError
from excap.episode.metadata import EpisodeMetadata
from excap.episode.streams import camera_spec, can_spec, control_spec
from excap.record.recorder import Recorder, RecorderConfig
from tests.support.descriptors import descriptors_to
from tests.support.waiting import wait_for


def metadata(**overrides):
    return EpisodeMetadata(**{"machine_kind": "excavator", "machine_model": "m", "machine_id": "exc-1",
                              "control_pattern": "iso", "profile": "excavator_20t", **overrides})


def test_rows_reach_the_episode_in_order_with_metadata(tmp_path):
    with Recorder(RecorderConfig(tmp_path), metadata(operator_id="op-7")) as recorder:
        control = recorder.add_stream(control_spec(["boom", "arm"]))
        sent = [(now_ns(), [i / 1000, -i / 1000], i % 2 == 0) for i in range(2500)]
        for row in sent:
            assert control.put(row)
        recorder.event("marker", label="first")
    path = recorder.paths.final
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["control/t_ns"][()], [r[0] for r in sent])
        np.testing.assert_allclose(f["control/commands"][()], np.array([r[1] for r in sent], np.float32))
        assert f["control/enabled"][()].tolist() == [r[2] for r in sent]
        assert list(f["control/commands"].attrs["names"]) == ["boom", "arm"]
        assert f.attrs["operator_id"] == "op-7" and f.attrs["schema"] == "excap.episode"
        assert f.attrs["duration_s"] > 0
        kinds = [k.decode() for k in f["events/kind"][()]]
        assert kinds[0] == "start" and kinds[-1] == "stop" and "marker" in kinds


def test_finished_episode_appears_atomically(tmp_path):
    recorder = Recorder(RecorderConfig(tmp_path, journal_interval_s=0.05, h5_interval_s=0.05), metadata())
    recorder.start()
    handle = recorder.add_stream(control_spec(["boom"]))
    handle.put((now_ns(), [0.1], True))
    wait_for(lambda: recorder.paths.journal.stat().st_size > 400, message="journal growth")
    assert list(tmp_path.glob("*.h5")) == []  # nothing under a final name while recording
    assert recorder.paths.partial.exists()
    final = recorder.stop()
    assert list(tmp_path.glob("*.h5")) == [final]
    assert not recorder.paths.journal.exists() and not recorder.paths.partial.exists()


def test_full_queue_drops_are_counted_and_recorded(tmp_path):
    recorder = Recorder(RecorderConfig(tmp_path, journal_interval_s=10.0), metadata())
    recorder.start()
    camera = recorder.add_stream(camera_spec("side", 2, 2, 30, "test"))
    accepted = sum(camera.put((now_ns(), 0, b"\xff\xd8")) for _ in range(camera.spec.queue_capacity + 25))
    assert accepted == camera.spec.queue_capacity
    path = recorder.stop()
    with h5py.File(path, "r") as f:
        assert f["cameras/side/t_ns"].shape == (camera.spec.queue_capacity,)
        assert f["cameras/side"].attrs["dropped"] == 25
        drops = [json.loads(d) for k, d in zip(f["events/kind"][()], f["events/detail"][()], strict=True)
                 if k == b"drop"]
        assert drops == [{"stream": "cameras/side", "count": 25}]


def test_streams_may_appear_during_recording_and_empty_streams_are_kept(tmp_path):
    with Recorder(RecorderConfig(tmp_path, journal_interval_s=0.05), metadata()) as recorder:
        recorder.add_stream(can_spec("can1", "virtual"))
        late = recorder.add_stream(control_spec(["boom"]))
        late.put((now_ns(), [0.5], True))
    with h5py.File(recorder.paths.final, "r") as f:
        assert f["can/can1/data"].shape == (0, 8)
        assert f["control/t_ns"].shape == (1,)


def test_conflicting_stream_layouts_and_outcomes_are_refused(tmp_path):
    with Recorder(RecorderConfig(tmp_path), metadata()) as recorder:
        recorder.add_stream(control_spec(["boom"]))
        with pytest.raises(EpisodeError, match="registered twice"):
            recorder.add_stream(control_spec(["boom", "arm"]))
        with pytest.raises(EpisodeError, match="outcome must be one of"):
            recorder.set_outcome("great")
        recorder.set_outcome("success")
    with h5py.File(recorder.paths.final, "r") as f:
        assert f.attrs["outcome"] == "success"


def test_exception_in_session_finalizes_as_aborted(tmp_path):
    recorder = Recorder(RecorderConfig(tmp_path), metadata())
    with pytest.raises(RuntimeError), recorder:
        raise RuntimeError("driver exploded")
    with h5py.File(recorder.paths.final, "r") as f:
        assert f.attrs["outcome"] == "aborted"


@pytest.mark.parametrize("journal_interval,h5_interval", [(0.01, 0.01), (0.02, 0.015), (0.05, 0.01)])
def test_every_row_put_before_stop_is_in_the_episode(tmp_path, journal_interval, h5_interval):
    # Stopping at any phase of the two writer threads' cycles must lose nothing.
    for attempt in range(15):
        out = tmp_path / str(attempt)
        recorder = Recorder(RecorderConfig(out, journal_interval_s=journal_interval, h5_interval_s=h5_interval),
                            metadata())
        recorder.start()
        handle = recorder.add_stream(control_spec(["boom"]))
        for i in range(200 + 37 * attempt):
            handle.put((now_ns(), [i], True))
        path = recorder.stop()
        with h5py.File(path, "r") as f:
            assert f["control/t_ns"].shape == (200 + 37 * attempt,)


def test_metadata_updated_while_recording_reaches_the_episode(tmp_path):
    with Recorder(RecorderConfig(tmp_path), metadata()) as recorder:
        recorder.update_metadata(certification="UNCERTIFIED: certificate expired", site="quarry-2")
    with h5py.File(recorder.paths.final, "r") as f:
        assert f.attrs["certification"] == "UNCERTIFIED: certificate expired" and f.attrs["site"] == "quarry-2"


def test_a_short_episode_is_close_to_its_data_size(tmp_path):
    # HDF5 writes every chunk in full: chunks sized for the stream's rows, not a fixed 256 KiB per dataset.
    with Recorder(RecorderConfig(tmp_path), metadata()) as recorder:
        streams = [recorder.add_stream(can_spec(f"can{i}", "virtual")) for i in range(10)]
        for stream in streams:
            for i in range(50):
                stream.put((now_ns(), 0, 0x18FEF100 + i, True, 8, [i] * 8))
    datasets = 10 * 6 + 3
    data_bytes = 10 * 50 * (8 + 8 + 4 + 1 + 1 + 8)
    assert recorder.paths.final.stat().st_size < data_bytes + datasets * 4096 + 200_000


def test_the_disk_reserve_is_taken_from_the_environment_and_checked(monkeypatch):
    from excap.core.errors import ConfigError
    from excap.record.disk_space import DEFAULT_RESERVE_BYTES, RESERVE_ENV, reserve_bytes

    monkeypatch.delenv(RESERVE_ENV, raising=False)
    assert reserve_bytes() == DEFAULT_RESERVE_BYTES == 64_000_000
    monkeypatch.setenv(RESERVE_ENV, "12.5")
    assert RecorderConfig(Path("x")).disk_reserve_bytes == 12_500_000
    for bad in ("nan", "-1", "1", "inf", "lots"):
        monkeypatch.setenv(RESERVE_ENV, bad)
        with pytest.raises(ConfigError, match=RESERVE_ENV):
            reserve_bytes()


STOP_STEPS = ["journal_writer", "hdf5_writer", "last_rows/journal_fsync", "last_rows/hdf5_append",
              "last_rows/hdf5_fsync", "final_attributes", "hdf5_close", "fsync_rename", "journal_removal"]


def test_stop_times_each_step_and_frees_the_journal_after_publishing(tmp_path):
    recorder = Recorder(RecorderConfig(tmp_path, journal_interval_s=0.05, h5_interval_s=0.05), metadata())
    recorder.start()
    camera = recorder.add_stream(camera_spec("side", 2, 2, 30, "test"))
    sent = [(now_ns(), i, b"\xff\xd8" * 500) for i in range(50)]
    for row in sent:
        assert camera.put(row)
    wait_for(lambda: recorder.paths.journal.stat().st_size > 50 * 1000, message="frames in the journal")
    assert len(descriptors_to(recorder.paths.journal)) == 1
    final = recorder.stop()
    assert list(recorder.stop_steps.seconds) == STOP_STEPS
    assert all(seconds >= 0 for seconds in recorder.stop_steps.seconds.values())
    assert not recorder.paths.journal.exists() and final.exists()
    cleanup = recorder.cleanup
    assert cleanup is not None
    cleanup.join(timeout=20)
    assert not cleanup.is_alive()
    assert descriptors_to(recorder.paths.journal) == []
    with h5py.File(final, "r") as f:
        assert f["cameras/side/t_device_ns"][()].tolist() == [row[1] for row in sent]
