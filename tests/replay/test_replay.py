"""`excap replay`: the merged timeline, the scheduler's timing, pause / resume, and CAN replay onto
python-can virtual buses compared frame by frame with the recording."""

import io
import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import can
import h5py
import numpy as np
import pytest

from excap.cli.replay import add_replay_parser, cmd_replay
from excap.core.errors import ConfigError, EpisodeError
from excap.drivers.machine.cab_joysticks import CabJoystickReceiver
from excap.drivers.machine.profiles import load_profile
from excap.episode.reader import EpisodeReader
from excap.replay import Replay, ReplayOptions, Sample, Scheduler, Timeline
from excap.replay.can_sink import CanSink, is_command_frame, parse_can_target
from excap.replay.lookahead import HORIZON_S

# Timing tolerances for a loaded 2-core CI machine (errors of replayed inter-sample intervals).
MEDIAN_MS = 2.0
P95_MS = 10.0
_channels = iter(range(1_000_000))


def channel() -> str:
    return f"replay-test-{os.getpid()}-{next(_channels)}"


class Probe:
    """A sink that records when each sample of the chosen kinds was emitted."""

    def __init__(self, kinds: tuple[str, ...] = ("control", "joystick")) -> None:
        self.kinds = kinds
        self.samples: list[tuple[float, Sample]] = []
        self.pauses = 0

    def paths(self, reader: EpisodeReader) -> list[str]:
        return [s.path for s in reader.streams if s.kind in self.kinds]

    def open(self) -> None: ...
    def resume(self) -> None: ...
    def close(self) -> None: ...

    def pause(self) -> None:
        self.pauses += 1

    def prepare(self, sample: Sample) -> Sample:
        return sample

    def emit(self, sample: Sample) -> None:
        self.samples.append((time.monotonic(), sample))


