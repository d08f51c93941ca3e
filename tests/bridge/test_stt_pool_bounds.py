"""The decoder pool bounds the work text can cause: too-long text is refused before a worker sees
it, a match that overruns the deadline has its worker killed and replaced (and is answered with an
error), NLU queries never take the worker a satellite would need, and waiting queries are bounded.

Most of these run real worker processes of a stand-in program (FAKE_WORKER, below) that sleeps
on request, so the timing is the test's; the last ones run the real `bridge.stt.worker`."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from bridge.engines import EngineError
from bridge.recognition import CompiledGrammar, Vocabulary, compile_grammar
from bridge.recognition.intents import MAX_INTENT_TEXT, intent_text_problem
from bridge.resources import cmudict, load_demo_vocabulary
from bridge.stt import local
from bridge.stt import messages as m
from bridge.stt.local import PocketsphinxStt
from bridge.stt.pool import DecoderPool, DecoderWorker

pytestmark = [pytest.mark.timeout(240)]

# Answers like a worker; "sleep <s>" as text (or an utterance id containing "hang") takes that long.
FAKE_WORKER = r"""
import os, sys, time
from bridge.stt import messages as m
out = os.fdopen(os.dup(1), "wb", buffering=0)
m.write_message(out, m.Ready(os.getpid()))
while True:
    try:
        message = m.decode_to_worker(m.read_body(sys.stdin.buffer))
    except EOFError:
        break
    if isinstance(message, m.LoadGrammar):
        m.write_message(out, m.GrammarLoaded(message.grammar.hash, 0.0))
    elif isinstance(message, m.RecognizeIntent):
        if message.text.startswith("sleep "):
            time.sleep(float(message.text.split()[1]))
        m.write_message(out, m.IntentRecognized(message.request, None, 0.0))
    elif isinstance(message, m.EndUtterance):
        if "hang" in message.utterance:
            time.sleep(3600)
        m.write_message(out, m.UtteranceResult(message.utterance, "fake", 1.0, False, 0.0, 0.0))
    elif isinstance(message, m.Exit):
        break
