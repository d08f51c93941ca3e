"""Property-based fuzzing of every payload parser on its own: arbitrary input in, the parsed
value or the parser's documented error type out — never anything else.

Parsers: Hearth's wire messages and Hermes payloads (`from_json` → ProtocolError), the audio
frame and the JSON object reader (`decode_frame`, `parse_json_object` → ProtocolError), WAV
parsing (`wav_to_pcm16k` → WavError), the policy (`Policy.apply`, `Policy.from_json` →
PolicyError) and the vocabulary (`parse_vocabulary` → VocabularyError; what it accepts can be
hashed, as the bridge does next). The families of input that broke a parser when the fuzzer was
written (issue 15) keep a property each, starting from the minimal example that broke it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping

from hypothesis import example, given
from hypothesis import strategies as st

from bridge.audio.wav import WavError, wav_to_pcm16k
from bridge.privacy.policy import Policy, PolicyError
from bridge.protocol import hermes
from bridge.protocol import messages as wire
from bridge.protocol.hearth import AudioFrame, ProtocolError, decode_frame, encode_frame, parse_json_object
from bridge.recognition import Vocabulary, VocabularyError, parse_vocabulary
from tests.support.fuzz import (
    ALL_FAMILIES,
    NORMAL,
    budget,
    deep_json,
    encoded,
    hearth_frames,
    json_objects,
    json_values,
    junk,
    long_digits,
    numbers,
    shaped,
    texts,
    wavs,
)

HEARTH_MESSAGES: tuple[type, ...] = (
    wire.BridgeStatus, wire.BridgeError, wire.SatelliteState, wire.WakeMessage, wire.TranscriptMessage,
    wire.IntentMessage, wire.SatelliteError, wire.Command, wire.PolicyResult, wire.SatelliteStatus,
    wire.SatelliteEvent, wire.VocabularyState, wire.PipelineStart)
HERMES_MESSAGES: tuple[type, ...] = (
    hermes.StartListening, hermes.NluQuery, hermes.Toggle, hermes.HotwordDetected, hermes.TextCaptured,
    hermes.HermesError, hermes.Slot, hermes.IntentParsed, hermes.IntentNotRecognized, hermes.PlayFinished,
    hermes.Esp32Mute)
#: every field name the wire messages read, so objects hit real fields with wrong values
FIELDS = ("state", "bridge_id", "protocol", "version", "prefix", "engines", "status_api", "wyoming_port", "code",
          "message", "topic", "satellite", "session_id", "muted", "online", "last", "wake_word", "source", "text",
          "rejected", "confidence", "audio_seconds", "latency_ms", "engine", "locality", "private", "timings",
          "cpu_seconds", "intent", "fatal", "command", "request_id", "ok", "error", "policy", "purged", "saved",
          "capabilities", "play_rate", "area", "type", "stream_id", "play_id", "status", "hash", "entities",
          "areas", "floors", "sentences", "compile_seconds", "grammar", "siteId", "sessionId", "lang", "wakewordId",
          "input", "id", "reason", "modelId", "currentSensitivity", "likelihood", "seconds", "context",
          "slotName", "rawValue", "value", "entity", "slots", "mute_input")


def wire_objects(families: frozenset[str]) -> st.SearchStrategy[dict[str, object]]:
    anything = json_values(families, max_leaves=8)
    nested = st.one_of(shaped({"intentName": texts(families), "confidenceScore": anything}, families),
                       shaped({"value": anything, "wake_word": st.booleans()}, families), anything)
    values = st.one_of(numbers(families), numbers(families), texts(families), anything, nested)
    real_fields = st.dictionaries(st.sampled_from(FIELDS), values, max_size=12)
    return st.one_of(json_objects(families), real_fields, real_fields)


def from_json(cls: type, data: Mapping[str, object]) -> object:
    if cls is hermes.SiteRequest:
        return hermes.SiteRequest.from_json(data, "hermes/asr/stopListening")
    parse: Callable[[Mapping[str, object]], object] = getattr(cls, "from_json")
    return parse(data)


def only(error: type[BaseException], call: Callable[[], object]) -> object | None:
    """The call's result, or None when it raised `error` (anything else fails the property)."""
    try:
        return call()
    except error:
        return None


# -- Hearth and Hermes wire messages -----------------------------------------------------------


def check_wire(cls: type, data: dict[str, object]) -> None:
    parsed = only(ProtocolError, lambda: from_json(cls, data))
    if parsed is not None and hasattr(parsed, "to_json"):
        json.dumps(parsed.to_json())  # what was accepted can be written back


@given(st.sampled_from(HEARTH_MESSAGES + HERMES_MESSAGES + (hermes.SiteRequest,)),
       wire_objects(frozenset({"surrogate", "nonfinite"})))
