"""The part of Hearth's MQTT protocol a satellite speaks (docs/protocol.md).

Restated here rather than imported from the bridge, so a small device runs the satellite without
the bridge's dependencies; tests/satellite/test_contract.py checks it against the bridge's own.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass

PROTOCOL_VERSION = 1
#: version, flags, reserved, stream id, sequence number; little-endian, 12 bytes
FRAME_HEADER = struct.Struct("<BBHII")
FLAG_LAST = 0x01
FRAME_BYTES = 960  #: 30 ms of 16 kHz 16-bit mono: the recommended frame
MAX_FRAME_PAYLOAD = 8000
RATE = 16000
WAKE_WORDS = ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")
SATELLITE_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")


@dataclass(frozen=True, slots=True)
class Frame:
    stream_id: int
    seq: int
    last: bool
    pcm: bytes


def encode_frame(stream_id: int, seq: int, pcm: bytes, last: bool = False) -> bytes:
    return FRAME_HEADER.pack(PROTOCOL_VERSION, FLAG_LAST if last else 0, 0, stream_id, seq) + pcm


def decode_frame(payload: bytes) -> Frame | None:
    """A frame of the bridge's `play` topic, or None when it is not one."""
    if len(payload) < FRAME_HEADER.size:
        return None
    version, flags, _, stream_id, seq = FRAME_HEADER.unpack_from(payload)
    pcm = payload[FRAME_HEADER.size:]
    if version != PROTOCOL_VERSION or len(pcm) % 2:
        return None
    return Frame(stream_id, seq, bool(flags & FLAG_LAST), pcm)


class SatelliteTopics:
    """One satellite's topics under a prefix."""

    #: what the satellite publishes (the broker ACL allows it only these)
    OUTBOUND = ("status", "audio", "event")
    #: what it reads: the bridge's commands, answers to play, its retained state, session errors
    INBOUND = ("command", "play", "state", "error")

    def __init__(self, prefix: str, sat_id: str) -> None:
        if not SATELLITE_ID.fullmatch(sat_id):
            raise ValueError(f"satellite id {sat_id!r}: 1-64 characters from A-Z, a-z, 0-9 and _ - . : @")
        self.prefix = prefix.rstrip("/")
        self.sat_id = sat_id
        base = f"{self.prefix}/satellite/{sat_id}"
        self.status = f"{base}/status"
        self.audio = f"{base}/audio"
        self.event = f"{base}/event"
        self.command = f"{base}/command"
        self.play = f"{base}/play"
        self.state = f"{base}/state"
        self.error = f"{base}/error"

    def leaf(self, topic: str) -> str | None:
        head = f"{self.prefix}/satellite/{self.sat_id}/"
        return topic[len(head):] if topic.startswith(head) else None


def dumps(data: dict[str, object]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def loads(payload: bytes) -> dict[str, object] | None:
    """A JSON object from the wire, or None for anything else."""
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
