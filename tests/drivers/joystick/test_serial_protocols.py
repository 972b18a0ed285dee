"""EXJS1 and ASCII serial joystick parsers, fed bytes directly."""

import pytest

from excap.drivers.joystick.serial_protocols import (
    AsciiParser,
    Exjs1Parser,
    crc16_ccitt_false,
    encode_ascii,
    encode_exjs1,
    make_parser,
    nmea_checksum,
)

AXES = (0.0, 0.5, -0.25, 1.0, -1.0)
BUTTONS = (1, 0, 0, 1, 1, 0, 0, 0, 1, 0)
DOC_EXJS1 = bytes.fromhex("A5 5A 0B 07 02 03 00 40 01 80 05 40 42 0F 00 6D 41")
DOC_ASCII = b"$JOY,1000000,500,-1000,5*41\r\n"


def exjs1_frames(count: int, first_seq: int = 0) -> list[bytes]:
    return [encode_exjs1(first_seq + i, 1000 * i, AXES, BUTTONS) for i in range(count)]


def ascii_lines(count: int) -> list[bytes]:
    return [encode_ascii(1000 * i, AXES, BUTTONS) for i in range(count)]


def test_crc16_ccitt_false_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1


def test_documented_examples_decode() -> None:
    (frame,) = Exjs1Parser().feed(DOC_EXJS1)
    assert (frame.seq, frame.t_device_us, frame.buttons) == (7, 1_000_000, (1, 0, 1))
    assert frame.axes == pytest.approx((0.5, -1.0), abs=1e-4)
    assert encode_exjs1(7, 1_000_000, (0.5, -1.0), (1, 0, 1)) == DOC_EXJS1
    (line,) = AsciiParser(button_count=3).feed(DOC_ASCII)
    assert (line.t_device_us, line.axes, line.buttons) == (1_000_000, (0.5, -1.0), (1, 0, 1))
    assert encode_ascii(1_000_000, (0.5, -1.0), (1, 0, 1)) == DOC_ASCII
    assert nmea_checksum(b"JOY,1000000,500,-1000,5") == 0x41


def test_exjs1_round_trip() -> None:
    parser = Exjs1Parser()
    frames = parser.feed(b"".join(exjs1_frames(3)))
    assert [f.seq for f in frames] == [0, 1, 2]
    assert [f.t_device_us for f in frames] == [0, 1000, 2000]
    for frame in frames:
        assert frame.axes == pytest.approx(AXES, abs=1 / 32767)
        assert frame.buttons == BUTTONS
    assert (parser.bad_frames, parser.garbage_bytes, parser.lost_frames) == (0, 0, 0)


def test_exjs1_clamps_and_wraps() -> None:
    (frame,) = Exjs1Parser().feed(encode_exjs1(300, 2**32 + 5, (2.0, -3.0), ()))
    assert (frame.seq, frame.t_device_us, frame.axes, frame.buttons) == (300 & 0xFF, 5, (1.0, -1.0), ())


def test_ascii_round_trip() -> None:
    parser = AsciiParser(button_count=len(BUTTONS))
    frames = parser.feed(b"".join(ascii_lines(3)))
    assert [f.t_device_us for f in frames] == [0, 1000, 2000]
    for frame in frames:
        assert frame.axes == AXES
        assert frame.buttons == BUTTONS
        assert frame.seq is None
    assert (parser.bad_frames, parser.garbage_bytes) == (0, 0)


def test_ascii_button_count_defaults_to_four_per_digit() -> None:
    (frame,) = AsciiParser().feed(encode_ascii(0, (), (1, 1, 0, 0, 0, 1)))
    assert frame.buttons == (1, 1, 0, 0, 0, 1, 0, 0)
    assert frame.axes == ()


@pytest.mark.parametrize(("protocol", "frames"), [("exjs1", exjs1_frames(4)), ("ascii", ascii_lines(4))])
def test_split_across_feeds(protocol: str, frames: list[bytes]) -> None:
    stream = b"".join(frames)
    for chunk in (1, 2, 3, 7, 13):
        parser = make_parser(protocol, len(BUTTONS))  # type: ignore[arg-type]
        decoded = []
        for i in range(0, len(stream), chunk):
            decoded += parser.feed(stream[i:i + chunk])
        assert [f.t_device_us for f in decoded] == [0, 1000, 2000, 3000], f"chunk {chunk}"
        assert (parser.bad_frames, parser.garbage_bytes, parser.lost_frames) == (0, 0, 0)


def test_exjs1_garbage_between_frames() -> None:
    a, b, c = exjs1_frames(3)
    garbage = bytes(range(0x10, 0x40))  # no sync byte in it
    parser = Exjs1Parser()
    frames = parser.feed(garbage + a + garbage + b + b"\xa5" + c + b"\x5a\x5a")
    assert [f.seq for f in frames] == [0, 1, 2]
    assert parser.garbage_bytes == 2 * len(garbage) + 1 + 2
    assert parser.bad_frames == 0


