"""Hearth's satellite protocol (docs/protocol.md): topics, the audio frame header, JSON helpers.

Pure: no I/O. The JSON payloads themselves are dataclasses in `bridge.protocol.messages`.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import PROTOCOL_VERSION
from ..engines import CodedError

FRAME_HEADER = struct.Struct("<BBHII")
FLAG_LAST = 0x01
MAX_FRAME_PAYLOAD = 8000
RECOMMENDED_FRAME_BYTES = 960  # 30 ms at 16 kHz, 16-bit mono
#: the wake words the bridge can listen for (pymicro-wakeword's bundled models)
WAKE_WORDS = ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")
#: The one satellite id rule, for both protocols (a Hearth topic level, a Hermes siteId, a policy
#: key, a `satellites` key in the configuration, the integration's device ids), matched whole with
#: `fullmatch`. Rhasspy site ids are free text and `.`, `:` and `@` are used in the wild
#: (`living.room`, `pi@kitchen`), so they are accepted; never `/`, `+` or `#` (topic levels and
#: wildcards), spaces or control characters. A Hermes site outside this rule is refused, never
#: served: what is served must be mutable by the policy.
SATELLITE_ID_PATTERN = r"[A-Za-z0-9_.:@-]{1,64}"
SATELLITE_ID = re.compile(SATELLITE_ID_PATTERN)
#: the rule in words, for error messages
SATELLITE_ID_RULE = "1-64 characters from A-Z, a-z, 0-9 and _ - . : @"
SATELLITE_INBOUND = ("status", "audio", "event")
HOME_ASSISTANT_INBOUND = ("response", "announce")
BRIDGE_OUTBOUND = frozenset({"state", "command", "play", "wake", "transcript", "intent", "error",
                             "question", "answer", "pipeline/start", "pipeline/audio", "settings/result"})
# Assist pipeline streaming and per-satellite settings (docs/protocol.md): the only two-level
# satellite leaves.
PIPELINE_LEAVES = frozenset({"pipeline/set", "pipeline/play", "pipeline/start", "pipeline/audio",
                             "settings/set", "settings/result"})
MAX_PIPELINE_PLAY = 2_000_000  # one WAV answer from Home Assistant, bytes


class ProtocolError(CodedError, ValueError):
    """A message broke the protocol."""


@dataclass(frozen=True, slots=True)
class AudioFrame:
    stream_id: int
    seq: int
    last: bool
    pcm: bytes


def encode_frame(stream_id: int, seq: int, pcm: bytes, last: bool = False) -> bytes:
    return FRAME_HEADER.pack(PROTOCOL_VERSION, FLAG_LAST if last else 0, 0, stream_id, seq) + pcm


def decode_frame(payload: bytes) -> AudioFrame:
    if len(payload) < FRAME_HEADER.size:
        raise ProtocolError("bad_frame", f"audio frame shorter than its {FRAME_HEADER.size}-byte header")
    version, flags, _, stream_id, seq = FRAME_HEADER.unpack_from(payload)
    if version != PROTOCOL_VERSION:
        raise ProtocolError("bad_frame", f"audio frame version {version}, expected {PROTOCOL_VERSION}")
    pcm = payload[FRAME_HEADER.size :]
    if len(pcm) % 2:
        raise ProtocolError("bad_frame", "audio frame payload has an odd number of bytes (not 16-bit PCM)")
    if len(pcm) > MAX_FRAME_PAYLOAD:
        raise ProtocolError("oversized", f"audio frame of {len(pcm)} bytes exceeds {MAX_FRAME_PAYLOAD}")
    return AudioFrame(stream_id=stream_id, seq=seq, last=bool(flags & FLAG_LAST), pcm=pcm)


class Topics:
    """All of Hearth's topics under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.rstrip("/")
        p = self.prefix
        self.bridge_status = f"{p}/bridge/status"
        self.bridge_error = f"{p}/bridge/error"
        self.bridge_stats = f"{p}/bridge/stats"
        self.vocabulary_set = f"{p}/bridge/vocabulary/set"
        self.vocabulary_state = f"{p}/bridge/vocabulary/state"
        self.policy_set = f"{p}/bridge/policy/set"
        self.policy_state = f"{p}/bridge/policy/state"
        self.policy_result = f"{p}/bridge/policy/result"
        self.audit = f"{p}/bridge/audit"
        self.history_purge = f"{p}/bridge/history/purge"
        # One wildcard, so malformed satellite topics are seen and reported too; the bridge's
        # own outbound leaves come back and are ignored by the dispatcher.
        self.satellite_wildcards = [f"{p}/satellite/#"]

    def satellite(self, sat: str, leaf: str) -> str:
        return f"{self.prefix}/satellite/{sat}/{leaf}"

    def parse_satellite_topic(self, topic: str) -> tuple[str, str] | None:
        """`<prefix>/satellite/<sat>/<leaf>` → (sat, leaf); None if not a satellite topic.

        The leaf is one level, except the Assist pipeline leaves (`pipeline/set`, ...).
        """
        head = f"{self.prefix}/satellite/"
        if not topic.startswith(head):
            return None
        rest = topic[len(head) :].split("/")
        if len(rest) == 3 and "/".join(rest[1:]) in PIPELINE_LEAVES:
            rest = [rest[0], "/".join(rest[1:])]
        if len(rest) != 2:
            raise ProtocolError("bad_topic", f"cannot parse satellite topic {topic!r}")
        sat, leaf = rest
        if not SATELLITE_ID.fullmatch(sat):
            raise ProtocolError("bad_satellite_id", f"satellite id {sat!r}: {SATELLITE_ID_RULE}")
        return sat, leaf


