"""`excap convert EPISODE --to mcap --profile foxglove`: a real simulated episode as one indexed MCAP file, read back
with the `mcap` reader: every row of every stream is one message, at t_ns + clock_offset_ns, with Foxglove's schemas."""

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from excap.convert.episode_source import joint_timeline
from excap.convert.foxglove_layout import write_layout
from excap.convert.mcap_foxglove import episode_to_foxglove_mcap
from excap.core.errors import ExcapError
from excap.episode.reader import EpisodeReader
from excap.schemas import schema_file
from tests.support import mcap_files
from tests.support.commands import excap_command


@pytest.fixture(scope="module")
def foxglove_file(sim_episode: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("foxglove") / "episode.mcap"
    episode_to_foxglove_mcap(sim_episode, out)
    return out


def expected_topics(reader: EpisodeReader) -> dict[str, int]:
    topics = {f"/{info.path}": info.samples for info in reader.streams if info.kind != "events"}
    topics["/events"] = len(reader.events())
    topics["/tf"] = len(joint_timeline(reader))
    return topics


def test_every_row_is_one_message_per_topic(sim_episode: Path, foxglove_file: Path) -> None:
    with EpisodeReader(sim_episode) as reader:
        expected = expected_topics(reader)
    assert expected["/tf"] > 0 and expected["/cameras/side"] > 0
    assert mcap_files.topic_counts(foxglove_file) == expected
    summary = mcap_files.summary(foxglove_file)
    by_id = {channel.id: channel.topic for channel in summary.channels.values()}
    assert {by_id[i]: n for i, n in summary.statistics.channel_message_counts.items()} == expected


def test_file_is_indexed_zstd_chunks_with_a_summary(foxglove_file: Path) -> None:
    summary = mcap_files.summary(foxglove_file)
    assert summary.chunk_indexes and {c.compression for c in summary.chunk_indexes} == {"zstd"}
    assert all(c.message_index_offsets for c in summary.chunk_indexes)  # message indexes after each chunk
    assert summary.statistics.message_count == sum(mcap_files.topic_counts(foxglove_file).values())


def test_schemas_are_the_ones_foxglove_panels_recognise(foxglove_file: Path) -> None:
    summary = mcap_files.summary(foxglove_file)
    schema_of = {c.topic: summary.schemas[c.schema_id] for c in summary.channels.values()}
    assert {(schema_of[t].name, schema_of[t].encoding) for t in ("/cameras/side", "/cameras/top")} == {
        ("foxglove.CompressedImage", "protobuf")}
    assert (schema_of["/events"].name, schema_of["/tf"].name) == ("foxglove.Log", "foxglove.FrameTransforms")
    assert schema_of["/tf"].encoding == "jsonschema"
    assert schema_of["/control"].name == "excap.Control" and schema_of["/control"].encoding == "jsonschema"
    assert schema_of["/can/can0/decoded/EEC1"].name == "excap.can.EEC1"
    control = json.loads(schema_of["/control"].data)
    assert {"boom", "arm", "bucket", "swing", "enabled"} <= set(control["properties"])


def test_jpeg_frames_pass_through_at_utc_log_times(sim_episode: Path, foxglove_file: Path) -> None:
    with EpisodeReader(sim_episode) as reader:
        offset = int(reader.metadata["clock_offset_ns"])
        side = reader.camera("side")
        frames = [side.jpeg(i) for i in range(len(side))]
        t_ns = side.t_ns.tolist()
    got = mcap_files.decoded_protobuf(foxglove_file, ["/cameras/side"])
    assert [log_time for log_time, _ in got] == [t + offset for t in t_ns]
    assert [image.data for _, image in got] == frames  # the recorded bytes, never re-encoded
    assert {image.format for _, image in got} == {"jpeg"}
    first = got[0][1].timestamp
    assert first.seconds * 1_000_000_000 + first.nanos == t_ns[0] + offset


def test_plottable_messages_hold_the_recorded_values(sim_episode: Path, foxglove_file: Path) -> None:
    with EpisodeReader(sim_episode) as reader:
        offset = int(reader.metadata["clock_offset_ns"])
        control = reader.stream("control")
        names, commands, control_t_ns = control.names("commands"), control.column("commands"), control.t_ns
        eec1 = reader.stream("can/can0/decoded/EEC1")
        speed = eec1.column("EngSpeed")
        raw = reader.stream("can/can0")
        ids, data, dlc = raw.column("id"), raw.column("data"), raw.column("dlc")
        axes = reader.stream("joystick/operator")
        axis_names, axis_values = axes.names("axes"), axes.column("axes")
    rows = [json.loads(m.data) for _, _, m in mcap_files.messages(foxglove_file, ["/control"])]
    assert [[row[n] for n in names] for row in rows] == commands.astype(np.float64).tolist()
    engine = [json.loads(m.data)["EngSpeed"]
              for _, _, m in mcap_files.messages(foxglove_file, ["/can/can0/decoded/EEC1"])]
    assert engine == [None if math.isnan(v) else v for v in speed.tolist()]
    frames = [json.loads(m.data) for _, _, m in mcap_files.messages(foxglove_file, ["/can/can0"])]
    assert [f["id"] for f in frames] == ids.tolist()
    assert [bytes.fromhex(f["data"]) for f in frames] == [bytes(d[:min(n, 8)])
                                                          for d, n in zip(data, dlc, strict=True)]
    sticks = [json.loads(m.data)["axes"] for _, _, m in mcap_files.messages(foxglove_file, ["/joystick/operator"])]
    assert [[s[n] for n in axis_names] for s in sticks] == axis_values.astype(np.float64).tolist()
    log_times = [m.log_time for _, _, m in mcap_files.messages(foxglove_file, ["/control"])]
    assert log_times == (control_t_ns + offset).tolist()


def test_events_are_logs_and_joints_are_transforms(sim_episode: Path, foxglove_file: Path) -> None:
    with EpisodeReader(sim_episode) as reader:
        kinds = [event.kind for event in reader.events()]
        timeline = joint_timeline(reader)
        whole = timeline.angles(0, len(timeline))
        blocks = np.concatenate([angles for _, angles in timeline.blocks(size=7)])
    logs = [log for _, log in mcap_files.decoded_protobuf(foxglove_file, ["/events"])]
    assert [log.message.split(":")[0] for log in logs] == kinds
    transforms = [(m.log_time, json.loads(m.data)) for _, _, m in mcap_files.messages(foxglove_file, ["/tf"])]
    log_time, message = transforms[-1]
    last = message["transforms"]
    assert [(t["parent_frame_id"], t["child_frame_id"]) for t in last] == [
        ("base_link", "upper"), ("upper", "boom"), ("boom", "arm"), ("arm", "bucket")]
    assert {t["timestamp"]["sec"] * 1_000_000_000 + t["timestamp"]["nsec"] for t in last} == {log_time}
    assert last[1]["translation"] == {"x": 0.6, "y": 0.0, "z": 1.0}
    assert np.array_equal(whole, blocks, equal_nan=True)  # computed block by block, the same angles
    boom = dict(zip(timeline.names, whole[-1].tolist(), strict=True))["boom"]
    rotation = next(t["rotation"] for t in last if t["child_frame_id"] == "boom")
    assert math.isclose(-2 * math.atan2(rotation["y"], rotation["w"]), boom, abs_tol=1e-9)


def test_cli_writes_the_file_and_refuses_to_overwrite(sim_episode: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.mcap"
    done = subprocess.run(excap_command("convert", str(sim_episode), "--to", "mcap", "--out", str(out), "--json"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["path"] == str(out) and report["messages"] == mcap_files.topic_counts(out)
    again = subprocess.run(excap_command("convert", str(sim_episode), "--to", "mcap", "--out", str(out)),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and again.stderr == f"excap: error: {out}: already exists, not overwriting\n"


def test_a_damaged_episode_is_one_error_and_leaves_no_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an episode")
    with pytest.raises(ExcapError, match="not an HDF5 file"):
        episode_to_foxglove_mcap(bad, tmp_path / "bad.mcap")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.h5"]


def layout_references(node: object) -> tuple[set[str], set[str]]:
    """(topics of image and log panels, plot paths) anywhere in a layout document."""
    topics: set[str] = set()
    paths: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("imageTopic", "topicToRender"):
                topics.add(value)
            elif key == "value" and isinstance(value, str):
                paths.add(value)
            else:
                more_topics, more_paths = layout_references(value)
                topics |= more_topics
                paths |= more_paths
    elif isinstance(node, list):
        for value in node:
            more_topics, more_paths = layout_references(value)
            topics |= more_topics
            paths |= more_paths
    return topics, paths


def test_the_layout_in_the_repository_opens_the_converted_file(sim_episode: Path, foxglove_file: Path,
                                                              tmp_path: Path) -> None:
    shipped = json.loads(schema_file("foxglove/excap-excavator-layout.json").read_text())
    out = tmp_path / "layout.json"
    write_layout(sim_episode, out)
    assert json.loads(out.read_text()) == shipped  # the shipped layout is the one of a simulated excavator episode
    topics, paths = layout_references(shipped)
    summary = mcap_files.summary(foxglove_file)
    schemas = {c.topic: summary.schemas[c.schema_id] for c in summary.channels.values()}
    assert topics == {"/cameras/side", "/cameras/top", "/events"} and topics <= set(schemas)
    assert len(paths) >= 15
    for path in paths:  # /topic.field or /topic.axes.name: the topic exists and its JSON schema has the field
        topic, _, field = path.partition(".")
        properties = json.loads(schemas[topic].data)["properties"]
        first, _, rest = field.partition(".")
        assert first in properties, path
        assert not rest or rest in properties[first]["properties"], path
    assert "/can/can0/decoded/BoomSSI2.PitchAngleExRange" in paths and "/control.boom" in paths


@pytest.mark.parametrize("profile", ["foxglove", "ros2"])
def test_times_before_1970_are_one_error_naming_the_stream(sim_episode: Path, tmp_path: Path, profile: str) -> None:
    import shutil

    import h5py

    from excap.convert.mcap_ros2 import episode_to_ros2_mcap

    episode = tmp_path / "early.h5"
    shutil.copy(sim_episode, episode)
    with h5py.File(episode, "r+") as handle:
        handle.attrs["clock_offset_ns"] = -int(handle.attrs["start_t_ns"]) - 10**9  # the first second before 1970
    convert = episode_to_foxglove_mcap if profile == "foxglove" else episode_to_ros2_mcap
    with pytest.raises(ExcapError, match=r"early\.h5: /\S+ row 0: t_ns \+ clock_offset_ns = -\d+ is before 1970"):
        convert(episode, tmp_path / "early.mcap")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["early.h5"]
