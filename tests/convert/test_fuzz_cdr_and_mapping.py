"""Fuzz: the hand-written CDR encoders against mcap-ros2-support's decoder (random frames, sticks, joint states,
images, events), and bag mappings of random structure (a ConfigError line or a mapping, nothing else)."""

from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from mcap_ros2._dynamic import generate_dynamic

from excap.convert import cdr
from excap.convert.bag_mapping import parse_mapping
from excap.convert.ros2_msgs import (
    CAN_FD_FRAME,
    CAN_FRAME,
    COMPRESSED_IMAGE,
    DEFINITIONS,
    DIAGNOSTIC_ARRAY,
    JOINT_STATE,
    JOY,
)
from excap.core.errors import ConfigError
from tests.support.fuzzing import fuzz_settings, tried

DECODE = {name: generate_dynamic(name, DEFINITIONS[name])[name] for name in DEFINITIONS}
stamps = st.integers(min_value=0, max_value=(2**31 - 1) * 1_000_000_000)
texts = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=12)
floats32 = st.floats(width=32, allow_nan=False)


def stamp_ns(msg: object) -> int:
    header = msg.header  # type: ignore[attr-defined]
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


@fuzz_settings(300)
@given(t_ns=stamps, frame_id=texts, can_id=st.integers(0, 2**29 - 1), extended=st.booleans(),
       data=st.binary(max_size=64), fd=st.booleans())
def test_can_frames_decode_to_what_was_encoded(t_ns: int, frame_id: str, can_id: int, extended: bool, data: bytes,
                                               fd: bool) -> None:
    tried("cdr can frame")
    prefix = cdr.header_prefix(frame_id.encode())
    if fd:
        msg = DECODE[CAN_FD_FRAME](cdr.can_fd_frame(t_ns, prefix, can_id, extended, len(data), data))
        assert (bytes(msg.data), msg.len) == (data, len(data))
    else:
        msg = DECODE[CAN_FRAME](cdr.can_frame(t_ns, prefix, can_id, extended, min(len(data), 8), data))
        assert bytes(msg.data) == data[:8].ljust(8, b"\0") and msg.dlc == min(len(data), 8)
    assert (msg.id, msg.is_extended, msg.header.frame_id, stamp_ns(msg)) == (can_id, extended, frame_id, t_ns)


@fuzz_settings(300)
@given(t_ns=stamps, frame_id=texts, axes=st.lists(floats32, max_size=9),
       buttons=st.lists(st.integers(0, 255), max_size=17), names=st.lists(texts, max_size=6),
       positions=st.lists(st.floats(allow_nan=False), max_size=6))
def test_sticks_and_joint_states_decode_to_what_was_encoded(t_ns: int, frame_id: str, axes: list[float],
                                                            buttons: list[int], names: list[str],
                                                            positions: list[float]) -> None:
    tried("cdr joy and joint state")
    joy = DECODE[JOY](cdr.joy(t_ns, cdr.header_prefix(frame_id.encode()), np.array(axes, np.float32),
                              np.array(buttons, np.uint8)))
    assert np.array_equal(np.array(joy.axes, np.float32), np.array(axes, np.float32))
    assert list(joy.buttons) == buttons and stamp_ns(joy) == t_ns
    state = DECODE[JOINT_STATE](cdr.joint_state(t_ns, frame_id.encode(), [n.encode() for n in names],
                                                np.array(positions)))
    assert (list(state.name), list(state.position), stamp_ns(state)) == (names, positions, t_ns)
    assert list(state.velocity) == list(state.effort) == []


@fuzz_settings(200)
@given(t_ns=stamps, frame_id=texts, fmt=texts, data=st.binary(max_size=300),
       events=st.lists(st.tuples(st.integers(0, 3), texts, texts, texts), max_size=4))
def test_images_and_events_decode_to_what_was_encoded(t_ns: int, frame_id: str, fmt: str, data: bytes,
                                                      events: list[tuple[int, str, str, str]]) -> None:
    tried("cdr image and diagnostics")
    image = DECODE[COMPRESSED_IMAGE](cdr.compressed_image(t_ns, cdr.header_prefix(frame_id.encode()), fmt.encode(),
                                                          data))
    assert (bytes(image.data), image.format, image.header.frame_id) == (data, fmt, frame_id)
    array = DECODE[DIAGNOSTIC_ARRAY](cdr.diagnostic_array(t_ns, frame_id.encode(), [
        (level, name.encode(), message.encode(), hardware.encode()) for level, name, message, hardware in events]))
    assert [(s.level, s.name, s.message, s.hardware_id) for s in array.status] == events


values = st.recursive(st.none() | st.booleans() | st.integers() | texts | st.just("/excap/joy/a"),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                          st.sampled_from(["profile", "joysticks", "cameras", "can", "commands", "events", "metadata",
                                           "left", "x", "/t"]) | texts, inner, max_size=4), max_leaves=12)


@fuzz_settings(400)
@given(document=values)
def test_any_mapping_document_is_a_mapping_or_one_config_error_line(document: object) -> None:
    tried("bag mapping")
    try:
        mapping = parse_mapping(document, Path("m.yaml"))
    except ConfigError as exc:
        assert str(exc).startswith("m.yaml: ") and "\n" not in str(exc)
    else:
        assert mapping.profile and mapping.topics()