def test_exjs1_resyncs_on_false_sync_in_garbage() -> None:
    a, b = exjs1_frames(2)
    parser = Exjs1Parser()
    frames = parser.feed(a + b"\xa5\x5a\xff\x00" + b)  # length 255 disagrees with the counts after it
    assert [f.seq for f in frames] == [0, 1]
    assert parser.bad_frames == 1
    # a false sync whose length claims to swallow the next frame: found once the CRC fails
    parser = Exjs1Parser()
    fake = b"\xa5\x5a\x06\x00\x00\x00"
    frames = parser.feed(a + fake + b + exjs1_frames(1, first_seq=2)[0])
    assert [f.seq for f in frames] == [0, 1, 2]
    assert parser.bad_frames == 1


def test_exjs1_bad_crc_and_bad_length() -> None:
    a, b, c = exjs1_frames(3)
    corrupt = bytearray(b)
    corrupt[8] ^= 0x01
    parser = Exjs1Parser()
    frames = parser.feed(a + bytes(corrupt) + c)
    assert [f.seq for f in frames] == [0, 2]
    assert parser.bad_frames == 1
    assert parser.garbage_bytes == len(b) - 2  # the rejected frame's bytes after its sync
    assert parser.lost_frames == 1  # the corrupted frame shows as a sequence gap
    wrong_length = bytearray(b)
    wrong_length[2] += 1
    parser = Exjs1Parser()
    assert [f.seq for f in parser.feed(a + bytes(wrong_length) + c)] == [0, 2]
    assert parser.bad_frames == 1


def test_exjs1_sequence_gaps_and_wrap() -> None:
    parser = Exjs1Parser()
    seqs = [250, 251, 253, 254, 255, 0, 4, 4, 5]
    frames = parser.feed(b"".join(encode_exjs1(s, 0, (), ()) for s in seqs))
    assert [f.seq for f in frames] == seqs
    assert parser.lost_frames == 1 + 3  # 252, then 1..3; the repeated 4 counts nothing
    parser.reset()
    parser.feed(encode_exjs1(100, 0, (), ()))
    assert parser.lost_frames == 4  # no gap across a reset


def test_ascii_garbage_between_lines() -> None:
    a, b, c = ascii_lines(3)
    parser = AsciiParser(button_count=len(BUTTONS))
    frames = parser.feed(b"noise\r\n" + a + b"\x00\xff junk" + b + c + b"tail")
    assert [f.t_device_us for f in frames] == [0, 1000, 2000]
    assert parser.garbage_bytes == len(b"noise\r\n") + len(b"\x00\xff junk") + len(b"tail")
    assert parser.bad_frames == 0


@pytest.mark.parametrize("bad", [
    b"$JOY,0,0,0,1*00\r\n",  # wrong checksum
    b"$JOY,0,0,0,1\r\n",  # no checksum
    b"$JOY,0,0,0,1*4\r\n",  # one checksum digit
    b"$JOY,0,0,0,1*ZZ\r\n",  # not hex
])
def test_ascii_bad_checksum_lines_skipped(bad: bytes) -> None:
    a, b = ascii_lines(2)
    parser = AsciiParser(button_count=len(BUTTONS))
    frames = parser.feed(a + bad + b)
    assert [f.t_device_us for f in frames] == [0, 1000]
    assert parser.bad_frames == 1


def _line(body: str) -> bytes:
    return f"${body}*{nmea_checksum(body.encode()):02X}\r\n".encode()


@pytest.mark.parametrize("body", [
    "JOY,0,1001,0",  # axis out of range
    "JOY,-5,0,0",  # negative time
    "JOY,0,1.5,0",  # not an integer
    "JOY,0,+5,0",  # explicit sign
    "JOY,0,0,",  # empty buttons
    "JOY,0,0,G1",  # buttons not hex
    "JOY,0",  # too few fields
    "KEY,0,0,0",  # other sentence
    "JOY,,0,0",  # empty time
])
def test_ascii_malformed_fields_skipped(body: str) -> None:
    a, b = ascii_lines(2)
    parser = AsciiParser(button_count=len(BUTTONS))
    frames = parser.feed(a + _line(body) + b)
    assert [f.t_device_us for f in frames] == [0, 1000]
    assert parser.bad_frames == 1


def test_ascii_cut_short_and_overlong_lines() -> None:
    a, b = ascii_lines(2)
    parser = AsciiParser(button_count=len(BUTTONS))
    frames = parser.feed(a[:10] + b)
    assert [f.t_device_us for f in frames] == [1000]
    assert parser.bad_frames == 1
    parser = AsciiParser(button_count=len(BUTTONS))
    assert parser.feed(b"$" + b"1" * 600) == []
    assert parser.bad_frames == 1
    assert [f.t_device_us for f in parser.feed(a)] == [0]


def test_unknown_protocol() -> None:
    with pytest.raises(ValueError, match="unknown serial joystick protocol"):
        make_parser("modbus")  # type: ignore[arg-type]
