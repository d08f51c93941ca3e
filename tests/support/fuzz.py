"""Hostile input for the property-based fuzz tests (hypothesis strategies and settings profiles).

Topics are the ones the bridge subscribes to (Hearth satellite topics with every leaf, the
policy, vocabulary and purge commands, every `hermes/...` subscription); payloads are arbitrary
bytes, JSON of any shape, and payloads shaped like each topic's real messages with wrong types
mixed in. Hostile *families* can be switched on one by one, so a property can be checked with
and without inputs that are known to break it:

- ``deep``: deeply nested JSON (recursion limits),
- ``huge``: integers far beyond a float,
- ``digits``: JSON integers beyond Python's 4300-digit limit for converting text to int,
- ``surrogate``: lone UTF-16 surrogates in strings (valid JSON escapes, not encodable as UTF-8),
- ``nonfinite``: NaN and ±Infinity as values (Python's JSON reader accepts them; strict JSON has none).

Profiles: ``hearth`` (the default run: derandomized, so CI sees the same examples every time)
and ``hearth-long`` (random, ``HEARTH_FUZZ_EXAMPLES`` examples per property). Neither writes a
hypothesis database into the repository.
"""

from __future__ import annotations

import functools
import json
import math
import os
import struct
from collections.abc import Callable

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from bridge.protocol import hermes
from bridge.protocol.hearth import BRIDGE_OUTBOUND, FRAME_HEADER, WAKE_WORDS

# -- settings profiles -------------------------------------------------------------------------

LONG_EXAMPLES = int(os.environ.get("HEARTH_FUZZ_EXAMPLES", "0") or 0)
_COMMON = {"database": None, "deadline": None, "print_blob": True,
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much]}
settings.register_profile("hearth", derandomize=True, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("hearth-long", derandomize=False, max_examples=max(LONG_EXAMPLES, 1),  # type: ignore[arg-type]
                          **_COMMON)
settings.load_profile("hearth-long" if LONG_EXAMPLES else "hearth")


def budget(examples: int, *, shrink: bool = True) -> settings:
    """`examples` in the default run; HEARTH_FUZZ_EXAMPLES each when it is set. `shrink=False`
    for the families whose minimal example is given explicitly with `@example`: shrinking their
    huge inputs would only cost time."""
    if LONG_EXAMPLES:
        return settings(max_examples=LONG_EXAMPLES)
    phases = tuple(Phase) if shrink else (Phase.explicit, Phase.reuse, Phase.generate)
    return settings(max_examples=examples, phases=phases)


# -- JSON values ---------------------------------------------------------------------------------

NORMAL: frozenset[str] = frozenset()
ALL_FAMILIES = frozenset({"deep", "huge", "digits", "surrogate", "nonfinite"})
SURROGATES = ("\ud800", "\udfff", "kitchen\udc80", "\ud83d light")
WORDS = ("", " ", "kitchen", "porch", "living.room", "okay_nabu", "hey_jarvis", "online", "offline", "en",
         "light.kitchen", "turn on the kitchen light", "none", "memory", "assist", "hearth", "\u00e9t\u00e9",
         "\U0001f600", "\x00", "a" * 65, "x" * 300, "null", "{}", "\n", "../..", "hermes/tts/say")


def texts(families: frozenset[str]) -> st.SearchStrategy[str]:
    plain = st.one_of(st.sampled_from(WORDS), st.text(max_size=24))
    if "surrogate" in families:
        return st.one_of(plain, st.sampled_from(SURROGATES),
                         st.builds(lambda a, s: a + s, st.text(max_size=8), st.sampled_from(SURROGATES)))
    return plain


def numbers(families: frozenset[str]) -> st.SearchStrategy[object]:
    ordinary: st.SearchStrategy[object] = st.one_of(
        st.integers(min_value=-(2**63), max_value=2**64), st.sampled_from([0, 1, -1, 8000, 16000, 48000, 2**31, 2**32]),
        st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0.5, 1e308, -1e-308, 5e-324]))
    if "nonfinite" in families:
        ordinary = st.one_of(ordinary, st.sampled_from([math.nan, math.inf, -math.inf]))
    if "huge" in families:
        huge = st.builds(lambda digits, sign: sign * 10**digits, st.integers(20, 4000), st.sampled_from([1, -1]))
        return st.one_of(ordinary, huge)
    return ordinary


