import math

import cantools
import pytest

from excap.core.errors import ConfigError
from excap.drivers.can.decoder import FrameDecoder
from excap.drivers.can.j1939 import J1939Id, not_available_threshold
from excap.schemas import schema_file

DBC = schema_file("can/excavator_j1939.dbc")


@pytest.fixture(scope="module")
def decoder():
    return FrameDecoder(DBC)


def test_j1939_id_round_trip():
    eec1 = J1939Id.parse(0x0CF00400)
    assert (eec1.priority, eec1.pgn, eec1.source_address) == (3, 61444, 0x00)
    assert eec1.arbitration_id() == 0x0CF00400
    request = J1939Id.parse(0x18EA00F9)  # PDU1: request to address 0x00 from 0xF9
    assert (request.pgn, request.destination_address, request.source_address) == (0xEA00, 0x00, 0xF9)
    assert request.arbitration_id() == 0x18EA00F9


def test_not_available_thresholds():
    assert not_available_threshold(8) == 0xFA
    assert not_available_threshold(16) == 0xFAFF
    assert not_available_threshold(24) == 0xFAFFFF
    assert not_available_threshold(2) == 1
    assert not_available_threshold(5) is None


def test_decodes_by_pgn_and_source_address(decoder):
    database = cantools.database.load_file(str(DBC))
    arm = database.get_message_by_name("ArmSSI2")
    data = arm.encode({"PitchAngleExRange": -30.0, "RollAngleExRange": 1.0, "PitchAngleFigureOfMerit": 0,
                       "RollAngleFigureOfMerit": 0, "MeasurementLatency": 5}, padding=True)
    frame = decoder.decode(arm.frame_id, True, data)
    assert frame.message.name == "ArmSSI2" and frame.source_address == 0xE3
    assert frame.values["PitchAngleExRange"] == pytest.approx(-30.0)
    # Same PGN with another priority still matches the node's message.
    other_priority = (arm.frame_id & ~(0x7 << 26)) | (6 << 26)
    assert decoder.decode(other_priority, True, data).message.name == "ArmSSI2"


def test_pgn_from_unknown_source_uses_the_pgn_definition(decoder):
    frame = decoder.decode(0x0CF00431, True, bytes([0xF0, 0x7D, 0x7D, 0x40, 0x1F, 0x00, 0xFF, 0x7D]))
    assert frame.message.name == "EEC1" and frame.source_address == 0x31
    assert frame.values["EngSpeed"] == pytest.approx(0x1F40 * 0.125)


def test_not_available_and_error_values_decode_as_nan(decoder):
    data = bytes([0xFF, 0xFF, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])  # EEC1 with everything unavailable
    frame = decoder.decode(0x0CF00400, True, data)
    assert math.isnan(frame.values["EngSpeed"])
    assert math.isnan(frame.values["ActualEngPercentTorque"])  # 0xFE: error indicator
    assert math.isnan(frame.values["EngTorqueMode"])


def test_unknown_and_wrong_length_frames_are_counted_not_raised(decoder):
    unknown_before, bad_before = decoder.unknown, decoder.undecodable
    assert decoder.decode(0x123, False, b"\x00" * 8) is None
    assert decoder.decode(0x0CF00400, True, b"\x00" * 3) is None
    assert decoder.unknown == unknown_before + 1
    assert decoder.undecodable == bad_before + 1


def test_bad_dbc_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.dbc"
    bad.write_text("this is not a dbc")
    with pytest.raises(ConfigError, match="cannot load CAN database"):
        FrameDecoder(bad)