def is_audio_topic(topic: str) -> bool:
    """A satellite's audio frames, Hearth's (`<prefix>/satellite/<id>/audio`) or Hermes'
    (`hermes/audioServer/<site>/audioFrame`): what may be shed first under a backlog."""
    return topic.endswith("/audio") or (topic.startswith("hermes/audioServer/") and topic.endswith("/audioFrame"))


def is_satellite_id(value: object) -> bool:
    """Whether `value` is a usable satellite id (the one rule: :data:`SATELLITE_ID`)."""
    return isinstance(value, str) and SATELLITE_ID.fullmatch(value) is not None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def loads_json(payload: bytes, what: str) -> object:
    """Strict JSON from the wire: UTF-8, no NaN/Infinity (nobody downstream could read them back),
    no integer of more than Python's 4300 digits, nesting bounded by the interpreter; anything
    else is a ProtocolError `invalid_json`, never another exception."""
    try:
        return json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise ProtocolError("invalid_json", f"{what}: payload is not valid JSON (nested too deeply)") from None
    except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError, constants, over-long integers
        raise ProtocolError("invalid_json", f"{what}: payload is not valid JSON ({str(err)[:200]})") from None


def parse_json_object(payload: bytes, what: str) -> dict[str, Any]:  # noqa: ANN401 - JSON of any shape, checked by its reader
    data = loads_json(payload, what)
    if not isinstance(data, dict):
        raise ProtocolError("invalid_json", f"{what}: payload must be a JSON object")
    return data


def json_str(data: Mapping[str, object], key: str) -> str | None:
    """`data[key]` when it is a string, else None (JSON read by its reader, never trusted)."""
    value = data.get(key)
    return value if isinstance(value, str) else None


def json_int(data: Mapping[str, object], key: str) -> int | None:
    """`data[key]` when it is an integer (not a boolean), else None."""
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def finite_float(value: object, default: float = 0.0) -> float:
    """A JSON number as a finite float; `default` for anything else (booleans, huge integers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    try:
        number = float(value)
    except OverflowError:
        return default
    return number if math.isfinite(number) else default


def dumps(data: Mapping[str, object]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()