def json_values(families: frozenset[str] = NORMAL, max_leaves: int = 12) -> st.SearchStrategy[object]:
    leaves = st.one_of(st.none(), st.booleans(), numbers(families), texts(families))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(texts(families), inner, max_size=4)), max_leaves=max_leaves)


def json_objects(families: frozenset[str] = NORMAL) -> st.SearchStrategy[dict[str, object]]:
    return st.dictionaries(texts(families), json_values(families), max_size=6)


def shaped(fields: dict[str, st.SearchStrategy[object]], families: frozenset[str]) -> st.SearchStrategy[dict[str, object]]:
    """An object with some of these fields (each right-ish or anything), sometimes extra keys."""
    anything = json_values(families, max_leaves=6)
    optional = {key: st.one_of(good, good, good, anything) for key, good in fields.items()}
    return st.builds(lambda base, extra: {**extra, **base}, st.fixed_dictionaries({}, optional=optional),
                     st.one_of(st.just({}), st.just({}), st.just({}), st.just({}), json_objects(families)))


# -- payload encodings -----------------------------------------------------------------------------


def _dumps(value: object, ascii_only: bool) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")  # non-ASCII mode: a lone surrogate is invalid UTF-8


def encoded(values: st.SearchStrategy[object]) -> st.SearchStrategy[bytes]:
    """JSON text of `values`: ASCII escapes (lone surrogates come back as str) or raw UTF-8."""
    return st.builds(_dumps, values, st.booleans())


def deep_json() -> st.SearchStrategy[bytes]:
    """Nesting far beyond any recursion limit, within the 64 KB payload limit."""
    def nest(depth: int, kind: int) -> bytes:
        if kind == 0:
            return b"[" * depth + b"]" * depth
        if kind == 1:
            return b'{"a":' * depth + b"1" + b"}" * depth
        return b'{"request_id": 1, "microphones": ' + b"[" * depth + b"]" * depth + b"}"
    return st.builds(nest, st.integers(2_000, 30_000), st.integers(0, 2))


def long_digits() -> st.SearchStrategy[bytes]:
    """JSON integers longer than Python's int/str conversion limit (4300 digits)."""
    def make(digits: int, key: str) -> bytes:
        return b'{"' + key.encode() + b'": ' + b"9" * digits + b', "siteId": "porch", "request_id": "r"}'
    return st.builds(make, st.integers(4_301, 20_000), st.sampled_from(["request_id", "duration", "input", "play_rate"]))


def junk(families: frozenset[str] = NORMAL) -> st.SearchStrategy[bytes]:
    """Payloads that are mostly not what any topic wants."""
    options = [
        st.binary(max_size=64), st.just(b""), st.sampled_from([b"{", b"null", b"[]", b"{}", b"\xff\xfe", b'"x"', b"NaN",
                                                             b'{"a": NaN}', b'{"a": Infinity}', b"1e400", b"\x00" * 12]),
        encoded(json_values(families)),
    ]
    if "deep" in families:
        options.append(deep_json())
    if "digits" in families:
        options.append(long_digits())
    return st.one_of(*options)


# -- shaped payloads per topic -------------------------------------------------------------------

SAT_IDS = ("kitchen", "porch", "s1")
BAD_SAT_IDS = ("", "bad id!", "living.room", "a" * 65, "\u00fc", "k@x", "x:y")
HERMES_SITES = ("porch", "kitchen", "default", "living.room", "site-2", "a b", "\u00fc", "s" * 65)


def pcm(length: int, fill: int) -> bytes:
    return bytes([fill & 0xFF]) * length


def hearth_frames() -> st.SearchStrategy[bytes]:
    good = st.builds(lambda stream, seq, n, fill, last: FRAME_HEADER.pack(1, 1 if last else 0, 0, stream, seq) + pcm(n, fill),
                     st.sampled_from([0, 1, 7, 2**32 - 1]), st.integers(0, 2**32 - 1) | st.integers(0, 40),
                     st.sampled_from([0, 1, 2, 960, 961, 8000, 8002]), st.integers(0, 255), st.booleans())
    header = st.builds(lambda version, flags, pad, tail: struct.pack("<BBH", version, flags, pad) + tail,
                       st.integers(0, 255), st.integers(0, 255), st.integers(0, 65535), st.binary(max_size=40))
    return st.one_of(good, good, header, st.binary(max_size=20))