"""


@pytest.fixture(scope="module")
def home() -> Iterator[tuple[Vocabulary, CompiledGrammar]]:
    vocab = load_demo_vocabulary()
    yield vocab, compile_grammar(vocab, cmudict())


@pytest.fixture
def fake_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DecoderWorker, "command", (sys.executable, "-c", FAKE_WORKER))


async def started(home: tuple[Vocabulary, CompiledGrammar], size: int = 2, **kwargs: Any) -> DecoderPool:
    pool = DecoderPool(size, **kwargs)
    await pool.start(*home)
    return pool


@pytest.fixture
async def pool(home: tuple[Vocabulary, CompiledGrammar], fake_workers: None) -> AsyncIterator[DecoderPool]:
    pool = await started(home, intent_timeout=1.0)
    try:
        yield pool
    finally:
        await pool.stop()


def pids(pool: DecoderPool) -> set[int]:
    return {w.proc.pid for w in pool.workers if w.proc is not None}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_the_length_limit_counts_the_spoken_form() -> None:
    assert intent_text_problem("set the living room ceiling light to 75 percent") is None
    assert intent_text_problem("x" * MAX_INTENT_TEXT) is None
    assert "301 characters" in (intent_text_problem("x" * (MAX_INTENT_TEXT + 1)) or "")
    # 70 characters as written, over 600 as spoken: numbers become words before hassil sees them
    problem = intent_text_problem("777777 " * 10)
    assert problem is not None and "spoken out" in problem


async def test_too_long_text_is_refused_before_any_worker_sees_it(pool: DecoderPool,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[m.ToWorker] = []
    send = DecoderWorker.send

    def recording_send(self: DecoderWorker, message: m.ToWorker) -> None:
        sent.append(message)
        send(self, message)

    monkeypatch.setattr(DecoderWorker, "send", recording_send)
    for text in ("turn on the kitchen light and " * 300, "777777 " * 10):
        for query in (True, False):
            with pytest.raises(EngineError) as caught:
                await pool.recognize_intent(text, query=query)
            assert caught.value.code == "intent_text_too_long"
            assert "at most 300" in caught.value.message
    assert sent == [] and pool.busy == 0
    assert (await pool.recognize_intent("sleep 0", query=True))[0] is None
    assert [type(s) for s in sent] == [m.RecognizeIntent]


async def test_an_overrunning_match_is_answered_and_its_worker_replaced(pool: DecoderPool) -> None:
    before = pids(pool)
    started_at = time.monotonic()
    with pytest.raises(EngineError) as caught:
        await pool.recognize_intent("sleep 600", query=True)
    assert caught.value.code == "intent_timeout"
    assert time.monotonic() - started_at < 10  # the 1 s deadline, not the 600 s match
    await until(lambda: pool.restarts == 1 and pool.busy == 0 and all(w.alive for w in pool.workers))
    killed = before - pids(pool)
    assert len(killed) == 1 and len(pids(pool)) == 2  # one new process in its place
    assert all(gone(pid) for pid in killed)
    assert pool.intent_timeouts == 1
    # both workers (the fresh one too) serve queries and utterances again
    for _ in range(4):
        assert (await pool.recognize_intent("sleep 0", query=True))[0] is None
    a = await asyncio.wait_for(pool.acquire("u1", lambda _c: None), 5)
    b = await asyncio.wait_for(pool.acquire("u2", lambda _c: None), 5)
    assert {a.proc.pid, b.proc.pid} == pids(pool)  # type: ignore[union-attr]
    pool.release(a)
    pool.release(b)


async def test_queries_leave_a_worker_for_utterances_and_wait_in_a_bounded_line(
        home: tuple[Vocabulary, CompiledGrammar], fake_workers: None) -> None:
    pool = await started(home, intent_timeout=30.0, max_waiting_queries=1, query_wait=30.0)
    try:
        finished: list[str] = []

        async def ask(name: str, text: str, query: bool) -> None:
            await pool.recognize_intent(text, query=query)
            finished.append(name)

        first = asyncio.create_task(ask("first query", "sleep 2", True))
        await until(lambda: pool.busy == 1)
        # A satellite that wakes now gets the other worker at once.
        utterance = await asyncio.wait_for(pool.acquire("u", lambda _c: None), 1)
        second = asyncio.create_task(ask("second query", "sleep 0", True))
        await asyncio.sleep(0.2)
        # One query matched, one waiting: the next is refused at once.
        with pytest.raises(EngineError) as caught:
            await asyncio.wait_for(pool.recognize_intent("sleep 0", query=True), 1)
        assert caught.value.code == "intent_busy"
        # Another engine's transcript is a satellite's utterance: it waits in turn with utterances,
        # not behind the queries, and takes the worker the utterance gives back.
        transcript = asyncio.create_task(ask("transcript", "sleep 0", False))
        await asyncio.sleep(0.2)
        assert finished == []
        pool.release(utterance)
        await asyncio.wait_for(transcript, 5)
        assert finished == ["transcript"]
        await asyncio.wait_for(asyncio.gather(first, second), 20)
        assert finished == ["transcript", "first query", "second query"]
    finally:
        await pool.stop()


async def test_a_query_waits_for_a_worker_at_most_query_wait(home: tuple[Vocabulary, CompiledGrammar],
                                                              fake_workers: None) -> None:
    pool = await started(home, query_wait=0.5)
    try:
        held = [await pool.acquire(f"u{n}", lambda _c: None) for n in range(2)]
        started_at = time.monotonic()
        with pytest.raises(EngineError) as caught:
            await pool.recognize_intent("sleep 0", query=True)
        assert caught.value.code == "intent_busy" and time.monotonic() - started_at < 5
        pool.release(held[0])  # one idle: not enough for a query (it would be the last one)
        with pytest.raises(EngineError):
            await pool.recognize_intent("sleep 0", query=True)
        pool.release(held[1])
        assert (await pool.recognize_intent("sleep 0", query=True))[0] is None
    finally:
        await pool.stop()


async def test_a_pool_of_one_serves_queries_between_utterances(home: tuple[Vocabulary, CompiledGrammar],
                                                                fake_workers: None) -> None:
    pool = await started(home, size=1)
    try:
        assert (await pool.recognize_intent("sleep 0", query=True))[0] is None
        worker = await pool.acquire("u", lambda _c: None)
        query = asyncio.create_task(pool.recognize_intent("sleep 0", query=True))
        await asyncio.sleep(0.2)
        assert not query.done()
        pool.release(worker)
        assert (await asyncio.wait_for(query, 5))[0] is None
    finally:
        await pool.stop()


async def test_a_worker_that_does_not_finish_an_utterance_is_replaced(
        pool: DecoderPool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "FINISH_TIMEOUT", 1.0)
    engine = PocketsphinxStt(pool)
    stream = await engine.open("hang")
    await stream.feed(bytes(960))
    with pytest.raises(EngineError) as caught:
        await stream.finish()
    assert caught.value.code == "stt_timeout"
    await until(lambda: pool.restarts == 1 and pool.busy == 0 and all(w.alive for w in pool.workers))
    stream = await engine.open("fine")
    await stream.feed(bytes(960))
    assert (await asyncio.wait_for(stream.finish(), 10)).text == "fake"


# -- the real worker -----------------------------------------------------------------------------


async def test_a_real_slow_match_is_cut_off_and_the_fresh_worker_recognizes(
        home: tuple[Vocabulary, CompiledGrammar]) -> None:
    """8 KB of commands, allowed through (max_text raised), would keep hassil busy for minutes."""
    pool = await started(home, max_text=20000, intent_timeout=1.0)
    try:
        before = pids(pool)
        started_at = time.monotonic()
        with pytest.raises(EngineError) as caught:
            await pool.recognize_intent(("turn on the kitchen light and " * 300)[:8192], query=True)
        assert caught.value.code == "intent_timeout"
        assert time.monotonic() - started_at < 15
        await until(lambda: pool.restarts == 1 and pool.busy == 0)
        assert len(pids(pool) - before) == 1
        for _ in range(3):  # on either worker
            intent, _cpu = await pool.recognize_intent("turn on the kitchen light", query=True)
            assert intent is not None and intent.name == "HassTurnOn"
    finally:
        await pool.stop()


async def test_the_real_worker_refuses_too_long_text_itself(home: tuple[Vocabulary, CompiledGrammar]) -> None:
    """Defence in depth: text that reached a worker past the pool's check is not matched."""
    pool = await started(home, size=1)
    try:
        worker = pool.workers[0]
        future = worker.expect_intent("direct")
        worker.send(m.RecognizeIntent("direct", "turn on the kitchen light and " * 20))
        with pytest.raises(EngineError) as caught:
            await asyncio.wait_for(future, 10)
        assert "at most 300" in caught.value.message
        assert worker.alive
        intent, _cpu = await pool.recognize_intent("turn on the kitchen light")
        assert intent is not None and intent.name == "HassTurnOn"
    finally:
        await pool.stop()


async def test_a_grammar_swap_survives_a_worker_killed_meanwhile(pool: DecoderPool,
                                                                  home: tuple[Vocabulary, CompiledGrammar]) -> None:
    """The worker matching an overrunning query gets the new grammar after the query: it is killed
    first, which fails no swap; its replacement starts with the new grammar."""
    vocab, grammar = home
    newer = dataclasses.replace(grammar, hash="newer")
    query = asyncio.create_task(pool.recognize_intent("sleep 600", query=True))
    await until(lambda: pool.busy == 1)
    await asyncio.wait_for(pool.set_grammar(vocab, newer), 20)  # no exception
    with pytest.raises(EngineError):
        await query
    await until(lambda: pool.restarts == 1 and pool.busy == 0)
    assert [w.grammar_hash for w in pool.workers] == ["newer", "newer"]
