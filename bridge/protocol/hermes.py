"""Hermes (Snips / Rhasspy 2.5) topics and payloads, so existing satellites work unchanged.

Pure: topic parsing, and every payload as a frozen dataclass with `to_json`/`from_json` (the
wire keys are Hermes' camelCase); `bridge.service.hermes` decides what to do with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

from .hearth import ProtocolError, finite_float, json_str

AUDIO_FRAME = "hermes/audioServer/+/audioFrame"
HOTWORD_DETECTED = "hermes/hotword/+/detected"
START_LISTENING = "hermes/asr/startListening"
STOP_LISTENING = "hermes/asr/stopListening"
NLU_QUERY = "hermes/nlu/query"
TTS_SAY = "hermes/tts/say"
END_SESSION = "hermes/dialogueManager/endSession"
PLAY_FINISHED = "hermes/audioServer/+/playFinished"
SUBSCRIPTIONS = (AUDIO_FRAME, HOTWORD_DETECTED, START_LISTENING, STOP_LISTENING, NLU_QUERY, TTS_SAY,
                 END_SESSION, PLAY_FINISHED)

TOGGLE_OFF = "hermes/hotword/toggleOff"
TOGGLE_ON = "hermes/hotword/toggleOn"
TEXT_CAPTURED = "hermes/asr/textCaptured"
ERROR_ASR = "hermes/error/asr"
ERROR_NLU = "hermes/error/nlu"
ERROR_TTS = "hermes/error/tts"
INTENT_PARSED = "hermes/nlu/intentParsed"
INTENT_NOT_RECOGNIZED = "hermes/nlu/intentNotRecognized"
SAY_FINISHED = "hermes/tts/sayFinished"


def site_from_audio_topic(topic: str) -> str | None:
    """`hermes/audioServer/<siteId>/audioFrame` → siteId."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == "hermes" and parts[1] == "audioServer" and parts[3] == "audioFrame":
        return parts[2]
    return None


def site_from_play_finished(topic: str) -> str | None:
    parts = topic.split("/")
    if len(parts) == 4 and parts[1] == "audioServer" and parts[3] == "playFinished":
        return parts[2]
    return None


def wakeword_from_detected(topic: str) -> str | None:
    parts = topic.split("/")
    if len(parts) == 4 and parts[1] == "hotword" and parts[3] == "detected":
        return parts[2]
    return None


def hotword_detected_topic(wakeword_id: str) -> str:
    return f"hermes/hotword/{wakeword_id}/detected"


def intent_topic(intent_name: str) -> str:
    return f"hermes/intent/{intent_name}"


def play_bytes_topic(site_id: str, request_id: str) -> str:
    return f"hermes/audioServer/{site_id}/playBytes/{request_id}"


def esp32_audio_topic(site_id: str) -> str:
    """The ESP32 Rhasspy satellite firmware's own control topic (mute_input)."""
    return f"{site_id}/audio"


_str = json_str


def _site(data: Mapping[str, object], topic: str) -> str:
    site = data.get("siteId", "default")
    if not isinstance(site, str):
        raise ProtocolError("invalid_json", f"{topic}: siteId must be a string")
    return site


# -- Hermes clients → bridge -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteRequest:
    """What every inbound Hermes request names: the site and, maybe, the dialogue session."""

    site_id: str
    session_id: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, object], topic: str) -> Self:
        return cls(site_id=_site(data, topic), session_id=_str(data, "sessionId"))

    def to_json(self) -> dict[str, object]:
        return {"siteId": self.site_id, "sessionId": self.session_id}


@dataclass(frozen=True, slots=True)
class StartListening:
    """`hermes/asr/startListening`: open a session on the site now."""

    site_id: str
    session_id: str | None = None
    lang: str | None = None
    wakeword_id: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        return cls(site_id=_site(data, START_LISTENING), session_id=_str(data, "sessionId"),
                   lang=_str(data, "lang"), wakeword_id=_str(data, "wakewordId"))

    def to_json(self) -> dict[str, object]:
        return {"siteId": self.site_id, "sessionId": self.session_id, "lang": self.lang,
                "wakewordId": self.wakeword_id, "stopOnSilence": True}


@dataclass(frozen=True, slots=True)
class NluQuery:
    """`hermes/nlu/query`: what does this text mean?"""

    site_id: str
    text: str
    request_id: str | None = None
    session_id: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        text = data.get("input")
        if not isinstance(text, str):
            raise ProtocolError("invalid_json", "hermes/nlu/query: 'input' must be a string")
        return cls(site_id=_site(data, NLU_QUERY), text=text, request_id=_str(data, "id"),
                   session_id=_str(data, "sessionId"))

    def to_json(self) -> dict[str, object]:
        return {"input": self.text, "siteId": self.site_id, "id": self.request_id, "sessionId": self.session_id}


