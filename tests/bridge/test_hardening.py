"""Hostile and unlucky input, in process: a real bridge from `build_bridge` that is never started,
messages in through `dispatch`, what it would publish read from the MQTT link's outgoing queue.

Malformed payloads end in a clear, counted refusal on the protocol's own topic (never an
exception, never "Task exception was never retrieved"); outside session ids are normalised so
every utterance is audited and every answer finds its session; an empty audio frame is no end of
stream; the rate limit's own drops are not filled with silence; a malformed purge purges nothing;
failures to save the audit counters are counted; a flood of errors is published and logged in
bounds with the right counts.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.config import validate
from bridge.engines import Locality, SynthesizedAudio, TextToSpeech, Transcript
from bridge.errors import PUBLISH_BURST, PUBLISH_PER_SECOND, SUMMARY_INTERVAL, ErrorReporter
from bridge.pipeline.endpoint import EndpointSettings
from bridge.pipeline.wake import WakeWordDetector
from bridge.privacy.audit import AuditEntry
from bridge.protocol import hermes
from bridge.protocol.hearth import encode_frame
from bridge.satellite import Protocol, Satellite, SatelliteSettings, SessionSource, session_id_from
from bridge.service import Bridge, build_bridge
from bridge.tasks import spawn
from tests.bridge.test_satellite_unit import FakeHost, FakeStream, listening, until
from tests.support.inprocess import send_signed

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, object]]]:
    """What reaches the event loop's exception handler ("Task exception was never retrieved")."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(previous)


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    settings = validate({"data_dir": str(tmp_path), "bridge_id": "test", "status_api": {"enabled": False},
                         "tts": {"engine": "none"}})
    made = build_bridge(settings)
    yield made
    for sat in list(made.satellites.values()):
        await sat.close()


