"""The decoder worker's messages (bridge.stt.messages) and the intent as the bridge publishes it:
every message survives its frame, and anything that is not a message says so clearly."""

from __future__ import annotations

import io
import pickle

import pytest

from bridge.engines import IntentResult, SlotValue
from bridge.recognition import CompiledGrammar, IntentRecognizer
from bridge.recognition.verdict import Outcome, Verdict, VerdictSettings
from bridge.resources import load_demo_vocabulary
from bridge.stt import messages as m

VOCAB = load_demo_vocabulary()
GRAMMAR = CompiledGrammar(hash="abc123", language="en", fsg="FSG_BEGIN x\nFSG_END\n",
                          dictionary={"on": ("AA", "N")}, stats={"words": 1})
INTENT = IntentResult("HassTurnOn", 1.0, sensitive=False, broad=True, slots=(
    SlotValue("area", "Bedroom", "bedroom", ("light.bedroom",)),
    SlotValue("brightness", 40, "40 percent"),
))

SAMPLES: list[m.Message] = [
    m.LoadGrammar(VOCAB, GRAMMAR),
    m.StartUtterance("sess#1"),
    m.Prime("sess#1", b"\x00\x01" * 160),
    m.Audio("sess#1", b"\x7f\xff" * 480),
    m.EndUtterance("sess#1", "bedroom"),
    m.EndUtterance("sess#1"),
    m.EndUtterance("sess#1", None, VerdictSettings(broad_min=0.7)),
    m.CancelUtterance("sess#1"),
    m.RecognizeIntent("intent-3", "turn on the lights", "bedroom"),
    m.RecognizeIntent("intent-4", "what time is it", None),
    m.Exit(),
    m.Compile(VOCAB),
    m.Ready(4242),
    m.GrammarLoaded("abc123", 0.25),
    m.Partial("sess#1", True),
    m.UtteranceResult("sess#1", "turn on the lights", 0.91, False, 1.6, 0.12, INTENT, 0.004, None),
    m.UtteranceResult("sess#1", "", 0.1, True, 0.8, 0.05),
    m.UtteranceResult("sess#1", "unlock the front door", 0.9, False, 1.2, 0.1, INTENT, 0.01, None,
                      Verdict(Outcome.ASK, "sensitive", "confirmed first", (INTENT.to_json(),), "confirm"), 0.2),
    m.UtteranceResult("sess#1", "open the garage", 0.7, False, 1.2, 0.1, None, 0.0, "KeyError: 'x'"),
    m.IntentRecognized("intent-3", INTENT, 0.003),
    m.IntentRecognized("intent-4", None, 0.001),
    m.Failed("sess#1", "no grammar loaded"),
    m.Failed(None, "ValueError: bad grammar"),
    m.Compiled(GRAMMAR, 1.5),
]


def test_every_message_type_has_a_sample() -> None:
    assert {type(s) for s in SAMPLES} == set(m.TO_WORKER) | set(m.FROM_WORKER)
    kinds = [cls.KIND for cls in m.TO_WORKER], [cls.KIND for cls in m.FROM_WORKER]
    assert all(len(set(k)) == len(k) for k in kinds)  # a kind names one message per direction


@pytest.mark.parametrize("message", SAMPLES, ids=lambda s: f"{type(s).__name__}")
def test_round_trip(message: m.Message) -> None:
    frame = m.encode(message)
    size = m.frame_size(frame[: m.HEADER.size])
    assert size == len(frame) - m.HEADER.size
    decode = m.decode_to_worker if isinstance(message, m.TO_WORKER) else m.decode_from_worker
    back = decode(frame[m.HEADER.size :])
    assert type(back) is type(message)
    assert back == message


def test_stream_helpers_read_what_they_wrote() -> None:
    pipe = io.BytesIO()
    for message in SAMPLES[:5]:
        m.write_message(pipe, message)
    pipe.seek(0)
    assert [m.decode_to_worker(m.read_body(pipe)) for _ in range(5)] == SAMPLES[:5]
    with pytest.raises(EOFError):
        m.read_body(pipe)
    cut = io.BytesIO(m.encode(m.Audio("u", b"\x00" * 100))[:-10])
    with pytest.raises(EOFError):
        m.read_body(cut)


def _body(*values: object) -> bytes:
    return pickle.dumps(values)


