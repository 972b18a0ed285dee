"""Reading MCAP files in tests with the `mcap` reader (and mcap-ros2-support's decoder for ROS 2 bags), and writing
ROS 2 bags as a robot's recorder would (mcap-ros2-support's writer)."""

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mcap.reader import make_reader
from mcap.records import Channel, Message, Schema
from mcap_ros2.decoder import DecoderFactory


def summary(path: Path) -> Any:
    with path.open("rb") as handle:
        return make_reader(handle).get_summary()


def header(path: Path) -> Any:
    with path.open("rb") as handle:
        return make_reader(handle).get_header()


def topic_counts(path: Path) -> dict[str, int]:
    """Messages per topic, counted by reading every message (not from the summary's statistics)."""
    counts: Counter[str] = Counter()
    for _, channel, _ in messages(path):
        counts[channel.topic] += 1
    return dict(counts)


def messages(path: Path, topics: list[str] | None = None) -> Iterator[tuple[Schema, Channel, Message]]:
    with path.open("rb") as handle:
        yield from make_reader(handle).iter_messages(topics=topics)


def decoded(path: Path, topics: list[str] | None = None) -> Iterator[tuple[Schema, Channel, Message, Any]]:
    with path.open("rb") as handle:
        reader = make_reader(handle, decoder_factories=[DecoderFactory()])
        yield from reader.iter_decoded_messages(topics=topics)


def metadata(path: Path) -> dict[str, dict[str, str]]:
    with path.open("rb") as handle:
        return {record.name: dict(record.metadata) for record in make_reader(handle).iter_metadata()}


def decoded_protobuf(path: Path, topics: list[str]) -> list[tuple[int, Any]]:
    """(log time, message) of protobuf topics, decoded with the schemas the file itself holds (as Foxglove does)."""
    from mcap_protobuf.decoder import DecoderFactory as ProtobufDecoderFactory

    with path.open("rb") as handle:
        reader = make_reader(handle, decoder_factories=[ProtobufDecoderFactory()])
        return [(message.log_time, value) for _, _, message, value in reader.iter_decoded_messages(topics=topics)]
