"""Fuzzing the EXJS1 and ASCII serial joystick parsers: arbitrary and mutated-valid byte streams in arbitrary
chunkings never raise, every accepted frame is within the protocol's ranges, a stream decodes the same however it
is split into reads, and valid frames after garbage are still decoded."""

import math
from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from excap.drivers.joystick.serial_protocols import (
    ASCII_MAX_LINE,
    ParsedFrame,
    encode_ascii,
    encode_exjs1,
    make_parser,
    nmea_checksum,
)
from tests.support.fuzzing import fuzz_settings, tried

PROTOCOLS = st.sampled_from(["exjs1", "ascii"])
MAX_T_US = 2**32 - 1


def chunks(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """`data` split into reads of the given sizes, repeated (one read if no sizes)."""
    if not sizes:
        yield data
        return
    offset, index = 0, 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        yield data[offset:offset + size]
        offset += size
        index += 1


def feed(protocol: str, data: bytes, sizes: list[int], button_count: int | None = None) -> list[ParsedFrame]:
    parser = make_parser(protocol, button_count)  # type: ignore[arg-type]
    frames = [frame for chunk in chunks(data, sizes) for frame in parser.feed(chunk)]
    assert parser.bad_frames >= 0 and parser.garbage_bytes >= 0 and parser.lost_frames >= 0
    return frames


def assert_in_range(frame: ParsedFrame, protocol: str, button_count: int | None = None) -> None:
    assert all(math.isfinite(a) and -1.0 <= a <= 1.0 for a in frame.axes), frame
    assert all(b in (0, 1) for b in frame.buttons), frame
    assert 0 <= frame.t_device_us <= MAX_T_US, frame
    if protocol == "exjs1":
        assert frame.seq is not None and 0 <= frame.seq <= 255
        assert len(frame.axes) <= 255 and len(frame.buttons) <= 255
    else:
        assert frame.seq is None
        if button_count is not None:
            assert len(frame.buttons) == button_count


@st.composite
def valid_frame(draw: st.DrawFn, protocol: str) -> bytes:
    axes = draw(st.lists(st.floats(-1.0, 1.0), max_size=12))
    buttons = draw(st.lists(st.integers(0, 1), max_size=24))
    t_us = draw(st.integers(0, MAX_T_US))
    if protocol == "exjs1":
        return encode_exjs1(draw(st.integers(0, 255)), t_us, axes, buttons)
    return encode_ascii(t_us, axes, buttons)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few byte flips, insertions, deletions and cuts."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "cut", "duplicate"]))
        at = draw(st.integers(0, max(0, len(out) - 1)))
        if kind == "flip" and out:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and out:
            del out[at:at + draw(st.integers(1, 8))]
        elif kind == "cut":
            del out[at:]
        elif kind == "duplicate":
            out[at:at] = out[at:at + draw(st.integers(1, 16))]
    return bytes(out)


READS = st.lists(st.integers(1, 64), max_size=8)


@fuzz_settings(400)
@given(protocol=PROTOCOLS, data=st.binary(max_size=1200), sizes=READS)
def test_arbitrary_bytes_never_raise_and_decode_the_same_in_any_chunking(protocol: str, data: bytes,
                                                                         sizes: list[int]) -> None:
    tried(f"serial {protocol}: arbitrary bytes")
    whole = feed(protocol, data, [])
    assert feed(protocol, data, sizes) == whole
    for frame in whole:
        assert_in_range(frame, protocol)


@fuzz_settings(400)
@given(data=st.data(), protocol=PROTOCOLS, sizes=READS, button_count=st.none() | st.integers(0, 16))
def test_mutated_valid_streams_never_raise(data: st.DataObject, protocol: str, sizes: list[int],
                                           button_count: int | None) -> None:
    tried(f"serial {protocol}: mutated valid frames")
    frames = data.draw(st.lists(valid_frame(protocol), min_size=1, max_size=8))
    stream = b"".join(data.draw(st.one_of(st.just(f), mutated(f))) for f in frames)
    whole = feed(protocol, stream, [], button_count)
    assert feed(protocol, stream, sizes, button_count) == whole
    for frame in whole:
        assert_in_range(frame, protocol, button_count)


@fuzz_settings(300)
@given(data=st.data(), protocol=PROTOCOLS, garbage=st.binary(max_size=700), sizes=READS)
def test_valid_frames_after_garbage_are_decoded(data: st.DataObject, protocol: str, garbage: bytes,
                                                sizes: list[int]) -> None:
    """Whatever came before, the parser finds its way back: the frames sent after the garbage all decode.

    A false EXJS1 candidate in the garbage may claim up to 261 bytes, so enough valid frames follow it."""
    tried(f"serial {protocol}: garbage then valid frames")
    frames = data.draw(st.lists(valid_frame(protocol), min_size=1, max_size=6))
    while sum(map(len, frames)) < 2 * (4 + 255 + 2):
        frames.append(encode_exjs1(len(frames), 7, (0.25,), (1,)) if protocol == "exjs1"
                      else encode_ascii(7, (0.25,), (1,)))
    expected = feed(protocol, b"".join(frames), [])
    assert len(expected) == len(frames)
    decoded = feed(protocol, garbage + b"".join(frames), sizes)
    assert decoded[len(decoded) - len(expected):] == expected


@st.composite
def ascii_line_with_good_checksum(draw: st.DrawFn) -> bytes:
    """A `$JOY` line whose fields are anything (huge numbers, signs, non-digits), with a correct checksum."""
    digits = st.text(alphabet="0123456789", min_size=1, max_size=5000)
    field = st.one_of(digits, st.from_regex(r"-?[0-9]{1,40}", fullmatch=True),
                      st.text(alphabet="0123456789abcdefABCDEF+-_ .x", max_size=20))
    fields = ["JOY", draw(field), *draw(st.lists(field, max_size=6)), draw(field)]
    body = ",".join(fields).encode("ascii")
    return b"$" + body + f"*{nmea_checksum(body):02X}".encode("ascii") + draw(st.sampled_from([b"\r\n", b"\n"]))


@fuzz_settings(400)
@given(lines=st.lists(ascii_line_with_good_checksum(), min_size=1, max_size=4), sizes=READS,
       button_count=st.none() | st.integers(0, 16))
def test_ascii_lines_with_correct_checksums_and_any_fields(lines: list[bytes], sizes: list[int],
                                                           button_count: int | None) -> None:
    """The checksum is no guard against nonsense: huge timestamps or axes, 5000-digit fields, signs."""
    tried("serial ascii: any fields, correct checksum")
    stream = b"".join(lines)
    whole = feed("ascii", stream, [], button_count)
    assert feed("ascii", stream, sizes, button_count) == whole
    for frame in whole:
        assert_in_range(frame, "ascii", button_count)
    accepted = [line for line in lines if len(line) <= ASCII_MAX_LINE]
    assert len(whole) <= len(accepted)


def test_ascii_refuses_timestamps_beyond_32_bits_and_overlong_lines() -> None:
    """What the fuzzing found: both were accepted (and a 5000-digit field raised ValueError)."""
    def line(body: bytes) -> bytes:
        return b"$" + body + f"*{nmea_checksum(body):02X}\r\n".encode()

    parser = make_parser("ascii")
    assert parser.feed(line(b"JOY,4294967295,0,1"))[0].t_device_us == MAX_T_US
    assert parser.feed(line(b"JOY,4294967296,0,1")) == []
    assert parser.feed(line(b"JOY," + b"9" * 5000 + b",0,1")) == []
    long_but_valid = line(b"JOY," + b"0" * 600 + b"1,0,1")  # a well-formed line longer than 512 bytes
    assert parser.feed(long_but_valid) == []
    assert parser.bad_frames == 3
    split = make_parser("ascii")
    assert [f for c in chunks(long_but_valid, [300]) for f in split.feed(c)] == []
    assert split.bad_frames == 1