def wavs() -> st.SearchStrategy[bytes]:
    """RIFF/WAVE with every header field free: real-looking, lying and truncated."""
    def make(fmt: int, channels: int, rate: int, bits: int, declared: int | None, data: bytes, extra: bytes,
             cut: int | None) -> bytes:
        fmt_body = struct.pack("<HHIIHH", fmt, channels, rate, rate * channels * max(bits, 8) // 8 & 0xFFFFFFFF,
                               channels * max(bits, 8) // 8 & 0xFFFF, bits)
        size = len(data) if declared is None else declared
        body = b"WAVE" + extra + b"fmt " + struct.pack("<I", 16) + fmt_body + b"data" + struct.pack("<I", size) + data
        wav = b"RIFF" + struct.pack("<I", len(body)) + body
        return wav[:cut] if cut is not None else wav
    return st.builds(
        make, st.sampled_from([1, 1, 3, 0xFFFE, 0]), st.sampled_from([1, 1, 2, 0, 8, 9, 65535]),
        st.sampled_from([16000, 16000, 22050, 8000, 4000, 3999, 192000, 192001, 0, 2**32 - 1]),
        st.sampled_from([16, 16, 8, 24, 32, 0, 12, 65535]),
        st.one_of(st.none(), st.sampled_from([0, 1, 2**31, 2**32 - 1])),
        st.one_of(st.just(b""), st.binary(max_size=64), st.builds(pcm, st.sampled_from([512, 1024, 4096]), st.integers(0, 255))),
        st.one_of(st.just(b""), st.just(b"LIST" + struct.pack("<I", 3) + b"abc\x00"), st.just(b"junk" + struct.pack("<I", 2**32 - 1))),
        st.one_of(st.none(), st.integers(0, 60)))


OTHER_LEAVES = (*sorted(BRIDGE_OUTBOUND), "pipeline/other", "a/b", "")


@functools.cache
def topic_payloads(families: frozenset[str], prefix: str = "hearth") -> st.SearchStrategy[tuple[str, bytes]]:
    """(topic, payload) pairs over every topic the bridge subscribes to."""
    any_json = json_values(families, max_leaves=6)
    txt = texts(families)
    sat_ids = st.one_of(st.sampled_from(SAT_IDS), st.sampled_from(SAT_IDS), st.sampled_from(BAD_SAT_IDS),
                        st.text(max_size=8).filter(_topic_level))
    sites = st.one_of(st.sampled_from(HERMES_SITES), txt)
    ids = st.one_of(txt, any_json)

    def obj(fields: dict[str, st.SearchStrategy[object]]) -> st.SearchStrategy[bytes]:
        return encoded(shaped(fields, families))

    status = obj({"state": st.sampled_from(["online", "online", "offline", "asleep"]), "protocol": st.just(1),
                  "capabilities": shaped({"wake_word": st.booleans(), "barge_in": st.booleans()}, families),
                  "wake_word": st.sampled_from(WAKE_WORDS), "play_rate": numbers(families), "area": txt})
    event = obj({"type": st.sampled_from(["wake", "button", "stop", "played", "dance"]),
                 "wake_word": st.sampled_from(WAKE_WORDS), "stream_id": numbers(families), "play_id": txt})
    response = obj({"text": txt, "session_id": ids, "continue": st.booleans(), "request_id": ids,
                    "media_url": txt, "start_conversation": st.booleans()})
    pipeline_set = st.one_of(st.just(b""), obj({"mode": st.sampled_from(["hearth", "assist", "cloud"])}))

    bad = junk(families)
    per_leaf: dict[str, st.SearchStrategy[bytes]] = {
        "status": st.one_of(status, st.just(b"")), "audio": hearth_frames(), "event": event,
        "response": response, "announce": response, "pipeline/set": pipeline_set, "pipeline/play": wavs()}

    def on_satellite(leaf: st.SearchStrategy[str], payload: st.SearchStrategy[bytes]) -> st.SearchStrategy[tuple[str, bytes]]:
        return st.builds(lambda sat, name, data: (f"{prefix}/satellite/{sat}/{name}", data), sat_ids, leaf, payload)

    satellite = st.one_of(
        *(on_satellite(st.just(leaf), st.one_of(good, good, good, bad)) for leaf, good in per_leaf.items()),
        on_satellite(st.sampled_from(OTHER_LEAVES), bad),
        on_satellite(st.text(max_size=10).filter(lambda t: not set(t) & set("+#\x00")), bad))
    mic = shaped({"muted": st.booleans(), "duration": numbers(families)}, families)
    right_mute = st.one_of(st.just({"muted": False}), st.fixed_dictionaries(
        {"muted": st.just(True)}, optional={"duration": st.one_of(numbers(families), st.floats(0.5, 60))}))
    right_policy = encoded(st.fixed_dictionaries({"request_id": ids}, optional={
        "privacy_mode": st.booleans(), "retention": st.sampled_from(["none", "memory"]),
        "microphones": st.dictionaries(st.sampled_from(SAT_IDS), right_mute, min_size=1, max_size=2)}))
    policy = st.one_of(right_policy, obj({"request_id": ids, "local_only": st.booleans(), "privacy_mode": st.booleans(),
                  "retention": st.sampled_from(["none", "memory", "forever"]),
                  "publish_transcripts": st.booleans(),
                  "microphones": st.dictionaries(st.one_of(st.sampled_from(SAT_IDS + BAD_SAT_IDS), txt), mic, max_size=3)}))
    item = {"id": txt, "name": txt, "aliases": st.lists(txt, max_size=3)}
    vocabulary = obj({"language": st.sampled_from(["en", "en-US", "de", ""]),
                      "floors": st.lists(shaped(item, families), max_size=2),
                      "areas": st.lists(shaped({**item, "floor": txt}, families), max_size=3),
                      "entities": st.lists(shaped({**item, "domain": st.sampled_from(["light", "switch", "lock", "x.y"]),
                                                   "area": txt, "device_class": txt}, families), max_size=3),
                      "sentences": st.lists(txt, max_size=2), "polite": st.booleans()})
    purge = st.one_of(obj({"request_id": ids}), bad)
    request = {"siteId": sites, "sessionId": ids}
    hermes_json: list[tuple[str, st.SearchStrategy[bytes]]] = [
        (hermes.START_LISTENING, obj({**request, "lang": txt, "wakewordId": txt, "stopOnSilence": st.booleans()})),
        (hermes.STOP_LISTENING, obj(request)),
        (hermes.NLU_QUERY, obj({**request, "input": txt, "id": ids})),
        (hermes.TTS_SAY, obj({**request, "text": txt, "id": ids, "lang": txt})),
        (hermes.END_SESSION, obj({"sessionId": ids, "text": txt, "customData": any_json})),
        (hermes.TOGGLE_ON, obj(request)), (hermes.TOGGLE_OFF, obj(request)), (hermes.TEXT_CAPTURED, obj(request)),
    ]
    fixed: list[tuple[str, st.SearchStrategy[bytes]]] = [
        (f"{prefix}/bridge/policy/set", policy), (f"{prefix}/bridge/vocabulary/set", vocabulary),
        (f"{prefix}/bridge/history/purge", purge), *hermes_json]
    fixed_pairs = [payloads.map(_pair(topic)) for topic, payloads in fixed]
    fixed_junk = st.tuples(st.sampled_from([topic for topic, _ in fixed]), bad)
    site_topic = sites.filter(_topic_level)
    audio_frame = st.builds(lambda site, payload: (f"hermes/audioServer/{site}/audioFrame", payload),
                            site_topic, st.one_of(wavs(), wavs(), bad))
    detected = st.builds(lambda word, payload: (f"hermes/hotword/{word}/detected", payload),
                         st.sampled_from(["okay_nabu", "default", "x"]),
                         st.one_of(obj({**request, "modelId": txt}), bad))
    played = st.builds(lambda site, payload: (f"hermes/audioServer/{site}/playFinished", payload),
                       site_topic, st.one_of(obj({"id": ids, "siteId": sites, "sessionId": ids}), bad))
    return st.one_of(satellite, satellite, st.one_of(*fixed_pairs), fixed_junk, audio_frame, detected, played)


def _topic_level(text: str) -> bool:
    """Whether `text` can be one level of a topic a broker delivers (UTF-8, no wildcards or NUL)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "/" not in text and not set(text) & set("+#\x00")


def _pair(topic: str) -> Callable[[bytes], tuple[str, bytes]]:
    return lambda payload: (topic, payload)
