"""Real decoder worker processes (bridge.stt.worker) behind the local engine: espeak-ng speech in,
the transcript and its intent out in one answer; a worker that answers nonsense fails the waiting
utterance with an EngineError; the one-shot grammar compiler leaves nothing running."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bridge.engines import EngineError, Transcript
from bridge.recognition import CompiledGrammar, Vocabulary
from bridge.recognition.verdict import Outcome, VerdictSettings
from bridge.resources import load_demo_vocabulary
from bridge.stt import messages as m
from bridge.stt.compiler import compile_in_subprocess
from bridge.stt.local import PocketsphinxStt
from bridge.stt.pool import DecoderPool, DecoderWorker
from tests.support.speech import have_espeak, read_pcm

pytestmark = [pytest.mark.timeout(180)]

type Say = Callable[..., Any]


@pytest.fixture
async def pool() -> AsyncIterator[DecoderPool]:
    vocab = load_demo_vocabulary()
    grammar, seconds = await compile_in_subprocess(vocab)
    assert isinstance(grammar, CompiledGrammar) and seconds > 0
    pool = DecoderPool(1)
    await pool.start(vocab, grammar)
    try:
        yield pool
    finally:
        await pool.stop()


class Recorder:
    """Every message a worker sends and receives, in order."""

    def __init__(self, worker: DecoderWorker) -> None:
        self.sent: list[m.ToWorker] = []
        self.received: list[m.FromWorker] = []
        send, dispatch = worker.send, worker._dispatch

        def recording_send(message: m.ToWorker) -> None:
            self.sent.append(message)
            send(message)

        def recording_dispatch(message: m.FromWorker) -> None:
            self.received.append(message)
            dispatch(message)

        worker.send = recording_send  # type: ignore[method-assign]
        worker._dispatch = recording_dispatch  # type: ignore[method-assign]


async def _transcribe(engine: PocketsphinxStt, pcm: bytes, area: str | None) -> Transcript:
    stream = await engine.open("sess", area=area)
    for offset in range(0, len(pcm), 960):
        await stream.feed(pcm[offset:offset + 960])
    return await stream.finish()


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng is not installed")
async def test_the_intent_comes_back_with_the_transcript(pool: DecoderPool, say: Say,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    engine = PocketsphinxStt(pool)
    record = Recorder(pool.workers[0])

    async def no_second_trip(text: str, area: str | None = None) -> Any:
        raise AssertionError("intent asked for separately")

    monkeypatch.setattr(pool, "recognize_intent", no_second_trip)
    pcm = read_pcm(say("turn on the lights"))

    transcript = await _transcribe(engine, pcm, "bedroom")
    assert transcript.text == "turn on the lights" and not transcript.rejected, transcript
    assert transcript.intent_checked and transcript.intent is not None
    assert transcript.intent.name == "HassTurnOn"
    assert {e for slot in transcript.intent.slots for e in slot.entity_ids} == {"light.bedroom"}
    assert 0 < transcript.intent_cpu_seconds < 1
    # One round trip: start, the audio, the end (with the area) out; one result back.
    kinds = [type(message) for message in record.sent]
    assert kinds[0] is m.StartUtterance and kinds[-1] is m.EndUtterance
    assert set(kinds[1:-1]) == {m.Audio}
    assert record.sent[-1] == m.EndUtterance(record.sent[0].utterance, "bedroom",  # type: ignore[union-attr]
                                             VerdictSettings())
    assert transcript.verdict is not None and transcript.verdict.outcome is Outcome.ACT
    answers = [r for r in record.received if not isinstance(r, m.Partial)]
    assert [type(r) for r in answers] == [m.UtteranceResult]
    assert answers[0].utterance == record.sent[0].utterance  # type: ignore[union-attr]

    # Without the satellite's area, "the lights" are nobody's: checked, and no intent.
    transcript = await _transcribe(engine, pcm, None)
    assert transcript.text == "turn on the lights" and transcript.intent_checked
    assert transcript.intent is None

    # Rejected speech comes back without an intent (the worker matches text the decoder rejected
    # for its score only to see whether it is harmless), refused by the verdict with the reason.
    transcript = await _transcribe(engine, read_pcm(say("I think we should order pizza tonight")), "bedroom")
    assert transcript.rejected and transcript.intent is None
    assert transcript.verdict is not None and transcript.verdict.outcome is Outcome.REFUSE
    assert not any(isinstance(s, m.RecognizeIntent) for s in record.sent)
    assert not any(isinstance(r, m.IntentRecognized) for r in record.received)


async def test_text_intents_and_garbage_in(pool: DecoderPool, caplog: pytest.LogCaptureFixture) -> None:
    """recognize_intent (Hermes NLU, other engines) still works; a worker given a frame that is
    not a message says so and keeps serving."""
    intent, cpu = await pool.recognize_intent("turn on the lights", "bedroom")
    assert intent is not None and intent.name == "HassTurnOn" and cpu > 0
    assert intent.to_json()["slots"]["area"]["entity_ids"] == ["light.bedroom"]  # type: ignore[index]
    assert (await pool.recognize_intent("turn on the lights"))[0] is None

    worker = pool.workers[0]
    assert worker.proc is not None and worker.proc.stdin is not None
    with caplog.at_level("ERROR", logger="bridge.stt.pool"):
        worker.proc.stdin.write(m.HEADER.pack(6) + b"\x80junk!")
        intent, _ = await pool.recognize_intent("what time is it")
    assert intent is not None and intent.name == "HassGetCurrentTime"
    assert "malformed message: unreadable frame" in caplog.text
    assert worker.alive


FAKE_WORKER = r"""
import os, pickle, sys
from bridge.stt.messages import HEADER, MAX_FRAME, Ready, encode, read_body
out = sys.stdout.buffer
out.write(encode(Ready(os.getpid()))); out.flush()
read_body(sys.stdin.buffer)
bad = {
    "junk": HEADER.pack(5) + b"junk!",
    "fields": (lambda b: HEADER.pack(len(b)) + b)(pickle.dumps(("result", "u"))),
    "huge": HEADER.pack(MAX_FRAME + 1),
}[sys.argv[1]]
out.write(bad); out.flush()
sys.stdin.buffer.read()
"""


@pytest.mark.parametrize(("variant", "detail"), [
    ("junk", "unreadable frame"),
    ("fields", "'result' message with 1 fields, expected 11"),
    ("huge", "at most"),
])
async def test_a_malformed_frame_from_the_worker_fails_the_waiting_utterance(variant: str, detail: str) -> None:
    worker = DecoderWorker(0, lambda utterance, complete: None)
    worker.command = (sys.executable, "-c", FAKE_WORKER, variant)
    await worker.start()
    try:
        result = worker.expect_result("u")
        intent = worker.expect_intent("intent-0")
        worker.send(m.EndUtterance("u", "kitchen"))
        for future in (result, intent):
            with pytest.raises(EngineError) as caught:
                await asyncio.wait_for(future, 10)
            assert caught.value.code == "stt_worker_failed"
            assert detail in caught.value.message
        assert not worker.alive  # at once: the pool will not hand it another utterance
        assert worker._reader_task is not None
        await asyncio.wait_for(worker._reader_task, 10)  # ended, without raising
        assert worker.proc is not None
        await asyncio.wait_for(worker.proc.wait(), 10)  # killed, nothing left running
        with pytest.raises(EngineError, match="not running"):
            worker.send(m.StartUtterance("v"))
    finally:
        await worker.stop()


async def test_the_compiler_child_is_killed_on_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    children: list[asyncio.subprocess.Process] = []
    spawn = asyncio.create_subprocess_exec

    async def recording_spawn(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        proc = await spawn(*args, **kwargs)
        children.append(proc)
        return proc

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording_spawn)
    vocab: Vocabulary = load_demo_vocabulary()
    with pytest.raises(TimeoutError):
        await compile_in_subprocess(vocab, timeout=0.05)
    assert len(children) == 1 and children[0].returncode is not None
