"""Hearth's JSON wire payloads (docs/protocol.md) as frozen dataclasses.

Each outbound message has `to_json()` giving exactly the documented object, and `from_json()`
reading it back (used by tests, tools and anything that consumes the bridge's output); inbound
messages from satellites (`status`, `event`) are parsed with `from_json()`, which raises
:class:`ProtocolError` with a stable code on anything malformed. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Self

from .. import PROTOCOL_VERSION
from .hearth import WAKE_WORDS, ProtocolError, finite_float, json_int, json_str

#: a JSON value (what `json.loads` gives); readers check what they use with isinstance
type Json = object
type JsonObject = dict[str, object]


_str, _int = json_str, json_int


def _float(data: Mapping[str, object], key: str, default: float = 0.0) -> float:
    return finite_float(data.get(key), default)


def _object(data: Mapping[str, object], key: str) -> JsonObject:
    value = data.get(key)
    return dict(value) if isinstance(value, dict) else {}


# -- bridge → everyone ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BridgeStatus:
    """`<prefix>/bridge/status` (retained; the offline form is also the last will)."""

    state: Literal["online", "offline"]
    bridge_id: str
    protocol: int = PROTOCOL_VERSION
    version: str | None = None
    prefix: str | None = None
    engines: JsonObject = field(default_factory=dict)
    status_api: str | None = None
    wyoming_port: int | None = None
    #: the pairing key's public id (privacy/auth.py): a config flow checks a pasted key against it
    key_id: str | None = None

    def to_json(self) -> JsonObject:
        if self.state == "offline":
            return {"state": "offline", "protocol": self.protocol, "bridge_id": self.bridge_id}
        return {"state": "online", "protocol": self.protocol, "version": self.version,
                "bridge_id": self.bridge_id, "prefix": self.prefix, "engines": self.engines,
                "status_api": self.status_api, "wyoming_port": self.wyoming_port, "key_id": self.key_id}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        state = data.get("state")
        if state not in ("online", "offline"):
            raise ProtocolError("bad_status", f"bridge status 'state' must be online or offline, got {state!r}")
        return cls(state=state, bridge_id=_str(data, "bridge_id") or "", protocol=_int(data, "protocol") or 0,
                   version=_str(data, "version"), prefix=_str(data, "prefix"), engines=_object(data, "engines"),
                   status_api=_str(data, "status_api"), wyoming_port=_int(data, "wyoming_port"),
                   key_id=_str(data, "key_id"))


@dataclass(frozen=True, slots=True)
class BridgeError:
    """`<prefix>/bridge/error`: something went wrong with one message; the bridge serves on."""

    code: str
    message: str
    topic: str | None = None
    satellite: str | None = None
    session_id: str | None = None

    def to_json(self) -> JsonObject:
        return {"code": self.code, "message": self.message, "topic": self.topic,
                "satellite": self.satellite, "session_id": self.session_id}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        return cls(code=_str(data, "code") or "", message=_str(data, "message") or "", topic=_str(data, "topic"),
                   satellite=_str(data, "satellite"), session_id=_str(data, "session_id"))


@dataclass(frozen=True, slots=True)
class SatelliteState:
    """`<prefix>/satellite/<id>/state` (retained)."""

    state: str
    session_id: str | None
    muted: bool
    protocol: str
    online: bool
    last: JsonObject = field(default_factory=dict)  #: the last result's session, engine, locality
    #: the settings in force (`settings/set`): {"wake_word", "sensitivity"}
    settings: JsonObject = field(default_factory=dict)

    def to_json(self) -> JsonObject:
        return {"state": self.state, "session_id": self.session_id, "muted": self.muted,
                "protocol": self.protocol, "online": self.online, "last": self.last,
                "settings": self.settings}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        return cls(state=_str(data, "state") or "", session_id=_str(data, "session_id"),
                   muted=data.get("muted") is True, protocol=_str(data, "protocol") or "",
                   online=data.get("online") is True, last=_object(data, "last"),
                   settings=_object(data, "settings"))


@dataclass(frozen=True, slots=True)
class WakeMessage:
    """`<prefix>/satellite/<id>/wake`: a session opened."""

    session_id: str
    satellite: str
    wake_word: str | None
    source: str

    def to_json(self) -> JsonObject:
        return {"session_id": self.session_id, "satellite": self.satellite, "wake_word": self.wake_word,
                "source": self.source}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        return cls(session_id=_str(data, "session_id") or "", satellite=_str(data, "satellite") or "",
                   wake_word=_str(data, "wake_word"), source=_str(data, "source") or "")


@dataclass(frozen=True, slots=True)
class TranscriptMessage:
    """`<prefix>/satellite/<id>/transcript`. `text` is empty when rejected."""

    session_id: str
    satellite: str
    text: str
    rejected: bool
    confidence: float
    audio_seconds: float
    latency_ms: float
    engine: str
    locality: str
    private: bool
    timings: JsonObject
    cpu_seconds: float

    def to_json(self) -> JsonObject:
        return {"session_id": self.session_id, "satellite": self.satellite, "text": self.text,
                "rejected": self.rejected, "confidence": round(self.confidence, 4),
                "audio_seconds": round(self.audio_seconds, 3), "latency_ms": self.latency_ms,
                "engine": self.engine, "locality": self.locality, "private": self.private,
                "timings": self.timings, "cpu_seconds": round(self.cpu_seconds, 4)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        return cls(session_id=_str(data, "session_id") or "", satellite=_str(data, "satellite") or "",
                   text=_str(data, "text") or "", rejected=data.get("rejected") is True,
                   confidence=_float(data, "confidence"), audio_seconds=_float(data, "audio_seconds"),
                   latency_ms=_float(data, "latency_ms"), engine=_str(data, "engine") or "",
                   locality=_str(data, "locality") or "", private=data.get("private") is True,
                   timings=_object(data, "timings"), cpu_seconds=_float(data, "cpu_seconds"))


@dataclass(frozen=True, slots=True)
class IntentMessage:
    """`<prefix>/satellite/<id>/intent`: what the command means (`intent` None: not understood)."""

    session_id: str
    satellite: str
    text: str
    intent: JsonObject | None
    confidence: float
    rejected: bool
    private: bool
    timings: JsonObject

    def to_json(self) -> JsonObject:
        return {"session_id": self.session_id, "satellite": self.satellite, "text": self.text,
                "intent": self.intent, "confidence": round(self.confidence, 4), "rejected": self.rejected,
                "private": self.private, "timings": self.timings}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        intent = data.get("intent")
        return cls(session_id=_str(data, "session_id") or "", satellite=_str(data, "satellite") or "",
                   text=_str(data, "text") or "", intent=dict(intent) if isinstance(intent, dict) else None,
                   confidence=_float(data, "confidence"), rejected=data.get("rejected") is True,
                   private=data.get("private") is True, timings=_object(data, "timings"))


@dataclass(frozen=True, slots=True)
class SatelliteError:
    """`<prefix>/satellite/<id>/error`: `fatal` ends the session named by `session_id`."""

    session_id: str | None
    satellite: str
    code: str
    message: str
    fatal: bool

    def to_json(self) -> JsonObject:
        return {"session_id": self.session_id, "satellite": self.satellite, "code": self.code,
                "message": self.message, "fatal": self.fatal}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        return cls(session_id=_str(data, "session_id"), satellite=_str(data, "satellite") or "",
                   code=_str(data, "code") or "", message=_str(data, "message") or "",
                   fatal=data.get("fatal") is True)


type CommandName = Literal["mute", "unmute", "start_streaming", "stop_streaming", "stop_playback", "stand_down"]


@dataclass(frozen=True, slots=True)
class Command:
    """`<prefix>/satellite/<id>/command`: the bridge asks a Hearth satellite to do something."""

    command: CommandName
    session_id: str | None = None

    def to_json(self) -> JsonObject:
        if self.command == "stop_playback":
            return {"command": self.command}
        return {"command": self.command, "session_id": self.session_id}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        command = data.get("command")
        if command not in ("mute", "unmute", "start_streaming", "stop_streaming", "stop_playback", "stand_down"):
            raise ProtocolError("bad_command", f"unknown command {command!r}")
        return cls(command=command, session_id=_str(data, "session_id"))


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """`<prefix>/bridge/policy/result`: the answer to one policy command or history purge."""

    request_id: Json
    ok: bool
    error: str | None
    policy: JsonObject
    purged: int | None = None  #: only for a history purge: audit entries removed
    #: only for an accepted policy command: whether the policy in force is saved (False: a change
    #: that makes the house more private, in force in memory while the data folder cannot be written)
    saved: bool | None = None
    code: str | None = None  #: why it was refused, when that has a code (`unauthenticated`)

    def to_json(self) -> JsonObject:
        data: JsonObject = {"request_id": self.request_id, "ok": self.ok, "error": self.error}
        if self.code is not None:
            data["code"] = self.code
        if self.purged is not None:
            data["purged"] = self.purged
        if self.saved is not None:
            data["saved"] = self.saved
        data["policy"] = self.policy
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        request_id, saved = data.get("request_id"), data.get("saved")
        return cls(request_id=request_id,
                   ok=data.get("ok") is True, error=_str(data, "error"), policy=_object(data, "policy"),
                   purged=_int(data, "purged"), saved=saved if isinstance(saved, bool) else None,
                   code=_str(data, "code"))


# -- satellites → bridge ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SatelliteStatus:
    """`<prefix>/satellite/<id>/status` (retained by the satellite; its last will says offline)."""

    online: bool
    on_device_wake: bool = False  #: capabilities.wake_word: the satellite streams only after its own wake word
    barge_in: bool = False  #: capabilities.barge_in: it cancels echo, so a wake word may interrupt an answer
    wake_word: str | None = None  #: one of the bridge's wake words, or None
    play_rate: int | None = None  #: 8000-48000 Hz, or None
    area: str | None = None
    info: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))  #: the whole payload

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        state = data.get("state")
        if state not in ("online", "offline"):
            raise ProtocolError("bad_status", f"satellite status 'state' must be online or offline, got {state!r}")
        caps = data.get("capabilities")
        capabilities: Mapping[str, object] = caps if isinstance(caps, dict) else {}
        wake_word = _str(data, "wake_word")
        play_rate = _int(data, "play_rate")
        area = _str(data, "area")
        return cls(
            online=state == "online",
            on_device_wake=bool(capabilities.get("wake_word", False)),
            barge_in=bool(capabilities.get("barge_in", False)),
            wake_word=wake_word if wake_word in WAKE_WORDS else None,
            play_rate=play_rate if play_rate is not None and 8000 <= play_rate <= 48000 else None,
            area=area or None,
            info=MappingProxyType(dict(data)),
        )

    def to_json(self) -> JsonObject:
        data: JsonObject = {"state": "online" if self.online else "offline",
                            "capabilities": {"wake_word": self.on_device_wake, "barge_in": self.barge_in}}
        if self.wake_word is not None:
            data["wake_word"] = self.wake_word
        if self.play_rate is not None:
            data["play_rate"] = self.play_rate
        if self.area is not None:
            data["area"] = self.area
        return data


type EventType = Literal["wake", "button", "stop", "played"]


def _measure(data: Mapping[str, object], key: str, low: float, high: float) -> float | None:
    """An optional finite number in [low, high]; anything else is a protocol error."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ProtocolError("bad_event", f"{key} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class SatelliteEvent:
    """`<prefix>/satellite/<id>/event`: wake (its own wake word), button, stop, played."""

    type: EventType
    wake_word: str | None = None
    stream_id: int | None = None  #: wake/button: the stream the session's audio will come in
    play_id: str | None = None  #: played: which answer finished
    #: wake: the wake-word model's probability (0..1) at detection (arbitration; optional)
    wake_probability: float | None = None
    #: wake: the wake word's level (RMS over its last ~1 s of voiced frames) above the
    #: satellite's noise floor, in dB (arbitration; optional)
    speech_db: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        kind = data.get("type")
        if kind not in ("wake", "button", "stop", "played"):
            raise ProtocolError("bad_event", f"unknown satellite event type {kind!r}")
        return cls(type=kind, wake_word=_str(data, "wake_word"), stream_id=_int(data, "stream_id"),
                   play_id=_str(data, "play_id"), wake_probability=_measure(data, "wake_probability", 0.0, 1.0),
                   speech_db=_measure(data, "speech_db", -200.0, 200.0))

    def to_json(self) -> JsonObject:
        data: JsonObject = {"type": self.type}
        if self.wake_word is not None:
            data["wake_word"] = self.wake_word
        if self.stream_id is not None:
            data["stream_id"] = self.stream_id
        if self.play_id is not None:
            data["play_id"] = self.play_id
        if self.wake_probability is not None:
            data["wake_probability"] = self.wake_probability
        if self.speech_db is not None:
            data["speech_db"] = self.speech_db
        return data


