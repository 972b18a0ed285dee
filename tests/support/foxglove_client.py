"""A Foxglove WebSocket protocol client over real loopback connections, with the `websockets` package: the channels
the server advertises, subscriptions, and the messages received per topic. It offers the subprotocols
`foxglove.sdk.v1` (the only one the Foxglove SDK 0.30 server accepts) and `foxglove.websocket.v1` (older servers).

Binary frames from the server: opcode 0x01 (message data) = subscription id (uint32 LE), log time (uint64 LE, ns),
payload; 0x02 (time) is ignored. Text frames are JSON with an `op` (`serverInfo`, `advertise`, `unadvertise`, ...).
"""

import json
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.sync.client import ClientConnection, connect

SUBPROTOCOLS = ["foxglove.sdk.v1", "foxglove.websocket.v1"]
MESSAGE_DATA = 0x01


@dataclass
class Received:
    log_time_ns: int
    payload: bytes

    def json(self) -> Any:
        return json.loads(self.payload)


@contextmanager
def foxglove_client(url: str) -> Iterator["FoxgloveClient"]:
    """A connected client (closed on leaving)."""
    with connect(url, subprotocols=SUBPROTOCOLS, max_size=None, open_timeout=10, proxy=None) as connection:
        yield FoxgloveClient(connection)


@dataclass
class FoxgloveClient:
    connection: ClientConnection
    server_info: dict[str, Any] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)  # topic -> advertised channel
    messages: dict[str, list[Received]] = field(default_factory=dict)  # topic -> messages, in order
    _subscribed: dict[int, str] = field(default_factory=dict)  # subscription id -> topic

    def subscribe(self, topics: list[str]) -> None:
        subscriptions = []
        for topic in topics:
            sub_id = len(self._subscribed) + 1
            self._subscribed[sub_id] = topic
            self.messages.setdefault(topic, [])
            subscriptions.append({"id": sub_id, "channelId": self.channels[topic]["id"]})
        self.connection.send(json.dumps({"op": "subscribe", "subscriptions": subscriptions}))

    def receive_one(self, timeout: float) -> None:
        frame = self.connection.recv(timeout)
        if isinstance(frame, str):
            message = json.loads(frame)
            if message.get("op") == "serverInfo":
                self.server_info = message
            elif message.get("op") == "advertise":
                for channel in message["channels"]:
                    self.channels[channel["topic"]] = channel
            return
        if frame[0] == MESSAGE_DATA:
            sub_id, log_time = struct.unpack_from("<IQ", frame, 1)
            topic = self._subscribed.get(sub_id)
            if topic is not None:
                self.messages[topic].append(Received(log_time, bytes(frame[13:])))

    def receive_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            try:
                self.receive_one(min(remaining, 1.0))
            except TimeoutError:
                continue


def protobuf_fields(payload: bytes) -> dict[int, Any]:
    """The top-level fields of a protobuf message: number -> value (varints as int, length-delimited as bytes)."""
    fields: dict[int, Any] = {}
    position = 0

    def varint() -> int:
        nonlocal position
        value = shift = 0
        while True:
            byte = payload[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while position < len(payload):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields[number] = varint()
        elif wire == 2:
            length = varint()
            fields[number] = payload[position:position + length]
            position += length
        elif wire == 1:
            fields[number] = payload[position:position + 8]
            position += 8
        elif wire == 5:
            fields[number] = payload[position:position + 4]
            position += 4
        else:
            raise ValueError(f"protobuf wire type {wire} of field {number}")
    return fields