@budget(500)
def test_wire_messages_parse_or_raise_protocol_error(cls: type, data: dict[str, object]) -> None:
    check_wire(cls, data)


@given(st.sampled_from(HEARTH_MESSAGES + HERMES_MESSAGES), wire_objects(frozenset({"huge"})))
@example(wire.TranscriptMessage, {"confidence": 10**400})
@example(hermes.TextCaptured, {"likelihood": 10**400})
@budget(300, shrink=False)
def test_wire_messages_with_huge_numbers(cls: type, data: dict[str, object]) -> None:
    check_wire(cls, data)


# -- the audio frame and the JSON object reader ---------------------------------------------------


@given(st.one_of(hearth_frames(), st.binary(max_size=9000)))
@budget(400)
def test_audio_frames_decode_or_raise_protocol_error(payload: bytes) -> None:
    frame = only(ProtocolError, lambda: decode_frame(payload))
    if isinstance(frame, AudioFrame):
        assert len(frame.pcm) % 2 == 0 and len(frame.pcm) <= 8000
        assert decode_frame(encode_frame(frame.stream_id, frame.seq, frame.pcm, frame.last)) == frame


def check_json_object(payload: bytes) -> None:
    data = only(ProtocolError, lambda: parse_json_object(payload, "fuzz"))
    assert data is None or isinstance(data, dict)


@given(st.one_of(junk(NORMAL), encoded(json_values(frozenset({"surrogate"}))), encoded(json_objects(NORMAL))))
@budget(400)
def test_json_objects_parse_or_raise_protocol_error(payload: bytes) -> None:
    check_json_object(payload)


@given(deep_json())
@example(b"[" * 100_000 + b"]" * 100_000)
@budget(30, shrink=False)
def test_deeply_nested_json_is_refused_as_protocol_error(payload: bytes) -> None:
    check_json_object(payload)


@given(long_digits())
@example(b'{"duration": ' + b"9" * 4301 + b"}")
@budget(30, shrink=False)
def test_integers_beyond_4300_digits_are_refused_as_protocol_error(payload: bytes) -> None:
    check_json_object(payload)


# -- WAV ------------------------------------------------------------------------------------------


@given(st.one_of(wavs(), st.binary(max_size=200), st.binary(min_size=12, max_size=80).map(lambda b: b"RIFF" + b[4:8] + b"WAVE" + b)))
@budget(500)
def test_wav_converts_or_raises_wav_error(payload: bytes) -> None:
    pcm = only(WavError, lambda: wav_to_pcm16k(payload))
    assert pcm is None or (isinstance(pcm, bytes) and len(pcm) % 2 == 0)


# -- the policy -----------------------------------------------------------------------------------

def policy_commands(families: frozenset[str]) -> st.SearchStrategy[object]:
    anything = json_values(families, max_leaves=8)
    mic = shaped({"muted": st.booleans(), "duration": st.one_of(st.floats(), st.integers(-10, 10**8),
                                                                numbers(families), anything)}, families)
    mics = st.dictionaries(st.one_of(st.sampled_from(["kitchen", "porch", "bad id", "a" * 65]), texts(families)),
                           st.one_of(mic, anything), max_size=4)
    command = shaped({"request_id": anything, "local_only": st.booleans(), "privacy_mode": st.booleans(),
                      "retention": st.sampled_from(["none", "memory", "disk"]), "publish_transcripts": st.booleans(),
                      "microphones": st.one_of(mics, anything)}, families)
    return st.one_of(valid_policy_commands(families), command, command, anything)


def valid_policy_commands(families: frozenset[str]) -> st.SearchStrategy[dict[str, object]]:
    """Commands that are right but for the numbers (and the request id, which is anything)."""
    mute = st.one_of(st.just({"muted": False}), st.fixed_dictionaries(
        {"muted": st.just(True)}, optional={"duration": st.one_of(numbers(families), st.floats())}))
    return st.fixed_dictionaries({}, optional={
        "request_id": json_values(families, max_leaves=4), "local_only": st.booleans(), "privacy_mode": st.booleans(),
        "retention": st.sampled_from(["none", "memory"]), "publish_transcripts": st.booleans(),
        "microphones": st.dictionaries(st.sampled_from(["kitchen", "porch", "s1"]), mute, min_size=1, max_size=3)})


def check_policy_command(command: object) -> None:
    before = Policy().apply({"microphones": {"porch": {"muted": True, "duration": 30}}}, 1000.0)
    after = only(PolicyError, lambda: before.apply(command, 1010.0))
    if isinstance(after, Policy):
        assert after.revision == before.revision + 1
        state = after.to_json()
        json.dumps(state, allow_nan=False)  # policy/state is strict JSON
        assert Policy.from_json(json.loads(json.dumps(state))) == after  # what is saved loads back