# -- bridge → Hermes clients -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Toggle:
    """`hermes/hotword/toggleOff` / `toggleOn` (the ESP32 firmware listens, or idles, on these)."""

    site_id: str
    reason: str = "dialogueSession"

    def to_json(self) -> dict[str, object]:
        return {"siteId": self.site_id, "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        return cls(site_id=_site(data, "toggle"), reason=_str(data, "reason") or "")


@dataclass(frozen=True, slots=True)
class HotwordDetected:
    """`hermes/hotword/<wakewordId>/detected`: the bridge heard the wake word on the site."""

    site_id: str
    model_id: str
    session_id: str | None
    sensitivity: float = 0.5

    def to_json(self) -> dict[str, object]:
        return {
            "modelId": self.model_id, "modelVersion": "", "modelType": "personal",
            "currentSensitivity": self.sensitivity, "siteId": self.site_id, "sessionId": self.session_id,
            "sendAudioCaptured": None, "lang": None, "customEntities": None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        sensitivity = data.get("currentSensitivity")
        return cls(site_id=_site(data, HOTWORD_DETECTED), model_id=_str(data, "modelId") or "",
                   session_id=_str(data, "sessionId"),
                   sensitivity=finite_float(sensitivity, 0.5))


@dataclass(frozen=True, slots=True)
class TextCaptured:
    """`hermes/asr/textCaptured`."""

    site_id: str
    session_id: str | None
    text: str
    likelihood: float
    seconds: float
    wakeword_id: str | None
    lang: str | None = "en"

    def to_json(self) -> dict[str, object]:
        return {
            "text": self.text, "likelihood": self.likelihood, "seconds": self.seconds, "siteId": self.site_id,
            "sessionId": self.session_id, "wakewordId": self.wakeword_id, "lang": self.lang,
            "asrTokens": [[{"value": word, "confidence": self.likelihood, "rangeStart": 0, "rangeEnd": 0}
                           for word in self.text.split()]] if self.text else [],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        likelihood, seconds = data.get("likelihood"), data.get("seconds")
        return cls(site_id=_site(data, TEXT_CAPTURED), session_id=_str(data, "sessionId"),
                   text=_str(data, "text") or "",
                   likelihood=finite_float(likelihood, 0.0),
                   seconds=finite_float(seconds, 0.0),
                   wakeword_id=_str(data, "wakewordId"), lang=_str(data, "lang"))


@dataclass(frozen=True, slots=True)
class HermesError:
    """`hermes/error/asr`, `hermes/error/nlu`: ends the dialogue session it names."""

    site_id: str
    session_id: str | None
    error: str
    context: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"error": self.error, "siteId": self.site_id, "context": self.context, "sessionId": self.session_id}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        return cls(site_id=_site(data, "error"), session_id=_str(data, "sessionId"),
                   error=_str(data, "error") or "", context=_str(data, "context"))


@dataclass(frozen=True, slots=True)
class Slot:
    """One slot of a parsed intent (`entity` is the Home Assistant entity id when known)."""

    name: str
    value: object
    raw: str
    entity: str

    def to_json(self) -> dict[str, object]:
        return {"entity": self.entity, "slotName": self.name, "rawValue": self.raw,
                "value": {"kind": "Unknown", "value": self.value}, "confidence": 1.0, "range": None}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        value = data.get("value")
        return cls(name=_str(data, "slotName") or "", value=value.get("value") if isinstance(value, dict) else None,
                   raw=_str(data, "rawValue") or "", entity=_str(data, "entity") or "")


@dataclass(frozen=True, slots=True)
class IntentParsed:
    """`hermes/nlu/intentParsed` and `hermes/intent/<intentName>`."""

    site_id: str
    session_id: str | None
    request_id: str | None
    text: str
    intent_name: str
    confidence: float
    slots: tuple[Slot, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "input": self.text, "id": self.request_id, "siteId": self.site_id, "sessionId": self.session_id,
            "intent": {"intentName": self.intent_name, "confidenceScore": self.confidence},
            "slots": [slot.to_json() for slot in self.slots], "asrTokens": [], "asrConfidence": None,
            "rawInput": self.text, "wakewordId": None, "lang": "en", "customData": None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        intent = data.get("intent")
        if not isinstance(intent, dict) or not isinstance(intent.get("intentName"), str):
            raise ProtocolError("invalid_json", "intentParsed: 'intent.intentName' must be a string")
        confidence = intent.get("confidenceScore")
        slots = data.get("slots")
        return cls(site_id=_site(data, INTENT_PARSED), session_id=_str(data, "sessionId"),
                   request_id=_str(data, "id"), text=_str(data, "input") or "", intent_name=intent["intentName"],
                   confidence=finite_float(confidence, 0.0),
                   slots=tuple(Slot.from_json(s) for s in slots if isinstance(s, dict)) if isinstance(slots, list) else ())


@dataclass(frozen=True, slots=True)
class IntentNotRecognized:
    """`hermes/nlu/intentNotRecognized`."""

    site_id: str
    session_id: str | None
    request_id: str | None
    text: str

    def to_json(self) -> dict[str, object]:
        return {"input": self.text, "id": self.request_id, "siteId": self.site_id, "sessionId": self.session_id,
                "customData": None, "lang": "en"}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        return cls(site_id=_site(data, INTENT_NOT_RECOGNIZED), session_id=_str(data, "sessionId"),
                   request_id=_str(data, "id"), text=_str(data, "input") or "")


@dataclass(frozen=True, slots=True)
class PlayFinished:
    """`hermes/audioServer/<siteId>/playFinished` (from a satellite) or `hermes/tts/sayFinished`."""

    site_id: str
    request_id: object  #: whatever id the request carried, echoed back unchanged
    session_id: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"id": self.request_id, "siteId": self.site_id, "sessionId": self.session_id}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        return cls(site_id=_site(data, PLAY_FINISHED), request_id=data.get("id"), session_id=_str(data, "sessionId"))


@dataclass(frozen=True, slots=True)
class Esp32Mute:
    """`<siteId>/audio` for the ESP32 Rhasspy satellite firmware: its microphone on or off."""

    muted: bool

    def to_json(self) -> dict[str, object]:
        return {"mute_input": "true" if self.muted else "false"}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        return cls(muted=data.get("mute_input") == "true")
