import uuid

import can
import pytest

from excap.core.errors import ConfigError, DriverError
from excap.drivers.can.bus_config import CanBusConfig, CanFilter, open_bus


def entry(**overrides):
    return {"name": "can0", "interface": "virtual", "channel": f"excap-test-{uuid.uuid4().hex}", **overrides}


def test_full_entry_is_read(tmp_path):
    config = CanBusConfig.from_dict(entry(
        interface="socketcan", channel="can1", bitrate=250000, fd=True, data_bitrate="2000000",
        receive_own_messages=True, dbc="machine.dbc", extra={"local_loopback": False},
        filters=[{"can_id": "0x18FEF100", "can_mask": 0x1FFFFFFF, "extended": True},
                 {"can_id": 0x100, "can_mask": 0x700}],
        reconnect_interval_s=0.5,
    ), "cans[0]", base_dir=tmp_path)
    assert config.interface == "socketcan" and config.channel == "can1" and config.bitrate == 250000
    assert config.fd and config.data_bitrate == 2000000 and config.receive_own_messages
    assert config.filters == [CanFilter(can_id=0x18FEF100, can_mask=0x1FFFFFFF, extended=True),
                              CanFilter(can_id=0x100, can_mask=0x700)]
    assert config.dbc == tmp_path / "machine.dbc" and config.reconnect_interval_s == 0.5
    assert config.bus_kwargs() == {
        "local_loopback": False, "interface": "socketcan", "channel": "can1", "bitrate": 250000, "fd": True,
        "data_bitrate": 2000000, "receive_own_messages": True,
        "can_filters": [{"can_id": 0x18FEF100, "can_mask": 0x1FFFFFFF, "extended": True},
                        {"can_id": 0x100, "can_mask": 0x700}],
    }


def test_minimal_entry_has_quiet_defaults():
    config = CanBusConfig.from_dict({"name": "can0", "interface": "kvaser", "channel": 0}, "cans[0]")
    assert config.bus_kwargs() == {"interface": "kvaser", "channel": 0}
    assert config.filters == [] and config.dbc is None and not config.fd


@pytest.mark.parametrize(("overrides", "message"), [
    ({"bitrate": 0}, "cans[0].bitrate: must be a whole number between 5000 and 1000000 (got 0)"),
    ({"bitrate": "fast"}, "cans[0].bitrate: must be a whole number between 5000 and 1000000 (got 'fast')"),
    ({"bitrate": True}, "cans[0].bitrate: must be a whole number between 5000 and 1000000 (got true)"),
    ({"interface": "carrier_pigeon"}, "cans[0].interface: unknown python-can interface 'carrier_pigeon'"),
    ({"channel": ""}, "cans[0].channel: must be a non-empty string"),
    ({"name": "can/0"}, "cans[0].name: must be a channel name"),
    ({"fd": "yes"}, "cans[0].fd: must be true or false"),
    ({"receive_own_messages": 1}, "cans[0].receive_own_messages: must be true or false"),
    ({"data_bitrate": 2000000}, "cans[0].data_bitrate: only valid with fd: true"),
    ({"fd": True, "data_bitrate": -1}, "cans[0].data_bitrate: must be a whole number between 500000"),
    ({"filters": {"can_id": 1}}, "cans[0].filters: must be a list"),
    ({"filters": [{"can_id": 1}]}, "cans[0].filters[0].can_mask: missing"),
    ({"filters": [{"can_id": 1, "can_mask": 0x7FF, "ext": True}]}, "cans[0].filters[0].ext: unknown key"),
    ({"filters": [{"can_id": 0x20000000, "can_mask": 1}]}, "cans[0].filters[0].can_id: must be a whole number"),
    ({"filters": [{"can_id": 1, "can_mask": "all"}]}, "cans[0].filters[0].can_mask: must be a whole number"),
    ({"filters": [{"can_id": 0x800, "can_mask": 0x7FF, "extended": False}]},
     "cans[0].filters[0].can_id: a standard (11-bit) filter"),
    ({"filters": [{"can_id": 1, "can_mask": 1, "extended": "no"}]}, "cans[0].filters[0].extended: must be true"),
    ({"dbc": 5}, "cans[0].dbc: must be text (got 5)"),
    ({"extra": ["x"]}, "cans[0].extra: must be a mapping"),
    ({"extra": {"bitrate": 5}}, "cans[0].extra.bitrate: set by excap itself; use the entry's `bitrate`"),
    ({"extra": {"can_filters": []}}, "cans[0].extra.can_filters: set by excap itself; use the entry's `filters`"),
    ({"reconnect_interval_s": 0}, "cans[0].reconnect_interval_s: must be a finite number between 0.05 and 60 (got 0)"),
    ({"bitrat": 250000}, "cans[0].bitrat: unknown key"),
])
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as info:
        CanBusConfig.from_dict(entry(**overrides), "cans[0]")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("key", ["name", "interface", "channel"])
def test_missing_required_key(key):
    data = entry()
    del data[key]
    with pytest.raises(ConfigError, match=rf"^cans\[2\]\.{key}: missing$"):
        CanBusConfig.from_dict(data, "cans[2]")


def test_entry_must_be_a_mapping():
    with pytest.raises(ConfigError, match=r"^cans\[1\]: must be a mapping"):
        CanBusConfig.from_dict(["can0"], "cans[1]")


def test_direct_construction_is_validated_too():
    with pytest.raises(ConfigError, match=r"^can\.bitrate: must be a whole number between 5000 and 1000000 \(got -5\)"):
        CanBusConfig(name="can0", interface="virtual", channel="x", bitrate=-5)


def test_open_bus_opens_a_virtual_bus_with_filters():
    config = CanBusConfig.from_dict(entry(filters=[{"can_id": 0x100, "can_mask": 0x7FF, "extended": False}]))
    bus = open_bus(config)
    peer = can.Bus(interface="virtual", channel=config.channel)
    try:
        peer.send(can.Message(arbitration_id=0x200, data=b"\x02", is_extended_id=False))
        peer.send(can.Message(arbitration_id=0x100, data=b"\x01", is_extended_id=False))
        received = bus.recv(5.0)
        assert received is not None and received.arbitration_id == 0x100 and bytes(received.data) == b"\x01"
    finally:
        peer.shutdown()
        bus.shutdown()


def test_open_bus_failure_is_one_driver_error_line(tmp_path):
    missing = tmp_path / "no-such-tty"
    config = CanBusConfig(name="can3", interface="slcan", channel=str(missing), bitrate=500000,
                          extra={"sleep_after_open": 0})
    with pytest.raises(DriverError) as info:
        open_bus(config)
    text = str(info.value)
    assert text.startswith(f"CAN can3: cannot open slcan channel '{missing}' (")
    assert "\n" not in text

