"""Property-based fuzzing of the dispatcher: hostile messages on every subscribed topic, in process.

Each example is a short sequence of (topic, payload) messages over every topic the bridge
subscribes to (Hearth satellite topics with every leaf including the pipeline ones, the policy,
vocabulary and purge commands, every `hermes/...` subscription), fed with `bridge.dispatch` to a
fresh bridge made by `build_bridge` (no broker, no decoder workers; the grammar compiler's child
process is the one boundary replaced). What would be published is read from the link's outgoing
queue. The properties:

- nothing raises out of `dispatch`, no task the bridge started ends in an exception, the event
  loop's exception handler is never called, and no traceback or ERROR line is logged;
- every error counted is under a known code (`internal_error`, the catch-all for bugs, is not one),
  and a message that cannot be served at all (not a JSON object where one is read, a frame or WAV
  that does not parse) is counted;
- every policy command and history purge gets exactly one `policy/result`, every vocabulary
  offered gets a `vocabulary/state` (unless it is the one in service);
- everything published goes to a valid MQTT topic, and every JSON payload is strict JSON;
- afterwards the bridge still serves: a good policy command is applied and confirmed.

The families of input that broke these properties when the fuzzer was written (issue 15: deep
nesting, huge and over-long integers, lone surrogates, NaN/Infinity, malformed purges, a Hermes
say for an unusable site) keep a property each, starting from the minimal example that broke it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import bridge.service.vocabulary as vocabulary_module
from bridge.audio.wav import WavError, make_wav, wav_to_pcm16k
from bridge.config import validate
from bridge.protocol import hermes
from bridge.protocol.hearth import ProtocolError, decode_frame, encode_frame
from bridge.recognition import Vocabulary, parse_vocabulary
from bridge.resources import load_demo_vocabulary
from bridge.satellite import Protocol
from bridge.service import Bridge, build_bridge
from tests.support.fuzz import NORMAL, budget, deep_json, encoded, json_values, junk, long_digits, topic_payloads
from tests.support.signing import signed

#: Every error code the bridge may count for bad input or a refused session. A new refusal adds
#: its code here; `internal_error` (a bug caught by a safety net) is deliberately not one.
KNOWN_CODES = frozenset({
    # dispatcher and protocol
    "oversized", "unauthenticated", "bad_topic", "bad_satellite_id", "unknown_satellite", "too_many_satellites", "invalid_json",
    "bad_status", "bad_event", "bad_frame", "bad_pipeline_mode", "bad_policy_command", "bad_vocabulary",
    # audio
    "not_wav", "bad_header", "unsupported_format", "rate_limited", "queue_full", "late_frame", "gap", "no_session",
    "muted",
    # sessions and engines
    "stopped", "satellite_offline", "satellite_removed", "audio_timeout", "no_speech", "cloud_refused", "stt_timeout",
    "stt_failed", "stt_cancelled", "stt_worker_died", "stt_worker_failed", "grammar_failed",
    "sensitive_unsure", "broad_unsure", "close_call", "number_unsure", "unlikely_value", "question_unsure",
    # speaking
    "no_tts", "unsupported", "tts_failed", "tts_empty_text", "tts_bad_rate",
    # the other issue 15 branches: Hermes sites (i15-sites), bounded intent matching (i15-nlu), a lost
    # policy (i15-policy), the status API's Host check (i15-hardening)
    "hermes_session_control", "hermes_site_conflict", "hermes_site_replaced", "intent_busy", "intent_text_too_long",
    "intent_timeout", "policy_reset", "status_api_host",
})
PREFIX = "hearth"
POLICY_SET, POLICY_RESULT = f"{PREFIX}/bridge/policy/set", f"{PREFIX}/bridge/policy/result"
PURGE = f"{PREFIX}/bridge/history/purge"
VOCABULARY_SET, VOCABULARY_STATE = f"{PREFIX}/bridge/vocabulary/set", f"{PREFIX}/bridge/vocabulary/state"
BINARY_LEAVES = ("/play", "/pipeline/audio")
SETTLE_TICKS = 25
DEMO: Vocabulary = load_demo_vocabulary()


class _Grammar(SimpleNamespace):
    stats: dict[str, object]


async def fake_compile(vocab: Vocabulary, timeout: float = 300.0) -> tuple[Any, float]:
    """The grammar compiler's child process, replaced (compiling takes seconds of CPU): every
    vocabulary compiles to a tiny grammar."""
    return _Grammar(stats={"states": len(vocab.entities)}), 0.0


@dataclass
class Outcome:
    problems: list[str] = field(default_factory=list)
    published: list[tuple[str, bytes]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(data) for t, data in self.published if t == topic and data]


class _Tracebacks(logging.Handler):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.problems = problems

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.problems.append(f"logged {record.levelname}: {record.getMessage()[:300]}"
                                 + (f" ({record.exc_info[1]!r})" if record.exc_info else ""))


def drain(made: Bridge, outcome: Outcome) -> list[tuple[str, bytes]]:
    queue = made.link._outgoing  # noqa: SLF001 - the test reads what would go out
    new = []
    while not queue.empty():
        topic, data, _retain = queue.get_nowait()
        new.append((topic, data))
    outcome.published.extend(new)
    return new


def check_published(topic: str, data: bytes) -> str | None:
    """Why this message could not be published as it is (None: it can)."""
    try:
        encoded = topic.encode("utf-8")
    except UnicodeEncodeError:
        return f"topic {topic!r} is not UTF-8"
    if not topic or len(encoded) > 65535 or set(topic) & set("+#\x00"):
        return f"topic {topic!r} is not a valid MQTT topic to publish to"
    if topic.endswith(BINARY_LEAVES) or "/playBytes/" in topic or not data:
        return None

    def reject(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    try:
        json.loads(data.decode("utf-8"), parse_constant=reject)
    except ValueError as err:
        return f"payload on {topic} is not strict JSON ({err}): {data[:120]!r}"
    return None


JSON_LEAVES = ("status", "event", "response", "announce", "pipeline/set")
HERMES_JSON = (hermes.START_LISTENING, hermes.STOP_LISTENING, hermes.NLU_QUERY, hermes.TTS_SAY, hermes.END_SESSION)


def must_refuse(made: Bridge, topic: str, payload: bytes) -> bool:
    """Whether this message cannot be served at all, so its refusal must be counted: a payload
    that is not a JSON object where one is read, an audio frame or WAV that does not parse."""
    def not_object() -> bool:
        try:
            return not isinstance(json.loads(payload.decode("utf-8")), dict)
        except (ValueError, RecursionError):
            return True

    parsed = topic.split("/")
    if topic.startswith(f"{PREFIX}/satellite/") and len(parsed) >= 4:
        leaf = "/".join(parsed[3:])
        if leaf in JSON_LEAVES:
            return bool(payload) and not_object() if leaf in ("status", "pipeline/set") else not_object()
        if leaf == "audio":
            try:
                decode_frame(payload)
            except ProtocolError:
                return True
        return False
    if topic in (POLICY_SET, PURGE, VOCABULARY_SET, *HERMES_JSON) or topic.endswith(("/detected", "/playFinished")):
        return not_object()
    site = hermes.site_from_audio_topic(topic)
    if site is not None:
        existing = made.satellites.get(site)
        if existing is not None and existing.protocol is not Protocol.HERMES:
            return False  # a Hermes frame under a Hearth satellite's id: issue 15 item 4 (branch i15-sites)
        try:
            wav_to_pcm16k(payload)
        except WavError:
            return True
    return False


def offered_hash(payload: bytes) -> str | None:
    try:
        return parse_vocabulary(json.loads(payload)).hash()
    except Exception:  # noqa: BLE001 - anything the bridge must refuse has no hash
        return None


def as_home_assistant(made: Any, topic: str, payload: bytes) -> bytes:
    """Commands that must be signed (bridge/privacy/auth.py) are, with the bridge's own key:
    a paired Home Assistant may send anything too. Unsigned ones: tests/bridge/test_signed_commands.py."""
    if topic in (POLICY_SET, PURGE) or topic.endswith("/settings/set"):
        return signed(made.auth.pairing.key, topic, payload)
    return payload


async def scenario(messages: list[tuple[str, bytes]], data_dir: Path) -> Outcome:
    outcome = Outcome()
    problems = outcome.problems
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[Any]] = []

    def task_factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        tasks.append(task)
        return task

    loop.set_task_factory(task_factory)  # type: ignore[arg-type]
    loop.set_exception_handler(lambda _loop, context: problems.append(
        f"event loop: {context.get('message')} {context.get('exception')!r}"))
    settings = validate({"data_dir": str(data_dir), "bridge_id": "fuzz", "status_api": {"enabled": False},
                         "tts": {"engine": "none"}, "limits": {"max_satellites": 4}})
    made = build_bridge(settings)
    made.vocabulary.vocabulary = DEMO  # as after start-up: the demo home is in service
    limit = settings.limits.max_payload

    async def settle() -> None:
        for _ in range(SETTLE_TICKS):
            await asyncio.sleep(0)

    for topic, payload in messages:
        in_service = made.vocabulary.vocabulary
        refuse = must_refuse(made, topic, payload)
        counted = sum(made.errors.counts.values())
        payload = as_home_assistant(made, topic, payload)  # the content is what is fuzzed, not the key
        try:
            made.dispatch(topic, payload)
        except BaseException as err:  # noqa: BLE001 - the property: nothing comes out of dispatch
            problems.append(f"dispatch({topic!r}) raised {err!r}")
        await settle()
        new = drain(made, outcome)
        if refuse and sum(made.errors.counts.values()) == counted:
            problems.append(f"{topic} refused {payload[:80]!r} without counting an error")
        if topic in (POLICY_SET, PURGE) and len(payload) <= limit:
            answers = [t for t, _ in new if t == POLICY_RESULT]
            if len(answers) != 1:
                problems.append(f"{topic} answered {len(answers)} times on policy/result")
        if topic == VOCABULARY_SET and not any(t == VOCABULARY_STATE for t, _ in new):
            if in_service is None or offered_hash(payload) != in_service.hash():
                problems.append("a vocabulary was offered and no vocabulary/state said what became of it")
    # Afterwards the bridge still serves everyone else.
    made.dispatch(POLICY_SET, as_home_assistant(made, POLICY_SET, b'{"request_id": "still-serving", "privacy_mode": false}'))
    await settle()
    results = [json.loads(d) for t, d in drain(made, outcome) if t == POLICY_RESULT]
    if [r.get("ok") for r in results if r.get("request_id") == "still-serving"] != [True]:
        problems.append(f"a good policy command afterwards was not confirmed: {results}")
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            problems.append(f"task {getattr(task.get_coro(), '__qualname__', task.get_name())} ended in {task.exception()!r}")
    for sat in list(made.satellites.values()):
        await sat.close()
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    drain(made, outcome)
    outcome.counts = dict(made.errors.counts)
    unknown = set(outcome.counts) - KNOWN_CODES
    if unknown:
        problems.append(f"errors counted under unknown codes: {sorted(unknown)}")
    for topic, data in outcome.published:
        why = check_published(topic, data)
        if why:
            problems.append(why)
    return outcome


@dataclass
class Harness:
    root: Path  #: one data folder per example below it
    runs: int = 0

    def run(self, messages: list[tuple[str, bytes]]) -> Outcome:
        self.runs += 1
        data_dir = Path(tempfile.mkdtemp(dir=self.root))
        problems: list[str] = []
        handler = _Tracebacks(problems)
        logging.getLogger().addHandler(handler)
        try:
            with mock.patch.object(vocabulary_module, "compile_in_subprocess", fake_compile):
                outcome = asyncio.run(scenario(messages, data_dir))
        finally:
            logging.getLogger().removeHandler(handler)
            shutil.rmtree(data_dir, ignore_errors=True)
        outcome.problems.extend(problems)
        return outcome


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    made = Harness(tmp_path_factory.mktemp("fuzz"))
    yield made
    shutil.rmtree(made.root, ignore_errors=True)


def check(harness: Harness, messages: list[tuple[str, bytes]]) -> Outcome:
    outcome = harness.run(messages)
    assert not outcome.problems, "\n".join(outcome.problems)
    return outcome


def sequences(families: frozenset[str], must: st.SearchStrategy[tuple[str, bytes]] | None = None,
              ) -> st.SearchStrategy[list[tuple[str, bytes]]]:
    """1-8 messages, often after satellites announced themselves (so later messages meet known
    satellites); with `must`, one of them from it (the rest from the ordinary mix)."""
    ordinary = topic_payloads(NORMAL)
    openers = st.lists(st.sampled_from(OPENERS), max_size=3)
    if must is None:
        body = st.lists(topic_payloads(families), min_size=1, max_size=8)
    else:
        body = st.builds(lambda before, one, after: [*before, one, *after],
                         st.lists(ordinary, max_size=3), must, st.lists(ordinary, max_size=3))
    return st.builds(lambda first, rest: [*first, *rest], openers, body)


ONLINE = json.dumps({"state": "online", "capabilities": {"wake_word": True}}).encode()
#: Satellites announcing themselves: Hearth ones waking on their own or by the bridge, a Hermes site.
OPENERS = (
    (f"{PREFIX}/satellite/kitchen/status", ONLINE),
    (f"{PREFIX}/satellite/porch/status", json.dumps({"state": "online"}).encode()),
    (f"{PREFIX}/satellite/s1/status", json.dumps({"state": "online", "play_rate": 22050,
                                                  "capabilities": {"wake_word": True, "barge_in": True}}).encode()),
    ("hermes/audioServer/porch/audioFrame", make_wav(bytes(1024))),
    ("hermes/audioServer/site-2/audioFrame", make_wav(bytes(1024))),
)


@given(sequences(NORMAL))
@example([(f"{PREFIX}/satellite/kitchen/status", ONLINE),
          (f"{PREFIX}/satellite/kitchen/audio", encode_frame(1, 0, bytes(960))),
          (f"{PREFIX}/satellite/kitchen/event", b'{"type": "wake", "stream_id": 1}')])
@budget(1000)
def test_dispatch_survives_hostile_messages(harness: Harness, messages: list[tuple[str, bytes]]) -> None:
    check(harness, messages)


# -- inputs that break a property today (issue 15) ----------------------------------------------

#: Topics whose payload is a JSON object (a valid satellite id, so the payload is what is read).
JSON_TOPICS = (POLICY_SET, VOCABULARY_SET, PURGE, *(f"{PREFIX}/satellite/kitchen/{leaf}" for leaf in (
    "status", "event", "response", "announce", "pipeline/set")), "hermes/asr/startListening",
    "hermes/asr/stopListening", "hermes/nlu/query", "hermes/tts/say", "hermes/dialogueManager/endSession",
    "hermes/hotword/okay_nabu/detected", "hermes/audioServer/porch/playFinished")


def on_json_topics(payloads: st.SearchStrategy[bytes]) -> st.SearchStrategy[tuple[str, bytes]]:
    return st.tuples(st.sampled_from(JSON_TOPICS), payloads)


def surrogate_vocabulary(name: str) -> bytes:
    return json.dumps({"language": "en", "areas": [{"id": "kitchen", "name": name}], "entities": []}).encode()


@given(sequences(NORMAL, must=on_json_topics(deep_json())))
@example([(POLICY_SET, b"[" * 30_000 + b"]" * 30_000)])
@budget(40, shrink=False)
def test_dispatch_deeply_nested_json(harness: Harness, messages: list[tuple[str, bytes]]) -> None:
    check(harness, messages)


@given(sequences(NORMAL, must=topic_payloads(frozenset({"huge"}))))
@example([(POLICY_SET, b'{"request_id": "r", "microphones": {"kitchen": {"muted": true, "duration": 1'
                       + b"0" * 400 + b"}}}")])
@budget(150, shrink=False)
def test_dispatch_huge_numbers(harness: Harness, messages: list[tuple[str, bytes]]) -> None:
    check(harness, messages)


@given(sequences(NORMAL, must=on_json_topics(long_digits())))
@example([(POLICY_SET, b'{"request_id": ' + b"9" * 4301 + b"}")])
@example([(VOCABULARY_SET, b'{"language": ' + b"9" * 4301 + b"}")])
@budget(60, shrink=False)
def test_dispatch_integers_beyond_4300_digits(harness: Harness, messages: list[tuple[str, bytes]]) -> None:
    check(harness, messages)


@given(sequences(NORMAL, must=st.one_of(
    st.sampled_from(("k\udc80", "\ud800", "lamp \udfff")).map(
        lambda name: (VOCABULARY_SET, surrogate_vocabulary(name))),
    topic_payloads(frozenset({"surrogate"})))))
@example([(VOCABULARY_SET, surrogate_vocabulary("k\udc80"))])
@budget(150, shrink=False)
def test_dispatch_lone_surrogates(harness: Harness, messages: list[tuple[str, bytes]]) -> None:
    check(harness, messages)


@given(sequences(NORMAL, must=topic_payloads(frozenset({"nonfinite"}))))
@example([(POLICY_SET, b'{"request_id": NaN}')])
@example([("hermes/tts/say", b'{"siteId": "porch", "text": "hi", "id": Infinity}')])
@budget(100, shrink=False)
def test_dispatch_nonfinite_numbers(harness: Harness, messages: list[tuple[str, bytes]]) -> None:
    check(harness, messages)


@given(st.one_of(junk(NORMAL), encoded(json_values(NORMAL))).filter(lambda p: not _is_object(p)))
@example(b"not json")
@budget(100, shrink=False)
def test_a_malformed_purge_is_refused(harness: Harness, payload: bytes) -> None:
    outcome = check(harness, [(PURGE, payload)])
    (answer, *_) = [r for r in outcome.on(POLICY_RESULT) if r.get("request_id") != "still-serving"]
    assert answer["ok"] is False and answer["error"], answer


def _is_object(payload: bytes) -> bool:
    try:
        return isinstance(json.loads(payload), dict)
    except (ValueError, RecursionError):
        return False


@given(sequences(NORMAL, must=st.builds(
    lambda site, text: (hermes.TTS_SAY, json.dumps({"siteId": site, "text": text}).encode()),
    st.sampled_from(["a b", "", "s" * 65, "\u00fc", "x/y"]), st.sampled_from(["hi", "turn on the light"]))))
@example([(hermes.TTS_SAY, b'{"siteId": "a b", "text": "hi"}')])
@budget(50, shrink=False)
def test_hermes_say_to_an_unusable_site(harness: Harness, messages: list[tuple[str, bytes]]) -> None:
    check(harness, messages)