@given(policy_commands(frozenset({"surrogate"})))
@budget(600)
def test_policy_commands_apply_or_raise_policy_error(command: object) -> None:
    check_policy_command(command)


@given(policy_commands(ALL_FAMILIES))
@example({"microphones": {"kitchen": {"muted": True, "duration": 10**400}}})
@budget(200, shrink=False)
def test_policy_commands_with_huge_numbers(command: object) -> None:
    check_policy_command(command)


def stored_policies(families: frozenset[str]) -> st.SearchStrategy[object]:
    anything = json_values(families, max_leaves=6)
    entry = st.one_of(
        st.fixed_dictionaries({"muted": st.booleans(), "until": st.one_of(st.none(), st.floats(), numbers(families))}),
        shaped({"muted": st.booleans(), "until": st.one_of(st.none(), st.floats(), anything)}, families))
    valid = st.fixed_dictionaries({
        "local_only": st.booleans(), "privacy_mode": st.booleans(), "retention": st.sampled_from(["none", "memory"]),
        "publish_transcripts": st.booleans(), "revision": st.integers(0, 10**6),
        "microphones": st.dictionaries(st.sampled_from(["kitchen", "porch"]), entry, max_size=3)})
    return st.one_of(valid, shaped({
        "local_only": st.booleans(), "privacy_mode": st.booleans(), "retention": st.sampled_from(["none", "memory"]),
        "publish_transcripts": st.booleans(), "revision": st.one_of(st.integers(-1, 10**6), anything),
        "microphones": st.dictionaries(st.one_of(st.sampled_from(["kitchen", "x y"]), texts(families)),
                                       st.one_of(entry, anything), max_size=3)}, families))


def check_stored_policy(data: object) -> None:
    policy = only(PolicyError, lambda: Policy.from_json(data))
    if isinstance(policy, Policy):
        assert all(m.until is None or math.isfinite(m.until) for m in policy.microphones.values())


@given(stored_policies(frozenset({"surrogate"})))
@budget(400)
def test_stored_policies_load_or_raise_policy_error(data: object) -> None:
    check_stored_policy(data)


@given(stored_policies(ALL_FAMILIES))
@example({"local_only": True, "privacy_mode": False, "retention": "none", "publish_transcripts": True,
          "microphones": {"kitchen": {"muted": True, "until": 10**400}}, "revision": 1})
@budget(200, shrink=False)
def test_stored_policies_with_huge_numbers(data: object) -> None:
    check_stored_policy(data)


# -- the vocabulary ------------------------------------------------------------------------------


def vocabularies(families: frozenset[str]) -> st.SearchStrategy[object]:
    txt = texts(families)
    anything = json_values(families, max_leaves=6)
    item = {"id": txt, "name": txt, "aliases": st.one_of(st.lists(txt, max_size=3), anything)}
    floors = st.lists(shaped(item, families), max_size=2)
    areas = st.lists(shaped({**item, "floor": st.one_of(st.none(), txt)}, families), max_size=3)
    entities = st.lists(shaped({**item, "domain": st.sampled_from(["light", "switch", "x y", "lock"]),
                                "area": st.one_of(st.none(), txt), "device_class": txt}, families), max_size=3)
    valid = st.builds(
        lambda name, area: {"language": "en", "areas": [{"id": "kitchen", "name": area}],
                            "entities": [{"id": "light.k", "name": name, "area": "kitchen"}]}, txt, txt)
    shaped_vocab = shaped({"language": st.sampled_from(["en", "en-GB", "de", ""]), "floors": floors, "areas": areas,
                           "entities": entities, "sentences": st.lists(txt, max_size=2), "polite": st.booleans()},
                          families)
    return st.one_of(valid, shaped_vocab, anything)


def check_vocabulary(data: object) -> None:
    vocab = only(VocabularyError, lambda: parse_vocabulary(data))
    if isinstance(vocab, Vocabulary):
        assert len(vocab.hash()) == 16  # the bridge hashes every vocabulary it accepts


@given(vocabularies(frozenset({"huge"})))
@budget(500)
def test_vocabularies_parse_or_raise_vocabulary_error(data: object) -> None:
    check_vocabulary(data)


@given(vocabularies(ALL_FAMILIES))
@example({"language": "en", "areas": [{"id": "kitchen", "name": "kitchen\udc80"}], "entities": []})
@budget(200, shrink=False)
def test_vocabularies_with_surrogates(data: object) -> None:
    check_vocabulary(data)