class Receiver:
    """A python-can virtual bus read on a thread: every frame with its send time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bus = can.Bus(interface="virtual", channel=name)
        self.frames: list[can.Message] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            msg = self.bus.recv(0.05)
            if msg is not None:
                self.frames.append(msg)

    def close(self) -> None:
        self._done.set()
        self._thread.join(2)
        self.bus.shutdown()


@pytest.fixture(params=["excavator", "wheel_loader"])
def machine_episode(request: pytest.FixtureRequest) -> Path:
    """A recording of each simulated machine kind."""
    if request.param == "excavator":
        return request.getfixturevalue("sim_episode")
    return request.getfixturevalue("loader_episodes").paths[1]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(channel())
    yield r
    r.close()


def interval_errors_ms(recorded_ns: np.ndarray, replayed_s: np.ndarray, rate: float = 1.0) -> np.ndarray:
    return np.abs(np.diff(replayed_s) * 1e3 - np.diff(recorded_ns) / 1e6 / rate)


def assert_timing(errors: np.ndarray) -> None:
    assert np.median(errors) < MEDIAN_MS, np.median(errors)
    assert np.percentile(errors, 95) < P95_MS, np.percentile(errors, 95)


def recorded_frames(reader: EpisodeReader, start_ns: int, end_ns: int) -> dict[str, np.ndarray]:
    stream = reader.stream("can/can0")
    keep = (stream.t_ns >= start_ns) & (stream.t_ns <= end_ns)
    return {name: stream.column(name)[keep] for name in ("t_ns", "id", "extended", "dlc", "data")}


# -- timeline ---------------------------------------------------------------------------------


def test_timeline_merges_every_stream_in_time_order(sim_episode: Path) -> None:
    with EpisodeReader(sim_episode) as reader:
        paths = [s.path for s in reader.streams if s.kind != "events"]
        timeline = Timeline(reader, paths, block_rows=64)
        samples = list(timeline)
        assert len(samples) == len(timeline) == sum(s.samples for s in reader.streams if s.kind != "events")
        times = [s.t_ns for s in samples]
        assert times == sorted(times)
        for path in ("control", "cameras/side", "can/can0"):
            rows = [s for s in samples if s.path == path]
            stream = reader.stream(path)
            assert [s.index for s in rows] == list(range(len(stream)))
            for sample in rows[::37]:
                expected = stream[sample.index]
                assert sample.row.keys() == expected.keys()
                for key, value in expected.items():
                    assert np.array_equal(sample.row[key], value) if isinstance(value, np.ndarray) \
                        else sample.row[key] == value


def test_timeline_window_is_inclusive(sim_episode: Path) -> None:
    with EpisodeReader(sim_episode) as reader:
        t = reader.stream("control").t_ns
        start, end = int(t[10]), int(t[40])
        rows = list(Timeline(reader, ["control", "events"], start, end))
        assert [s.index for s in rows if s.path == "control"] == list(range(10, 41))
        assert all(start <= s.t_ns <= end for s in rows)


# -- scheduler --------------------------------------------------------------------------------


def test_rate_start_and_end(sim_episode: Path) -> None:
    with EpisodeReader(sim_episode) as reader:
        for rate in (0.5, 2.0):
            probe = Probe()
            replay = Replay(reader, [probe], ReplayOptions(rate=rate, start_s=0.5, end_s=3.5))
            began = time.monotonic()
            stats = replay.run()
            start_ns, end_ns = reader.start_t_ns + 500_000_000, reader.start_t_ns + 3_500_000_000
            expected = sum(int(((s.t_ns >= start_ns) & (s.t_ns <= end_ns)).sum())
                           for s in (reader.stream("control"), reader.stream("joystick/operator")))
            assert stats.total == len(probe.samples) == expected
            recorded = np.array([s.t_ns for _, s in probe.samples])
            replayed = np.array([w for w, _ in probe.samples])
            assert recorded.min() >= start_ns and recorded.max() <= end_ns
            # the first sample is due (t_first - start) / rate after the replay began
            assert abs((replayed[0] - began) - (recorded[0] - start_ns) / 1e9 / rate) < 0.05
            assert abs((replayed[-1] - replayed[0]) - (recorded[-1] - recorded[0]) / 1e9 / rate) < 0.1
            assert_timing(interval_errors_ms(recorded, replayed, rate))


def test_pause_and_resume_do_not_burst(sim_episode: Path) -> None:
    with EpisodeReader(sim_episode) as reader:
        probe = Probe(("control",))
        replay = Replay(reader, [probe], ReplayOptions(start_s=0.5, end_s=2.5))
        runner = threading.Thread(target=replay.run)
        runner.start()
        time.sleep(0.6)
        assert replay.pause() and not replay.pause()
        paused_at = time.monotonic()
        emitted = len(probe.samples)
        time.sleep(0.7)
        assert len(probe.samples) <= emitted + 1  # at most one already on its way out
        assert probe.pauses == 1
        resumed_at = time.monotonic()
        assert replay.resume() and not replay.resume()
        runner.join(10)
    assert not runner.is_alive()
    stats = replay.scheduler.stats
    assert stats.pauses == 1 and 0.6 < stats.paused_s < 2.0
    walls = np.array([w for w, _ in probe.samples])
    recorded = np.array([s.t_ns for _, s in probe.samples])
    after = walls >= resumed_at
    assert after.sum() > 20
    errors = interval_errors_ms(recorded, walls)
    # across the pause one interval is long by the pause; every other interval keeps its recorded length
    pause_gap = int(np.argmax(np.diff(walls)))
    assert paused_at <= walls[pause_gap + 1] and walls[pause_gap + 1] >= resumed_at
    assert_timing(np.delete(errors, pause_gap))
    # no burst: the samples after resuming come out at their recorded spacing, not at once
    first_after = int(np.argmax(after))
    assert walls[-1] - walls[first_after] == pytest.approx((recorded[-1] - recorded[first_after]) / 1e9, abs=0.1)


def test_scheduler_stop_and_loop() -> None:
    samples = [Sample(t * 10_000_000, "s", "control", t, {}) for t in range(5)]
    scheduler = Scheduler(rate=1.0, loop=True)
    seen: list[Sample] = []

    def emit(sample: Sample) -> None:
        seen.append(sample)
        if len(seen) == 12:
            scheduler.stop()

    began = time.monotonic()
    stats = scheduler.run(samples, emit)
    assert len(seen) == 12 and stats.passes == 3 and stats.stopped
    assert [s.index for s in seen] == [0, 1, 2, 3, 4] * 2 + [0, 1]
    assert time.monotonic() - began >= 0.09  # two passes of 40 ms and 10 ms into the third
    with pytest.raises(ValueError):
        Scheduler(rate=0)


class SteppingClock:
    """A monotonic clock that moves on `step_s` every time it is read."""

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


@pytest.mark.parametrize("end_ns", [25_000_000, None], ids=["window end", "episode end"])
def test_the_recorded_time_never_passes_the_replays_end_and_holds_there_once_done(end_ns: int | None) -> None:
    samples = [Sample(t * 10_000_000, "s", "control", t, {}) for t in range(3)]  # 0, 10, 20 ms
    scheduler = Scheduler(rate=1.0, clock=SteppingClock(0.004), end_ns=end_ns)
    assert scheduler.recorded_now_ns() is None  # nothing due yet
    during: list[int | None] = []
    scheduler.run(samples, lambda _sample: during.append(scheduler.recorded_now_ns()))
    after = [scheduler.recorded_now_ns() for _ in range(5)]  # /clock ticks after the last sample: time goes on
    assert all(t is not None for t in during + after)
    held = after[0]
    assert held is not None and after == [held] * 5  # held where the replay ended
    assert during == sorted(during) and during[-1] <= held  # (monotonic for /clock)
    if end_ns is not None:
        assert held <= end_ns and max(t for t in during if t is not None) <= end_ns


def test_scheduler_prepares_samples_ahead_of_their_due_time() -> None:
    samples = [Sample(t * 20_000_000, "s", "control", t, {}) for t in range(6)]
    prepared_at: dict[int, float] = {}
    emitted: list[tuple[float, tuple[str, int]]] = []

    def prepare(sample: Sample) -> tuple[str, int]:
        prepared_at[sample.index] = time.monotonic()
        return ("prepared", sample.index)

    stats = Scheduler(rate=1.0).run(samples, lambda item: emitted.append((time.monotonic(), item)), prepare=prepare)
    assert stats.total == 6 and [item for _, item in emitted] == [("prepared", k) for k in range(6)]
    # from the second on (the first is due at once), each sample after the one being waited for was made during
    # that wait, not at its own due time
    for k in range(2, 6):
        assert prepared_at[k] < emitted[k - 1][0]


def test_scheduler_prepares_no_further_ahead_than_its_horizon() -> None:
    period_ns = 50_000_000
    samples = [Sample(t * period_ns, "s", "camera", t, {}) for t in range(12)]
    prepared_at: dict[int, float] = {}
    emitted_at: list[float] = []

    def prepare(sample: Sample) -> int:
        prepared_at[sample.index] = time.monotonic()
        return sample.index

    Scheduler(rate=1.0).run(samples, lambda _k: emitted_at.append(time.monotonic()), prepare=prepare)
    ahead = math.ceil(HORIZON_S / (period_ns / 1e9)) + 1  # samples within the horizon, and the one being waited for
    for k in range(ahead, 12):
        assert prepared_at[k] >= emitted_at[k - ahead]  # not made before its turn came near


def test_a_sample_that_cannot_be_read_stops_the_replay_in_its_turn() -> None:
    def samples() -> Iterator[Sample]:
        for t in range(3):
            yield Sample(t * 20_000_000, "s", "control", t, {})
        raise EpisodeError("damaged row 3")

    emitted: list[int] = []
    with pytest.raises(EpisodeError, match="damaged row 3"):
        Scheduler(rate=1.0).run(samples(), lambda sample: emitted.append(sample.index))
    assert emitted == [0, 1, 2]  # every sample before the damaged one was still emitted, on time


# -- CAN --------------------------------------------------------------------------------------


def test_can_replay_matches_recording(machine_episode: Path, receiver: Receiver) -> None:
    with EpisodeReader(machine_episode) as reader:
        sink = CanSink(parse_can_target(f"virtual:{receiver_channel(receiver)}"), transmit=True)
        stats = Replay(reader, [sink], ReplayOptions(start_s=1.0, end_s=3.0)).run()
        start = reader.start_t_ns + 1_000_000_000
        expected = recorded_frames(reader, start, start + 2_000_000_000)
    count = len(expected["t_ns"])
    assert count > 1000 and stats.total == sink.report.frames == count
    wait_frames(receiver, count)
    frames = receiver.frames[:count]
    assert [m.arbitration_id for m in frames] == expected["id"].tolist()
    assert [m.is_extended_id for m in frames] == expected["extended"].tolist()
    for msg, dlc, data in zip(frames, expected["dlc"], expected["data"], strict=True):
        assert msg.dlc == dlc and bytes(msg.data) == bytes(data[:dlc])
    assert_timing(interval_errors_ms(expected["t_ns"], np.array([m.timestamp for m in frames])))


def receiver_channel(r: Receiver) -> str:
    return r.name


def wait_frames(r: Receiver, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(r.frames) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(r.frames) >= count, (len(r.frames), count)


def test_commands_only_and_neutral_at_the_end(machine_episode: Path, receiver: Receiver) -> None:
    with EpisodeReader(machine_episode) as reader:
        sink = CanSink(parse_can_target(f"virtual:{receiver_channel(receiver)}"), mode="commands", transmit=True)
        Replay(reader, [sink], ReplayOptions(start_s=1.0, end_s=2.0, rate=2.0)).run()
        start = reader.start_t_ns + 1_000_000_000
        recorded = recorded_frames(reader, start, start + 1_000_000_000)
        keep = [is_command_frame(i, e) for i, e in zip(recorded["id"].tolist(), recorded["extended"].tolist(),
                                                        strict=True)]
        expected_ids = recorded["id"][keep].tolist()
        profile = load_profile(reader.metadata["profile"])
        functions = reader.command_names
    joysticks = len(profile.cab_joysticks.joysticks)  # excavator 3, wheel loader 4
    assert expected_ids and sink.report.frames == len(expected_ids) and sink.report.neutral_frames == joysticks
    wait_frames(receiver, len(expected_ids) + joysticks)
    frames = receiver.frames
    assert [m.arbitration_id for m in frames[:-joysticks]] == expected_ids
    machine = CabJoystickReceiver(profile.cab_joysticks, functions)
    for msg in frames[-joysticks:]:  # the last frames leave every cab joystick neutral, enable released
        assert machine.feed(msg, 0)
    values, enabled, _ = machine.command()
    assert not enabled and all(v == 0 for v in values)


def test_commands_re_encoded_from_control(machine_episode: Path, receiver: Receiver) -> None:
    with EpisodeReader(machine_episode) as reader:
        sink = CanSink(parse_can_target(f"virtual:{receiver_channel(receiver)}"), mode="control", transmit=True)
        replay = Replay(reader, [sink], ReplayOptions(start_s=1.5, end_s=3.0, rate=2.0))
        assert replay.paths == ["control"]
        replay.run()
        control = reader.stream("control")
        start = reader.start_t_ns + 1_500_000_000
        rows = [control[i] for i in np.flatnonzero((control.t_ns >= start) & (control.t_ns <= start + 1_500_000_000))]
        profile = load_profile(reader.metadata["profile"])
        functions = reader.command_names
    joysticks = len(profile.cab_joysticks.joysticks)
    wait_frames(receiver, len(rows) * joysticks)
    machine = CabJoystickReceiver(profile.cab_joysticks, functions)
    assert any(row["enabled"] for row in rows)
    for i, row in enumerate(rows):
        for msg in receiver.frames[i * joysticks:(i + 1) * joysticks]:
            assert machine.feed(msg, 0)
        values, enabled, _ = machine.command()
        assert enabled == row["enabled"]
        if enabled:  # BJM1 carries 0.1 % steps
            assert np.allclose(values, row["commands"], atol=0.0011)


def test_dry_run_sends_nothing_and_lists_the_frames(sim_episode: Path, receiver: Receiver) -> None:
    echo = io.StringIO()
    with EpisodeReader(sim_episode) as reader:
        opened: list[object] = []
        sink = CanSink(parse_can_target(f"virtual:{receiver_channel(receiver)}"), echo=echo,
                       bus_factory=lambda config: opened.append(config))  # type: ignore[arg-type,return-value]
        Replay(reader, [sink], ReplayOptions(start_s=2.0, end_s=2.5)).run()
        start = reader.start_t_ns + 2_000_000_000
        expected = recorded_frames(reader, start, start + 500_000_000)
    time.sleep(0.2)
    assert receiver.frames == [] and opened == []
    lines = echo.getvalue().splitlines()
    assert sink.report.frames == len(expected["id"]) > 100
    assert len(lines) == sink.report.frames + sink.report.neutral_frames
    first = lines[0].split()
    assert first[1] == f"virtual:{receiver_channel(receiver)}"
    assert first[2] == f"{int(expected['id'][0]):08X}#{bytes(expected['data'][0][:expected['dlc'][0]]).hex().upper()}"


def test_transmit_onto_a_real_interface_needs_the_explicit_flag() -> None:
    with pytest.raises(ConfigError, match="i-understand-this-moves-the-machine"):
        CanSink(parse_can_target("socketcan:can0"), transmit=True)
    CanSink(parse_can_target("socketcan:can0"))  # a dry run is always allowed
    CanSink(parse_can_target("socketcan:can0"), transmit=True, allow_machine=True)  # nothing opened yet
    with pytest.raises(ConfigError, match="INTERFACE:CHANNEL"):
        parse_can_target("can0")


# -- command line -----------------------------------------------------------------------------


def parse(*argv: str) -> object:
    import argparse

    parser = argparse.ArgumentParser(prog="excap")
    add_replay_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["replay", *argv])


def test_cli_dry_run_paused_by_sigusr1(sim_episode: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(str(sim_episode), "--can", "socketcan:can0", "--paused", "--start", "1", "--end", "1.3")
    original = signal.getsignal(signal.SIGUSR1)
    resumed: list[float] = []

    def nudge() -> None:  # once the replay has installed its handler (it is paused by then), resume it
        deadline = time.monotonic() + 20
        while signal.getsignal(signal.SIGUSR1) is original and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        resumed.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGUSR1)

    thread = threading.Thread(target=nudge, daemon=True)
    thread.start()
    assert cmd_replay(args) == 0  # type: ignore[arg-type]
    thread.join(5)
    assert resumed and time.monotonic() - resumed[0] >= 0.2  # the window still plays in full after resuming
    assert signal.getsignal(signal.SIGUSR1) is original
    out, err = capsys.readouterr()
    assert "DRY RUN" in err and "resumed" in err
    summary = json.loads(out.splitlines()[-1])
    assert summary["pauses"] == 1 and summary["paused_s"] >= 0.25
    assert summary["can"]["transmit"] is False and summary["can"]["frames"] == len(out.splitlines()) - 1 - 3


def test_cli_refuses_unsafe_options(sim_episode: Path) -> None:
    with pytest.raises(ConfigError, match="moves"):
        cmd_replay(parse(str(sim_episode), "--can", "socketcan:can0", "--transmit"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="need --can"):
        cmd_replay(parse(str(sim_episode), "--transmit", "--ros"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="nothing to replay"):
        cmd_replay(parse(str(sim_episode)))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--end"):
        cmd_replay(parse(str(sim_episode), "--can", "virtual:x", "--start", "2", "--end", "1"))  # type: ignore[arg-type]


def test_a_far_future_sample_does_not_make_the_replay_wait(sim_episode: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / sim_episode.name
    shutil.copyfile(sim_episode, copy)
    with h5py.File(copy, "r+") as handle:
        t_ns = handle["can/can0/t_ns"]
        t_ns[-1] = 2**62  # about 146 years after the recording's start
        handle["can/can0/t_device_ns"][-1] = 2**62
    started = time.monotonic()
    assert cmd_replay(parse(str(copy), "--can", "virtual:x", "--quiet", "--start", "3.7",  # type: ignore[arg-type]
                            "--max-gap", "0.2")) == 0
    assert time.monotonic() - started < 10
    out, err = capsys.readouterr()
    summary = json.loads(out.splitlines()[-1])
    assert summary["gaps_shortened"] == 1 and summary["gap_s_skipped"] > 1e9
    assert "shortened" in err and "--max-gap" in err


def test_scheduler_shortens_gaps_in_recorded_time() -> None:
    samples = [Sample(t, "control", "control", k, {}) for k, t in enumerate([0, 10_000_000, 10**18, 10**18 + 10**7])]
    heard: list[tuple[int, float]] = []
    scheduler = Scheduler(rate=1.0, max_gap_s=0.05)
    scheduler.on_gap = lambda t_ns, gap_s: heard.append((t_ns, gap_s))
    emitted: list[float] = []
    started = time.monotonic()
    stats = scheduler.run(samples, lambda sample: emitted.append(time.monotonic() - started))
    assert stats.total == 4 and stats.gaps_shortened == 1 and heard == [(10**18, (10**18 - 10_000_000) / 1e9)]
    assert emitted[2] - emitted[1] == pytest.approx(0.05, abs=0.03)  # the gap, shortened to max_gap_s
    assert emitted[3] - emitted[2] == pytest.approx(0.01, abs=0.01)
