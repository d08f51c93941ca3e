"""The satellite state machine driven directly, with a fake host that records every call.

No broker, no bridge process, no decoder workers: a fake speech stream returns a chosen
transcript. The endpointer, the VAD and the wake-word detector are the real ones, fed espeak-ng
speech where they need to hear speech.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from bridge.engines import EngineError, SttStream, Transcript
from bridge.pipeline.endpoint import EndpointSettings
from bridge.satellite import (
    Protocol,
    Satellite,
    SatelliteHost,
    SatelliteSettings,
    Session,
    SessionRequest,
    SessionSource,
    State,
    Timings,
)
from bridge.satellite.machine import BURST_BYTES, MAX_GAP_FILL_BYTES
from tests.support.speech import read_pcm

CHUNK = 1024  # 32 ms, as satellites send it
COMMAND = "turn on the kitchen light"
TRANSCRIPT = Transcript(text=COMMAND, confidence=0.9, engine="fake")


class FakeStream(SttStream):
    def __init__(self, transcript: Transcript = TRANSCRIPT) -> None:
        self.transcript = transcript
        self.fed: list[bytes] = []
        self.primed = b""
        self.cancelled = False
        self.finished = False
        self.is_complete = False
        self.feed_error: EngineError | None = None
        self.finish_error: Exception | None = None
        self.prime_error: EngineError | None = None

    @property
    def complete(self) -> bool:
        return self.is_complete

    @property
    def audio(self) -> bytes:
        return b"".join(self.fed)

    async def prime(self, pcm: bytes) -> None:
        if self.prime_error is not None:
            raise self.prime_error
        self.primed = pcm

    async def feed(self, pcm: bytes) -> None:
        if self.feed_error is not None:
            raise self.feed_error
        self.fed.append(pcm)

    async def finish(self) -> Transcript:
        self.finished = True
        if self.finish_error is not None:
            raise self.finish_error
        return self.transcript

    async def cancel(self) -> None:
        self.cancelled = True


class FakeHost:
    """Records every call; the policy answers are plain attributes."""

    def __init__(self) -> None:
        self.muted = False
        self.retention = False
        self.playing = False
        self.open_error: EngineError | None = None
        self.make_stream: Callable[[], FakeStream] = FakeStream
        self.streams: list[FakeStream] = []
        self.calls: list[str] = []  # lifecycle calls, in order
        self.states: list[tuple[State, str | None]] = []  # (state, session id) as published
        self.errors: list[tuple[str, str | None, str | None]] = []  # (code, satellite, session id)
        self.failures: list[tuple[str | None, str]] = []  # (session id, code)
        self.opened: list[tuple[str, str | None]] = []  # (session id, wake word)
        self.kept: list[tuple[str, str, bytes]] = []
        self.delivered: list[tuple[Session, Transcript, Timings]] = []
        self.ended: list[tuple[str, bool]] = []

    def is_muted(self, sat_id: str) -> bool:
        return self.muted

    def retention_enabled(self) -> bool:
        return self.retention

    def is_playing(self, sat_id: str) -> bool:
        return self.playing

    async def open_stream(self, sat: Satellite, session_id: str, wake_word: str | None) -> SttStream:
        if self.open_error is not None:
            raise self.open_error
        stream = self.make_stream()
        self.streams.append(stream)
        self.opened.append((session_id, wake_word))
        return stream

    def state_changed(self, sat: Satellite) -> None:
        self.states.append((sat.state, sat.session.id if sat.session else None))

    def report_error(self, code: str, message: str, sat_id: str | None, session_id: str | None = None) -> None:
        self.errors.append((code, sat_id, session_id))

    def session_failed(self, sat: Satellite, session_id: str | None, code: str, message: str) -> None:
        self.calls.append("session_failed")
        self.failures.append((session_id, code))

    def wake_started(self, sat: Satellite, session: Session) -> None:
        self.calls.append("wake_started")

    def session_started(self, sat: Satellite, session: Session) -> None:
        self.calls.append("session_started")

    def listening_ended(self, sat: Satellite, session: Session) -> None:
        self.calls.append("listening_ended")

    def session_ended(self, sat: Satellite, session: Session, ok: bool) -> None:
        self.calls.append("session_ended")
        self.ended.append((session.id, ok))

    def keep_audio(self, sat_id: str, session_id: str, pcm: bytes) -> None:
        self.kept.append((sat_id, session_id, pcm))

    async def deliver(self, sat: Satellite, session: Session, transcript: Transcript, timings: Timings) -> None:
        self.calls.append("deliver")
        self.delivered.append((session, transcript, timings))

    @property
    def stream(self) -> FakeStream:
        return self.streams[-1]

    @property
    def state_names(self) -> list[str]:
        return [str(state) for state, _ in self.states]


def _is_host(host: FakeHost) -> SatelliteHost:
    return host  # mypy checks that the fake implements the whole interface


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.002)


def chunks(pcm: bytes, size: int = CHUNK) -> Iterator[bytes]:
    for i in range(0, len(pcm), size):
        yield pcm[i : i + size]


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * 16000) * 2)


def send(sat: Satellite, pcm: bytes) -> None:
    for chunk in chunks(pcm):
        sat.enqueue(chunk)


@pytest.fixture
def command_pcm(say: Callable[..., Path]) -> bytes:
    return read_pcm(say(COMMAND))


@pytest.fixture
def wake_pcm(say: Callable[..., Path]) -> bytes:
    return read_pcm(say(f"okay nabu, {COMMAND}", speed=150))


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., tuple[FakeHost, Satellite]]]:
    made: list[Satellite] = []

    def _make(protocol: Protocol = Protocol.HEARTH, **settings: object) -> tuple[FakeHost, Satellite]:
        host = FakeHost()
        sat = Satellite(_is_host(host), "kitchen", protocol,
                        SatelliteSettings(**{"wake_word": "okay_nabu", **settings}))  # type: ignore[arg-type]
        made.append(sat)
        return host, sat

    yield _make
    for sat in made:
        await sat.close()


async def listening(sat: Satellite, source: SessionSource = SessionSource.BUTTON, **kwargs: object) -> Session:
    assert sat.request_session(source, **kwargs)  # type: ignore[arg-type]
    await until(lambda: sat.session is not None)
    assert sat.session is not None
    return sat.session


# -- transitions --------------------------------------------------------------------------------


async def test_utterance_walks_every_state_in_order(make, command_pcm) -> None:
    host, sat = make()
    assert sat.state is State.IDLE and host.states == []
    session = await listening(sat, SessionSource.BUTTON)
    assert host.states == [(State.LISTENING, session.id)]
    send(sat, command_pcm)
    await until(lambda: host.delivered and sat.state is State.IDLE)
    assert host.state_names == ["listening", "transcribing", "processing", "idle"]
    assert host.calls == ["session_started", "wake_started", "listening_ended", "deliver", "session_ended"]
    assert host.ended == [(session.id, True)]
    delivered, transcript, timings = host.delivered[0]
    assert delivered is session and transcript == TRANSCRIPT
    assert timings.end_reason in ("silence", "vad")
    assert timings.intent_ms == 0.0 and timings.end_of_speech_to_text_ms >= timings.endpoint_ms >= 0
    # The utterance ended on the speech's trailing silence, before all of it was fed.
    assert 0 < len(host.stream.audio) < len(command_pcm) and host.stream.audio == command_pcm[: len(host.stream.audio)]
    assert session.audio_bytes == len(host.stream.audio)
    assert not host.stream.cancelled and host.failures == []
    assert sat.counters["utterances"] == 1 and sat.counters["wakes"] == 1
    # What arrives after the session goes to the wake-word detector, not to the stream.
    await until(lambda: not sat.queue)
    assert sat.session is None and sat.counters["wake_chunks"] > 0


async def test_complete_hint_ends_sooner(make, command_pcm) -> None:
    host, sat = make()
    host.make_stream = _complete_stream
    await listening(sat)
    send(sat, command_pcm)
    await until(lambda: bool(host.delivered))
    assert host.delivered[0][2].end_reason == "complete"


def _complete_stream() -> FakeStream:
    stream = FakeStream()
    stream.is_complete = True
    return stream


async def test_stream_end_from_the_satellite(make, command_pcm) -> None:
    host, sat = make()
    await listening(sat)
    send(sat, command_pcm[:16000])
    sat.stop_listening()
    await until(lambda: bool(host.delivered))
    assert host.delivered[0][2].end_reason == "stream_end"
    assert host.stream.audio == command_pcm[:16000]
    assert host.state_names == ["listening", "transcribing", "processing", "idle"]


async def test_request_session_while_one_is_open_or_asked_for(make) -> None:
    host, sat = make()
    assert sat.request_session(SessionSource.COMMAND, session_id="first")
    assert sat.pending_start == SessionRequest(SessionSource.COMMAND, None, "first", None, None)
    assert not sat.request_session(SessionSource.BUTTON)  # asked for, not yet open
    await until(lambda: sat.session is not None)
    assert not sat.request_session(SessionSource.BUTTON)  # open
    assert sat.session is not None and sat.session.id == "first" and sat.session.source is SessionSource.COMMAND
    assert len(host.streams) == 1 and sat.counters["wakes"] == 0  # a command is no wake
    await sat.abort("stopped", "stopped by the satellite")
    assert sat.request_session(SessionSource.BUTTON)
    await until(lambda: len(host.streams) == 2)


async def test_muted_satellite_opens_no_session(make) -> None:
    host, sat = make()
    host.muted = True
    assert sat.request_session(SessionSource.BUTTON)
    await until(lambda: sat.pending_start is None)
    assert sat.session is None and host.streams == [] and host.states == []


async def test_hermes_session_carries_its_id_and_language(make) -> None:
    host, sat = make(Protocol.HERMES)
    session = await listening(sat, SessionSource.COMMAND, wake_word="hey_jarvis", session_id="abc", lang="de")
    assert (session.id, session.hermes_lang, session.wake_word) == ("abc", "de", "hey_jarvis")
    assert host.opened == [("abc", "hey_jarvis")]


# -- mute, barge-in ------------------------------------------------------------------------------


async def test_mute_in_the_middle_of_an_utterance(make, command_pcm) -> None:
    host, sat = make(endpoint=EndpointSettings(silence_tail=3.0, vad_tail=3.0))
    session = await listening(sat)
    first, rest = command_pcm[: 20 * CHUNK], command_pcm[20 * CHUNK :]
    send(sat, first)
    await until(lambda: len(host.stream.audio) == len(first))
    host.muted = True
    send(sat, rest)
    await until(lambda: sat.state is State.IDLE)
    await until(lambda: not sat.queue)
    assert host.stream.audio == first  # nothing after the mute reached the recognizer
    assert host.stream.cancelled and not host.stream.finished
    assert host.failures == [(session.id, "muted")]
    assert host.ended == [(session.id, False)] and host.delivered == []
    assert host.state_names == ["listening", "idle"]
    assert sat.counters["wake_chunks"] == 0  # muted audio is not even listened to for the wake word


@pytest.mark.parametrize(("playing", "barge_in", "wakes"), [(False, False, True), (True, False, False), (True, True, True)])
async def test_wake_word_while_an_answer_plays(make, wake_pcm, playing, barge_in, wakes) -> None:
    host, sat = make()
    host.playing, sat.barge_in = playing, barge_in
    send(sat, wake_pcm)
    if wakes:
        await until(lambda: "wake_started" in host.calls)
        session = host.delivered[0][0] if host.delivered else sat.session
        assert session is not None and session.source is SessionSource.BRIDGE and session.wake_word == "okay_nabu"
        assert host.opened[0][1] == "okay_nabu"
        assert host.stream.primed  # the audio before the wake calibrates the recognizer
        assert sat.counters["wakes"] == 1
    else:
        await until(lambda: not sat.queue)
        assert sat.pending_start is None and sat.session is None
        assert host.calls == [] and host.streams == [] and sat.counters["wake_chunks"] == 0


# -- ends without a result -------------------------------------------------------------------------


async def test_no_speech_after_the_wake(make) -> None:
    host, sat = make(endpoint=EndpointSettings(no_speech_timeout=0.3))
    session = await listening(sat)
    send(sat, silence(0.5))
    await until(lambda: sat.state is State.IDLE)
    assert host.failures == [(session.id, "no_speech")]
    assert host.stream.cancelled and not host.stream.finished and host.delivered == []
    assert host.state_names == ["listening", "idle"]
    assert host.calls == ["session_started", "wake_started", "listening_ended", "session_failed", "session_ended"]


async def test_maximum_utterance_length(make, command_pcm) -> None:
    host, sat = make(endpoint=EndpointSettings(max_utterance=1.0, silence_tail=3.0, vad_tail=3.0))
    await listening(sat)
    send(sat, command_pcm)
    await until(lambda: bool(host.delivered))
    assert host.delivered[0][2].end_reason == "max_length"
    assert 32000 <= len(host.stream.audio) < 32000 + CHUNK
    assert host.state_names == ["listening", "transcribing", "processing", "idle"]


async def test_satellite_vanishes_while_listening(make, command_pcm) -> None:
    host, sat = make(audio_timeout=0.1, endpoint=EndpointSettings(silence_tail=3.0, vad_tail=3.0))
    session = await listening(sat)
    send(sat, command_pcm[: 10 * CHUNK])
    await until(lambda: sat.state is State.IDLE)
    assert host.failures == [(session.id, "audio_timeout")]
    assert host.stream.cancelled and host.delivered == [] and host.ended == [(session.id, False)]
    assert host.stream.audio == command_pcm[: 10 * CHUNK]


async def test_idle_satellite_does_not_time_out(make) -> None:
    host, sat = make(audio_timeout=0.05)
    await asyncio.sleep(0.2)
    assert host.failures == [] and host.states == []


async def test_engine_refused_when_opening(make) -> None:
    host, sat = make()
    host.open_error = EngineError("cloud_refused", "local only")
    assert sat.request_session(SessionSource.BUTTON, session_id="s1")
    await until(lambda: bool(host.failures))
    assert host.failures == [("s1", "cloud_refused")]
    assert sat.session is None and host.states == [] and "session_started" not in host.calls


async def test_unexpected_failure_when_opening_keeps_the_satellite_alive(make) -> None:
    host, sat = make()

    def broken() -> FakeStream:
        raise RuntimeError("bug")

    host.make_stream = broken
    assert sat.request_session(SessionSource.BUTTON, session_id="s1")
    await until(lambda: bool(host.failures))
    assert host.failures == [("s1", "internal_error")] and sat.session is None and sat.pending_start is None
    host.make_stream = FakeStream
    await listening(sat)


async def test_prime_failure_closes_the_stream(make, command_pcm) -> None:
    host, sat = make()
    stream = FakeStream()
    stream.prime_error = EngineError("worker_died", "decoder worker exited")
    host.make_stream = lambda: stream
    sat.on_device_wake = True  # no wake detection, but the audio is still remembered for priming
    send(sat, command_pcm[:8000])
    await until(lambda: not sat.queue)
    assert sat.request_session(SessionSource.BRIDGE, session_id="s1")
    await until(lambda: bool(host.failures))
    assert host.failures == [("s1", "worker_died")] and stream.cancelled and sat.session is None
    host.make_stream = FakeStream
    await listening(sat)  # the satellite still works


@pytest.mark.parametrize("where", ["feed", "finish", "finish_timeout"])
async def test_stream_error(make, command_pcm, where) -> None:
    host, sat = make()
    stream = FakeStream()
    if where == "feed":
        stream.feed_error = EngineError("worker_died", "decoder worker exited")
    elif where == "finish":
        stream.finish_error = EngineError("stt_failed", "the server closed the connection")
    else:
        stream.finish_error = TimeoutError()
    host.make_stream = lambda: stream
    session = await listening(sat)
    send(sat, command_pcm)
    await until(lambda: sat.state is State.IDLE)
    code = {"feed": "worker_died", "finish": "stt_failed", "finish_timeout": "stt_timeout"}[where]
    assert host.failures == [(session.id, code)]
    assert host.ended == [(session.id, False)] and host.delivered == []
    if where == "feed":
        assert stream.cancelled and host.state_names == ["listening", "idle"]
    else:
        assert host.state_names == ["listening", "transcribing", "idle"]
    host.make_stream = FakeStream
    await listening(sat)  # and the next session opens


async def test_close_cancels_the_open_stream(make) -> None:
    host, sat = make()
    await listening(sat)
    await sat.close()
    assert host.stream.cancelled and sat.session is None


# -- Hearth frames, limits ------------------------------------------------------------------------


async def test_hearth_sequence_gap_and_late_frame(make) -> None:
    host, sat = make()
    session = await listening(sat, SessionSource.SATELLITE, stream_id=7)
    f = [bytes([n + 1]) * 640 for n in range(4)]
    sat.accept_frame(7, 0, f[0], last=False)
    sat.accept_frame(7, 1, f[1], last=False)
    sat.accept_frame(7, 3, f[3], last=False)  # 2 is missing: filled with silence, reported
    sat.accept_frame(7, 2, f[2], last=False)  # late: dropped, reported
    sat.accept_frame(7, 4, f[0], last=True)
    assert sat.counters["gaps"] == 1 and sat.counters["late"] == 1
    assert [e for e in host.errors if e[0] in ("gap", "late_frame")] == [
        ("gap", "kitchen", session.id), ("late_frame", "kitchen", session.id)]
    await until(lambda: bool(host.delivered))
    assert host.stream.audio == f[0] + f[1] + bytes(640) + f[3] + f[0]
    assert host.delivered[0][2].end_reason == "stream_end"


async def test_gap_fill_is_bounded(make) -> None:
    host, sat = make()
    await listening(sat, SessionSource.SATELLITE)
    sat.accept_frame(9, 0, b"\x01" * 640, last=False)
    sat.accept_frame(9, 100, b"\x02" * 640, last=True)
    await until(lambda: bool(host.delivered))
    assert host.stream.audio == b"\x01" * 640 + bytes(MAX_GAP_FILL_BYTES) + b"\x02" * 640


async def test_on_device_wake_frames_outside_a_session(make) -> None:
    host, sat = make()
    sat.on_device_wake = True
    sat.accept_frame(3, 0, bytes(640), last=False)
    assert ("no_session", "kitchen", None) in host.errors and not sat.queue
    await listening(sat, SessionSource.SATELLITE, stream_id=5)
    await sat.abort("stopped", "stopped by the satellite")
    sat.accept_frame(5, 1, bytes(640), last=False)  # in flight when the session ended
    assert sat.counters["after_session"] == 1 and not sat.queue


async def test_rate_limit_token_bucket(make) -> None:
    host, sat = make()
    assert sat.admit(BURST_BYTES)  # the burst allowance
    assert not sat.admit(3200)
    assert sat.counters["rate_limited"] == 1 and host.errors == [("rate_limited", "kitchen", None)]
    await asyncio.sleep(0.1)  # refills at 1.5 x real time: 4800 bytes in 0.1 s
    assert sat.admit(3200)


async def test_queue_full(make) -> None:
    host, sat = make(queue_frames=8)
    sat.on_device_wake = True
    session = await listening(sat, SessionSource.SATELLITE)
    for _ in range(10):  # no await: the satellite's task cannot drain meanwhile
        sat.enqueue(bytes(640))
    assert len(sat.queue) == 8 and sat.counters["dropped_queue_full"] == 2 and sat.counters["frames"] == 10
    assert host.errors == [("queue_full", "kitchen", session.id)] * 2


@pytest.mark.parametrize("retention", [False, True])
async def test_audio_kept_only_with_retention(make, command_pcm, retention) -> None:
    host, sat = make()
    host.retention = retention
    session = await listening(sat)
    send(sat, command_pcm)
    await until(lambda: bool(host.delivered))
    if retention:
        assert host.kept == [("kitchen", session.id, host.stream.audio)]
    else:
        assert host.kept == [] and session.kept is None


# -- settings and wire values ---------------------------------------------------------------------


async def test_settings(make) -> None:
    _, hearth = make()
    _, hermes = make(Protocol.HERMES)
    _, own = make(Protocol.HERMES, play_rate=44100, area="Kitchen", wake_word="hey_jarvis")
    assert (hearth.play_rate, hermes.play_rate, own.play_rate) == (16000, 22050, 44100)
    assert (own.wake_word, own.area, hearth.area) == ("hey_jarvis", "Kitchen", None)
    hearth.info = {"area": "Hall"}
    own.info = {"area": "Hall"}
    assert (hearth.area, own.area) == ("Hall", "Kitchen")  # configured beats announced


def test_timings_wire_keys() -> None:
    timings = Timings(end_of_speech_to_text_ms=212.3, endpoint_ms=180.0, decode_finish_ms=32.3, end_reason="silence")
    filled = dataclasses.replace(timings, intent_ms=4.26)
    assert filled.to_json() == {"end_of_speech_to_text_ms": 212.3, "endpoint_ms": 180.0, "decode_finish_ms": 32.3,
                                "end_reason": "silence", "intent_ms": 4.3}
    assert timings.to_json()["intent_ms"] == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        timings.endpoint_ms = 0.0  # type: ignore[misc]


def test_session_source_is_wire_compatible() -> None:
    assert [str(s) for s in SessionSource] == ["bridge", "satellite", "button", "command", "hermes"]
    assert json.dumps({"source": SessionSource.BRIDGE}) == '{"source": "bridge"}'
    assert SessionSource.COMMAND == "command"


def test_satellite_never_imports_the_service() -> None:
    import bridge.satellite

    for path in Path(bridge.satellite.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not any("service" in name for name in names), f"{path.name} imports {names}"