class Outgoing:
    """Everything the bridge queued for the broker, kept across reads."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.messages: list[tuple[str, object]] = []

    def read(self) -> list[tuple[str, object]]:
        queue = self.bridge.link._outgoing  # noqa: SLF001 - the test reads what would go out
        while not queue.empty():
            topic, data, _retain = queue.get_nowait()
            try:
                self.messages.append((topic, json.loads(data)))
            except (UnicodeDecodeError, json.JSONDecodeError):
                self.messages.append((topic, data))
        return self.messages

    def on(self, topic: str) -> list[dict[str, object]]:
        return [d for t, d in self.read() if t == topic and isinstance(d, dict)]

    def topics(self, prefix: str) -> list[str]:
        return [t for t, _ in self.read() if t.startswith(prefix)]


def online(bridge: Bridge, sat_id: str, **extra: object) -> None:
    bridge.dispatch(f"hearth/satellite/{sat_id}/status", json.dumps({"state": "online", **extra}).encode())


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# -- malformed payloads ---------------------------------------------------------------------------


async def test_deeply_nested_json_is_refused_as_invalid_json(bridge: Bridge, loop_errors: list[dict[str, object]]) -> None:
    out = Outgoing(bridge)
    online(bridge, "kitchen")
    send_signed(bridge, "hearth/bridge/policy/set", f'{{"request_id": "r1", "x": {nested(20000)}}}'.encode())
    (result,) = out.on("hearth/bridge/policy/result")
    assert result["ok"] is False and "nested too deeply" in str(result["error"])  # the answer HA waits for
    bridge.dispatch("hearth/satellite/kitchen/event", nested(20000).encode())
    bridge.dispatch(hermes.START_LISTENING, nested(20000).encode())
    codes = [e["code"] for e in out.on("hearth/bridge/error")]
    assert codes == ["bad_policy_command", "invalid_json", "invalid_json"]
    bridge.dispatch("hearth/bridge/vocabulary/set", nested(100000).encode())
    await settle()
    state = out.on("hearth/bridge/vocabulary/state")[-1]
    assert state["status"] == "error" and "not valid JSON" in str(state["error"])
    gc.collect()
    assert loop_errors == []


async def test_a_huge_mute_duration_is_refused_on_policy_result(bridge: Bridge) -> None:
    out = Outgoing(bridge)
    before = bridge.policy
    command = '{"request_id": "r2", "microphones": {"kitchen": {"muted": true, "duration": 1' + "0" * 400 + "}}}"
    send_signed(bridge, "hearth/bridge/policy/set", command.encode())
    (result,) = out.on("hearth/bridge/policy/result")
    assert result["request_id"] == "r2" and result["ok"] is False
    assert "microphones.kitchen.duration" in str(result["error"])
    assert bridge.policy == before
    assert bridge.errors.counts["bad_policy_command"] == 1 and "internal_error" not in bridge.errors.counts


async def test_a_lone_surrogate_in_a_vocabulary_name_is_refused_on_vocabulary_state(
        bridge: Bridge, loop_errors: list[dict[str, object]]) -> None:
    out = Outgoing(bridge)
    payload = b'{"language": "en", "areas": [{"id": "kitchen", "name": "Kitchen \\ud800"}], "entities": []}'
    bridge.dispatch("hearth/bridge/vocabulary/set", payload)
    await settle()
    state = out.on("hearth/bridge/vocabulary/state")[-1]
    assert state["status"] == "error"
    assert "areas[0].name" in str(state["error"]) and "surrogate" in str(state["error"])
    assert bridge.errors.counts["bad_vocabulary"] == 1 and "internal_error" not in bridge.errors.counts
    gc.collect()
    assert loop_errors == []


async def test_a_failing_background_task_is_counted_not_left_unretrieved(
        bridge: Bridge, loop_errors: list[dict[str, object]], caplog: pytest.LogCaptureFixture) -> None:
    async def broken(_payload: bytes) -> bool:
        raise RuntimeError("a bug")

    bridge.vocabulary.apply_payload = broken  # type: ignore[method-assign]
    for _ in range(3):
        bridge.dispatch("hearth/bridge/vocabulary/set", b"{}")
    await settle()
    gc.collect()
    assert loop_errors == []
    assert bridge.errors.counts["internal_error"] == 3
    tracebacks = [r for r in caplog.records if r.exc_info and "vocabulary-apply" in r.getMessage()]
    assert len(tracebacks) == 1  # the first with its traceback, the others counted


async def test_spawned_tasks_are_kept_until_done_and_report_their_failure() -> None:
    reported: list[tuple[str, str]] = []

    async def boom() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    task = spawn(boom(), name="test-boom", report=lambda code, message: reported.append((code, message)))
    await asyncio.gather(task, return_exceptions=True)
    await settle()
    assert reported == [("internal_error", "test-boom: ValueError: boom")]


# -- session ids from outside ---------------------------------------------------------------------


class FakeVoice(TextToSpeech):
    name = "fake-voice"
    locality = Locality.IN_PROCESS

    async def synthesize(self, text: str, rate: int) -> SynthesizedAudio:
        return SynthesizedAudio(pcm=bytes(3200), rate=rate, engine=self.name)


def test_outside_session_ids_become_tokens() -> None:
    assert session_id_from("0f7c-4b2a") == "0f7c-4b2a"
    assert session_id_from(None) is None and session_id_from("") is None
    odd = ["x" * 65, "my session 1", "line\nbreak", "caf\u00e9", "\ud800"]
    made = [session_id_from(raw) for raw in odd]
    assert all(m is not None and len(m) <= 64 and m.isalnum() for m in made)
    assert len(set(made)) == len(odd) and made == [session_id_from(raw) for raw in odd]  # stable


async def test_a_response_with_an_odd_session_id_is_played_and_audited(bridge: Bridge) -> None:
    bridge.speech_out.tts = FakeVoice()
    out = Outgoing(bridge)
    online(bridge, "kitchen")
    odd = "s" * 300 + " \u00e9"
    bridge.dispatch("hearth/satellite/kitchen/response", json.dumps({"text": "done", "session_id": odd}).encode())
    await until(lambda: bool(out.topics("hearth/satellite/kitchen/play")), timeout=3)
    assert bridge.audit.recent[-1].session_id == session_id_from(odd)
    bridge.speech_out.stop_playback("kitchen")
    await settle()


async def test_a_hermes_session_with_an_odd_id_is_audited_stopped_and_answered(bridge: Bridge) -> None:
    bridge.speech_out.tts = FakeVoice()
    out = Outgoing(bridge)
    streams: list[FakeStream] = []

    async def open_stream(_sat: Satellite, _session_id: str, _wake_word: str | None) -> FakeStream:
        streams.append(FakeStream(Transcript("turn on the porch light", 0.9, engine="fake", intent_checked=True)))
        return streams[-1]

    bridge.open_stream = open_stream  # type: ignore[method-assign,assignment]
    odd = "my session 1"
    bridge.dispatch(hermes.START_LISTENING, json.dumps({"siteId": "porch", "sessionId": odd}).encode())
    await until(lambda: "porch" in bridge.satellites and bridge.satellites["porch"].session is not None)
    assert bridge.satellites["porch"].session.id == session_id_from(odd)  # type: ignore[union-attr]
    bridge.dispatch(hermes.STOP_LISTENING, json.dumps({"siteId": "porch", "sessionId": odd}).encode())
    await until(lambda: bool(bridge.audit.recent), timeout=1.5)  # stopped now, not by the audio timeout
    (entry,) = bridge.audit.recent
    assert (entry.satellite, entry.session_id) == ("porch", session_id_from(odd))
    assert out.on(hermes.TEXT_CAPTURED)[-1]["sessionId"] == session_id_from(odd)
    # the dialogue manager answers with its own id: spoken where the session was heard
    bridge.dispatch(hermes.END_SESSION, json.dumps({"sessionId": odd, "text": "done"}).encode())
    await until(lambda: bool(out.topics("hermes/audioServer/porch/playBytes/")), timeout=3)
    bridge.speech_out.stop_playback("porch")
    await settle()


# -- audio frames ---------------------------------------------------------------------------------


@pytest.fixture
async def sat() -> AsyncIterator[tuple[FakeHost, Satellite]]:
    host = FakeHost()
    made = Satellite(host, "kitchen", Protocol.HEARTH, SatelliteSettings(
        wake_word="okay_nabu", endpoint=EndpointSettings(no_speech_timeout=60.0, max_utterance=60.0)))
    made.on_device_wake = True
    yield host, made
    await made.close()


async def test_an_empty_frame_without_the_last_flag_does_not_end_the_session(sat: tuple[FakeHost, Satellite]) -> None:
    host, satellite = sat
    await listening(satellite, SessionSource.SATELLITE, stream_id=7)
    first, second = b"\x01\x00" * 480, b"\x02\x00" * 480
    satellite.accept_frame(7, 0, first, last=False)
    satellite.accept_frame(7, 1, b"", last=False)
    await asyncio.sleep(0.1)
    assert satellite.session is not None and not host.delivered
    satellite.accept_frame(7, 2, second, last=True)
    await until(lambda: bool(host.delivered))
    assert host.stream.audio == first + second and host.delivered[0][2].end_reason == "stream_end"


async def test_frames_the_rate_limit_dropped_are_not_filled_with_silence(sat: tuple[FakeHost, Satellite]) -> None:
    host, satellite = sat
    await listening(satellite, SessionSource.SATELLITE, stream_id=3)
    frame = b"\x01\x00" * 480
    admitted = 0

    def flood(seqs: range) -> None:
        nonlocal admitted
        for seq in seqs:  # far faster than real time: most are dropped on arrival
            if satellite.admit(len(frame)):
                satellite.accept_frame(3, seq, frame, last=False)
                admitted += 1

    flood(range(0, 400))
    await asyncio.sleep(0.3)  # the bucket refills a little
    flood(range(400, 500))
    await until(lambda: not satellite.queue)
    await asyncio.sleep(0.05)
    assert satellite.counters["rate_limited"] >= 300 and satellite.counters["gaps"] == 0
    assert len(host.stream.audio) == admitted * len(frame)  # nothing made up


async def test_gap_silence_is_paid_for_from_the_rate_limit(sat: tuple[FakeHost, Satellite]) -> None:
    host, satellite = sat
    await listening(satellite, SessionSource.SATELLITE, stream_id=4)
    frame = b"\x01\x00" * 480
    satellite.accept_frame(4, 0, frame, last=False)
    satellite._tokens = 1000.0  # noqa: SLF001 - almost out of allowance
    satellite.accept_frame(4, 10, frame, last=False)  # 9 frames lost on the way
    assert satellite.counters["gaps"] == 9
    await until(lambda: not satellite.queue)
    await asyncio.sleep(0.05)
    assert len(host.stream.audio) == 2 * len(frame) + 1000  # the fill took only what was left


async def test_a_changed_wake_word_and_a_closed_satellite_return_their_models(sat: tuple[FakeHost, Satellite]) -> None:
    _host, satellite = sat
    satellite.on_device_wake = False
    satellite._detect_wake(bytes(960))  # noqa: SLF001 - the bridge listens for the wake word
    old = satellite._wake  # noqa: SLF001
    assert old is not None
    idle_nabu = WakeWordDetector.idle("okay_nabu")
    satellite.wake_word = "hey_jarvis"
    satellite._detect_wake(bytes(960))  # noqa: SLF001
    assert old.detector._loaned is None  # noqa: SLF001 - the old model went back to its pool
    assert WakeWordDetector.idle("okay_nabu") == idle_nabu + 1
    current = satellite._wake  # noqa: SLF001
    assert current is not None and current is not old
    idle_jarvis = WakeWordDetector.idle("hey_jarvis")
    await satellite.close()
    assert current.detector._loaned is None  # noqa: SLF001
    assert WakeWordDetector.idle("hey_jarvis") == idle_jarvis + 1


# -- control and housekeeping ---------------------------------------------------------------------


def _entry(session_id: str) -> AuditEntry:
    return AuditEntry(time=1.0, satellite="kitchen", session_id=session_id)


async def test_a_malformed_purge_is_refused_and_purges_nothing(bridge: Bridge) -> None:
    out = Outgoing(bridge)
    bridge.audit.record(_entry("s1"))
    send_signed(bridge, "hearth/bridge/history/purge", b"{not json")
    (result,) = out.on("hearth/bridge/policy/result")
    assert result["ok"] is False and result["error"]
    assert len(bridge.audit.recent) == 1
    send_signed(bridge, "hearth/bridge/history/purge", b'{"request_id": "p1"}')
    result = out.on("hearth/bridge/policy/result")[-1]
    assert (result["request_id"], result["ok"], result["purged"]) == ("p1", True, 1)


async def test_audit_counters_that_cannot_be_saved_are_counted_and_logged(
        bridge: Bridge, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_counters: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bridge.audit_store, "save", refuse)
    bridge.audit.record(_entry("s1"))
    task = asyncio.create_task(bridge._housekeeping())  # noqa: SLF001 - one round of housekeeping
    try:
        await until(lambda: bridge.errors.counts["audit_save_failed"] >= 1, timeout=3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert any("audit_save_failed" in r.getMessage() and "No space left" in r.getMessage() for r in caplog.records)


async def test_stale_temporary_files_of_a_killed_save_are_removed_at_start(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # a pid that surely ended
    dead.wait()
    stale = [tmp_path / f".policy.json.{dead.pid}.tmp", tmp_path / f".audit-counters.json.{dead.pid}.tmp"]
    live = tmp_path / f".policy.json.{os.getppid()}.tmp"  # a running process's save in progress
    other = tmp_path / "notes.tmp"
    for path in [*stale, live, other]:
        path.write_text("{")
    build_bridge(validate({"data_dir": str(tmp_path), "bridge_id": "t", "status_api": {"enabled": False},
                           "tts": {"engine": "none"}}))
    assert not any(p.exists() for p in stale) and live.exists() and other.exists()


# -- errors in bounds -----------------------------------------------------------------------------


def test_error_reporter_rate_limits_per_code_with_counts(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    errors = ErrorReporter(clock=lambda: now[0])
    published = 0
    for i in range(20000):  # 20,000 made-up satellites in 2 s
        now[0] += 0.0001
        published += errors.report("unknown_satellite", "not announced", f"ghost{i}")
    assert errors.counts["unknown_satellite"] == 20000
    assert published <= PUBLISH_BURST + PUBLISH_PER_SECOND * 2 + 1
    assert errors.unpublished["unknown_satellite"] == 20000 - published
    lines = [r.getMessage() for r in caplog.records if "unknown_satellite" in r.getMessage()]
    assert len(lines) == 1
    now[0] += SUMMARY_INTERVAL
    errors.flush()
    lines = [r.getMessage() for r in caplog.records if "unknown_satellite" in r.getMessage()]
    assert len(lines) == 2 and "19999 more" in lines[1] and "1000+ satellite(s)" in lines[1]
    errors.flush()  # nothing new: no line
    assert len([r for r in caplog.records if "unknown_satellite" in r.getMessage()]) == 2
    # one satellite's own errors: at most one event a second
    assert errors.report("gap", "lost", "kitchen") and not errors.report("gap", "lost", "kitchen")
    now[0] += 1.0
    assert errors.report("gap", "lost", "kitchen")
    assert len(errors._recent) <= 1024  # noqa: SLF001 - bounded


async def test_twenty_thousand_unknown_ids_give_a_bounded_number_of_messages_and_lines(
        bridge: Bridge, caplog: pytest.LogCaptureFixture) -> None:
    out = Outgoing(bridge)
    frame = encode_frame(1, 0, bytes(960))
    loop = asyncio.get_running_loop()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        started = loop.time()
        for i in range(20000):
            bridge.dispatch(f"hearth/satellite/ghost{i}/audio", frame)
        seconds = loop.time() - started
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    events = out.on("hearth/bridge/error")
    assert bridge.errors.counts["unknown_satellite"] == 20000
    assert len(events) + bridge.link.dropped_outgoing <= PUBLISH_BURST + PUBLISH_PER_SECOND * (seconds + 1)
    assert len([r for r in caplog.records if "unknown_satellite" in r.getMessage()]) <= 1 + seconds / SUMMARY_INTERVAL
    assert grown < 1_000_000, grown


# -- start-up and the broker link -----------------------------------------------------------------


def test_a_data_directory_that_cannot_be_made_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    from tests.support.broker import free_port

    run = subprocess.run([sys.executable, "-m", "bridge", "run", "--data-dir", str(blocker / "data"),
                          "--mqtt-port", str(free_port()), "--status-port", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert "data directory" in line and str(blocker / "data") in line


async def test_the_link_is_back_soon_after_a_ten_second_broker_outage(mosquitto) -> None:  # noqa: ANN001
    from bridge.service.link import Connection, LastWill, MqttLink
    from bridge.settings import MqttSettings

    async def on_connect(_connection: Connection) -> None:
        return None

    link = MqttLink(MqttSettings(port=mosquitto.port), "outage-test", subscriptions=lambda: ["test/#"],
                    will=LastWill("test/status", b"offline"), on_connect=on_connect, on_message=lambda _m: None)
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.connected.wait(), 10)
        mosquitto.stop()
        await until(lambda: not link.connected.is_set(), timeout=10)
        await asyncio.sleep(10.0)
        await asyncio.to_thread(mosquitto.start)
        up = asyncio.get_running_loop().time()
        await asyncio.wait_for(link.connected.wait(), 10)
        assert asyncio.get_running_loop().time() - up < 2.0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_big_pipeline_answer_is_converted_off_the_event_loop(
        bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge import speech_out
    from bridge.audio.wav import make_wav

    threads: list[bool] = []
    real = speech_out.parse_wav

    def spy(payload: bytes) -> object:
        threads.append(threading.current_thread() is threading.main_thread())
        return real(payload)

    monkeypatch.setattr(speech_out, "parse_wav", spy)
    out = Outgoing(bridge)
    online(bridge, "kitchen")
    wav = make_wav(bytes(1_990_000), rate=44100, channels=2)  # a 2 MB answer
    bridge.dispatch("hearth/satellite/kitchen/pipeline/play", wav)
    await until(lambda: bool(out.topics("hearth/satellite/kitchen/play")), timeout=5)
    assert threads == [False]
    bridge.speech_out.stop_playback("kitchen")
    await settle()