@dataclass(frozen=True, slots=True)
class VocabularyState:
    """`<prefix>/bridge/vocabulary/state` (retained): the vocabulary in service, or why the last
    one offered was refused (`status` "error"; the counts then still describe the one in service)."""

    status: Literal["ok", "error"]
    hash: str | None = None
    error: str | None = None
    entities: int = 0
    areas: int = 0
    floors: int = 0
    sentences: int = 0
    compile_seconds: float = 0.0
    grammar: JsonObject = field(default_factory=dict)  #: the compiled grammar's size figures

    def to_json(self) -> JsonObject:
        return {"status": self.status, "hash": self.hash, "error": self.error, "entities": self.entities,
                "areas": self.areas, "floors": self.floors, "sentences": self.sentences,
                "compile_seconds": round(self.compile_seconds, 3), "grammar": self.grammar}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        return cls(status="ok" if data.get("status") == "ok" else "error", hash=_str(data, "hash"),
                   error=_str(data, "error"), entities=_int(data, "entities") or 0, areas=_int(data, "areas") or 0,
                   floors=_int(data, "floors") or 0, sentences=_int(data, "sentences") or 0,
                   compile_seconds=_float(data, "compile_seconds"), grammar=_object(data, "grammar"))


@dataclass(frozen=True, slots=True)
class PipelineStart:
    """`<prefix>/satellite/<id>/pipeline/start`: a session's audio is about to be forwarded to
    Home Assistant's Assist pipeline, in frames of `stream_id` on `pipeline/audio`."""

    session_id: str
    wake_word: str | None
    stream_id: int

    def to_json(self) -> JsonObject:
        return {"session_id": self.session_id, "wake_word": self.wake_word, "stream_id": self.stream_id}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        stream_id = _int(data, "stream_id")
        if stream_id is None or not _str(data, "session_id"):
            raise ProtocolError("bad_pipeline_start", "pipeline/start needs a session_id and an integer stream_id")
        return cls(session_id=_str(data, "session_id") or "", wake_word=_str(data, "wake_word"), stream_id=stream_id)


