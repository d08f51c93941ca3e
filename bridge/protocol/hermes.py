"""Hermes (Snips / Rhasspy 2.5) topics and payloads, so existing satellites work unchanged.

Pure: topic parsing and payload builders only; `bridge.service.hermes` decides what to do.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def toggle(site_id: str, reason: str = "dialogueSession") -> dict[str, object]:
    return {"siteId": site_id, "reason": reason}


def hotword_detected(site_id: str, model_id: str, session_id: str | None, sensitivity: float = 0.5) -> dict[str, object]:
    return {
        "modelId": model_id, "modelVersion": "", "modelType": "personal",
        "currentSensitivity": sensitivity, "siteId": site_id, "sessionId": session_id,
        "sendAudioCaptured": None, "lang": None, "customEntities": None,
    }


def text_captured(site_id: str, session_id: str | None, text: str, likelihood: float, seconds: float,
                  wakeword_id: str | None, lang: str | None = "en") -> dict[str, object]:
    return {
        "text": text, "likelihood": likelihood, "seconds": seconds, "siteId": site_id,
        "sessionId": session_id, "wakewordId": wakeword_id, "lang": lang,
        "asrTokens": [[{"value": word, "confidence": likelihood, "rangeStart": 0, "rangeEnd": 0}
                       for word in text.split()]] if text else [],
    }


def error(site_id: str, session_id: str | None, message: str, context: str | None = None) -> dict[str, object]:
    return {"error": message, "siteId": site_id, "context": context, "sessionId": session_id}


def _slot(name: str, value: object, raw: str, entity: str) -> dict[str, object]:
    return {
        "entity": entity, "slotName": name, "rawValue": raw,
        "value": {"kind": "Unknown", "value": value}, "confidence": 1.0,
        "range": None,
    }


def intent_parsed(site_id: str, session_id: str | None, request_id: str | None, text: str,
                  intent_name: str, confidence: float, slots: Sequence[tuple[str, object, str, str]]) -> dict[str, object]:
    """slots: (slotName, value, rawValue, entity)."""
    return {
        "input": text, "id": request_id, "siteId": site_id, "sessionId": session_id,
        "intent": {"intentName": intent_name, "confidenceScore": confidence},
        "slots": [_slot(*slot) for slot in slots], "asrTokens": [], "asrConfidence": None,
        "rawInput": text, "wakewordId": None, "lang": "en", "customData": None,
    }


def intent_not_recognized(site_id: str, session_id: str | None, request_id: str | None, text: str) -> dict[str, object]:
    return {"input": text, "id": request_id, "siteId": site_id, "sessionId": session_id,
            "customData": None, "lang": "en"}


def play_finished(site_id: str, request_id: str, session_id: str | None) -> dict[str, object]:
    return {"id": request_id, "siteId": site_id, "sessionId": session_id}