@pytest.mark.parametrize(("body", "error"), [
    (b"\x00garbage", "unreadable frame"),
    (b"", "unreadable frame"),
    (pickle.dumps(["audio", "u", b""]), "not a (kind, fields...) tuple"),
    (pickle.dumps(()), "not a (kind, fields...) tuple"),
    (_body(7, "u"), "not a (kind, fields...) tuple"),
    (_body("shout", "u"), "unknown message kind 'shout'"),
    (_body("ready"), "'ready' message with 0 fields, expected 1"),
    (_body("result", "u", "text"), "'result' message with 2 fields, expected 11"),
    (_body("partial", "u", "yes"), "'partial' message: complete is str, expected bool"),
    (_body("ready", True), "'ready' message: pid is bool, expected int"),
    (_body("grammar_ok", "h", "fast"), "'grammar_ok' message: seconds is str, expected float | int"),
    (_body("intent_result", "i", {"name": "HassTurnOn"}, 0.0),
     "'intent_result' message: intent is dict, expected IntentResult | NoneType"),
    (_body("compiled", "not a grammar", 1.0), "'compiled' message: grammar is str, expected CompiledGrammar"),
    (_body("audio", "u", b""), "unknown message kind 'audio' from the worker"),  # wrong direction
])
def test_malformed_from_the_worker(body: bytes, error: str) -> None:
    with pytest.raises(m.MessageError) as caught:
        m.decode_from_worker(body)
    assert error in str(caught.value)


@pytest.mark.parametrize(("body", "error"), [
    (_body("audio", "u", "not bytes"), "'audio' message: pcm is str, expected bytes"),
    (_body("end", "u", 5, None), "'end' message: area is int, expected str | NoneType"),
    (_body("grammar", VOCAB, "g"), "'grammar' message: grammar is str, expected CompiledGrammar"),
    (_body("result", "u", "t", 1.0, False, 1.0, 1.0, None, 0.0, None), "unknown message kind 'result' to the worker"),
])
def test_malformed_to_the_worker(body: bytes, error: str) -> None:
    with pytest.raises(m.MessageError) as caught:
        m.decode_to_worker(body)
    assert error in str(caught.value)


def test_frame_size_refuses_what_cannot_be_a_frame() -> None:
    with pytest.raises(m.MessageError, match="at most"):
        m.frame_size(m.HEADER.pack(m.MAX_FRAME + 1))
    with pytest.raises(m.MessageError, match="frame header of 2 bytes"):
        m.frame_size(b"\x00\x00")
    with pytest.raises(m.MessageError, match="at most"):
        m.read_body(io.BytesIO(b"\xff\xff\xff\xff"))


def test_encode_refuses_what_the_other_side_would_refuse() -> None:
    with pytest.raises(TypeError, match="pcm is str"):
        m.encode(m.Audio("u", "not bytes"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a worker message"):
        m.encode(("audio", "u", b""))  # type: ignore[arg-type]


# -- the intent ------------------------------------------------------------------------------------


def _old_intent_dict(match: object) -> dict[str, object]:
    """The dict the worker built before messages were typed (its `_intent_to_dict`)."""
    return {
        "name": match.name,  # type: ignore[attr-defined]
        "confidence": match.confidence,  # type: ignore[attr-defined]
        "sensitive": bool(getattr(match, "sensitive", False)),
        "broad": bool(getattr(match, "broad", False)),
        "slots": {
            name: {"value": slot.value, "text": slot.text, "entity_ids": list(slot.entity_ids)}
            for name, slot in match.slots.items()  # type: ignore[attr-defined]
        },
    }


@pytest.mark.parametrize(("text", "area"), [
    ("turn on the lights", "bedroom"),
    ("set the kitchen light to 40 percent", None),
    ("unlock the front door", None),
    ("what time is it", None),
])
def test_intent_json_is_the_published_shape(text: str, area: str | None) -> None:
    from bridge.stt.worker import intent_result

    match = IntentRecognizer(VOCAB).recognize(text, area_id=area)
    assert match is not None, text
    intent = intent_result(match)
    assert intent is not None
    assert intent.to_json() == _old_intent_dict(match)
    assert IntentResult.from_json(intent.to_json()) == intent
    assert intent_result(None) is None


def test_intent_json_round_trip_and_refusals() -> None:
    data = INTENT.to_json()
    assert data == {"name": "HassTurnOn", "confidence": 1.0, "sensitive": False, "broad": True, "slots": {
        "area": {"value": "Bedroom", "text": "bedroom", "entity_ids": ["light.bedroom"]},
        "brightness": {"value": 40, "text": "40 percent", "entity_ids": []},
    }}
    assert IntentResult.from_json(data) == INTENT
    for broken, error in (
        ({**data, "name": 5}, "'name' must be str"),
        ({**data, "confidence": "high"}, "'confidence' must be a number"),
        ({**data, "sensitive": "no"}, "'sensitive' must be bool"),
        ({**data, "slots": []}, "'slots' must be an object"),
        ({**data, "slots": {"area": {"value": 1, "text": "x", "entity_ids": "light.a"}}}, "must be a list of strings"),
        ({**data, "slots": {"area": {"value": 1}}}, "'text' must be str"),
    ):
        with pytest.raises(ValueError, match=error):
            IntentResult.from_json(broken)