# -- Home Assistant → bridge: per-satellite settings ----------------------------------------------

#: how soon the end of a command is heard (Home Assistant's "finished speaking detection")
SENSITIVITIES = ("relaxed", "default", "aggressive")
#: when the bridge asks back before acting: when unsure (and before sensitive actions), only
#: before sensitive or house-wide actions, or never
CONFIRM_MODES = ("unsure", "sensitive", "never")
_SETTING_KEYS = frozenset({"request_id", "wake_word", "sensitivity", "confirm"})


@dataclass(frozen=True, slots=True)
class SatelliteSettingsSet:
    """`<prefix>/satellite/<id>/settings/set`: a partial update of one satellite's settings.

    A key that is absent is left as it is; `"wake_word": null` goes back to the satellite's own
    (or the configured, or the bridge's default) wake word. Anything else is refused with a code:
    `bad_setting` (an unknown key), `unknown_wake_word`, `bad_sensitivity`, `bad_confirm`.
    """

    request_id: Json = None
    wake_word: str | None = None
    clear_wake_word: bool = False
    sensitivity: str | None = None
    confirm: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        unknown = sorted(set(data) - _SETTING_KEYS)
        if unknown:
            raise ProtocolError("bad_setting", f"unknown satellite setting(s): {', '.join(unknown)[:200]}")
        wake_word = data.get("wake_word")
        if "wake_word" in data and wake_word is not None and wake_word not in WAKE_WORDS:
            raise ProtocolError("unknown_wake_word",
                                f"wake_word must be one of {', '.join(WAKE_WORDS)}, got {str(wake_word)[:64]!r}")
        sensitivity = data.get("sensitivity")
        if "sensitivity" in data and sensitivity not in SENSITIVITIES:
            raise ProtocolError("bad_sensitivity",
                                f"sensitivity must be one of {', '.join(SENSITIVITIES)}, got {str(sensitivity)[:64]!r}")
        confirm = data.get("confirm")
        if "confirm" in data and confirm not in CONFIRM_MODES:
            raise ProtocolError("bad_confirm",
                                f"confirm must be one of {', '.join(CONFIRM_MODES)}, got {str(confirm)[:64]!r}")
        return cls(request_id=data.get("request_id"),
                   wake_word=wake_word if isinstance(wake_word, str) else None,
                   clear_wake_word="wake_word" in data and wake_word is None,
                   sensitivity=sensitivity if isinstance(sensitivity, str) else None,
                   confirm=confirm if isinstance(confirm, str) else None)

    def to_json(self) -> JsonObject:
        data: JsonObject = {"request_id": self.request_id}
        if self.wake_word is not None or self.clear_wake_word:
            data["wake_word"] = self.wake_word
        if self.sensitivity is not None:
            data["sensitivity"] = self.sensitivity
        if self.confirm is not None:
            data["confirm"] = self.confirm
        return data


@dataclass(frozen=True, slots=True)
class SatelliteSettingsResult:
    """`<prefix>/satellite/<id>/settings/result`: the answer to one `settings/set`."""

    request_id: Json
    ok: bool
    code: str | None  #: why it was refused (None: it was not)
    error: str | None
    settings: JsonObject  #: the settings in force after the command

    def to_json(self) -> JsonObject:
        return {"request_id": self.request_id, "ok": self.ok, "code": self.code, "error": self.error,
                "settings": self.settings}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        return cls(request_id=data.get("request_id"), ok=data.get("ok") is True, code=_str(data, "code"),
                   error=_str(data, "error"), settings=_object(data, "settings"))
