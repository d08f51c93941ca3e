"""The outbox: how every part of the bridge publishes.

Parts hand it a topic and a wire message (a `bridge.protocol.messages` dataclass, a Hermes
payload dict, or raw bytes); it encodes JSON once, here, and queues the bytes on the MQTT link.
It also carries the flag that says the statistics changed and are worth publishing again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from ..protocol.hearth import Topics, dumps


class WireMessage(Protocol):
    def to_json(self) -> Mapping[str, object]: ...


type Payload = bytes | WireMessage | Mapping[str, object]


class Outbox:
    """Encodes and queues outgoing messages (sending is the link's job)."""

    def __init__(self, topics: Topics, publish: Callable[[str, bytes, bool], None]) -> None:
        self.topics = topics
        self._publish = publish
        self.stats_dirty = True

    def send(self, topic: str, payload: Payload, retain: bool = False) -> None:
        self._publish(topic, self.encode(payload), retain)

    @staticmethod
    def encode(payload: Payload) -> bytes:
        """The bytes that go on the wire for a message."""
        if isinstance(payload, bytes):
            return payload
        if isinstance(payload, Mapping):
            return dumps(dict(payload))
        return dumps(dict(payload.to_json()))
