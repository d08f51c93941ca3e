"""A pool of decoder worker processes, driven from the event loop without blocking it.

A :class:`DecoderWorker` owns one `bridge.stt.worker` child and the futures waiting for its
answers; the :class:`DecoderPool` hands each utterance a worker of its own and runs text-only
intent recognition (Hermes NLU queries, other engines' transcripts) on the least-loaded one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sys
from collections.abc import Callable

from ..engines import EngineError, IntentResult
from ..recognition import CompiledGrammar, Vocabulary
from .messages import (
    HEADER,
    Compiled,
    Exit,
    Failed,
    FromWorker,
    GrammarLoaded,
    IntentRecognized,
    LoadGrammar,
    MessageError,
    Partial,
    Ready,
    RecognizeIntent,
    ToWorker,
    UtteranceResult,
    decode_from_worker,
    encode,
    frame_size,
)

_LOGGER = logging.getLogger(__name__)


class DecoderWorker:
    """One `bridge.stt.worker` child process."""

    command: tuple[str, ...] = (sys.executable, "-m", "bridge.stt.worker")

    def __init__(self, index: int, on_partial: Callable[[str, bool], None]) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.utterance: str | None = None  # the utterance this worker decodes now
        self.grammar_hash: str | None = None
        self._results: dict[str, asyncio.Future[UtteranceResult]] = {}
        self._intents: dict[str, asyncio.Future[IntentRecognized]] = {}
        self._reader_task: asyncio.Task[None] | None = None
        self._on_partial = on_partial
        self._ready: asyncio.Future[None] | None = None
        self._grammar_waiters: list[asyncio.Future[str]] = []
        self._listening = False  # the reader is reading this worker's answers
        self.pending_intents = 0

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
        )
        self._ready = asyncio.get_running_loop().create_future()
        self._listening = True
        self._reader_task = asyncio.create_task(self._read_loop(), name=f"decoder-worker-{self.index}")
        await asyncio.wait_for(asyncio.shield(self._ready), 60)

    @property
    def alive(self) -> bool:
        """Running, and its answers are read (a worker that sent nonsense is dead to the pool,
        even before its process is reaped)."""
        return self._listening and self.proc is not None and self.proc.returncode is None

    def send(self, message: ToWorker) -> None:
        if not self.alive or self.proc is None or self.proc.stdin is None:
            raise EngineError("stt_worker_died", "speech recognizer worker is not running")
        self.proc.stdin.write(encode(message))

    async def _read_loop(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        error = EngineError("stt_worker_died", "speech recognizer worker exited")
        try:
            while True:
                size = frame_size(await stdout.readexactly(HEADER.size))
                self._dispatch(decode_from_worker(await stdout.readexactly(size)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except MessageError as err:
            # A worker that speaks nonsense cannot be trusted with the next utterance either.
            _LOGGER.error("Decoder worker %d sent a malformed message: %s", self.index, err)
            error = EngineError("stt_worker_failed", f"speech recognizer worker sent a malformed message: {err}")
            self.kill()
        finally:
            self._listening = False
            self._fail_all(error)

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def _dispatch(self, message: FromWorker) -> None:
        match message:
            case Ready():
                if self._ready and not self._ready.done():
                    self._ready.set_result(None)
            case GrammarLoaded(grammar_hash):
                self.grammar_hash = grammar_hash
                for waiter in self._grammar_waiters:
                    if not waiter.done():
                        waiter.set_result(grammar_hash)
                self._grammar_waiters.clear()
            case Partial(utterance, complete):
                self._on_partial(utterance, complete)
            case UtteranceResult():
                _resolve(self._results.pop(message.utterance, None), message)
            case IntentRecognized():
                _resolve(self._intents.pop(message.request, None), message)
            case Failed(ident, text):
                future = (self._results.pop(ident, None) or self._intents.pop(ident, None)) if ident else None
                if future and not future.done():
                    future.set_exception(EngineError("stt_failed", text))
                else:
                    _LOGGER.error("Decoder worker %d: %s", self.index, text)
                    for waiter in self._grammar_waiters:
                        if not waiter.done():
                            waiter.set_exception(EngineError("grammar_failed", text))
                    self._grammar_waiters.clear()
            case Compiled():
                _LOGGER.error("Decoder worker %d sent a compiled grammar nobody asked for", self.index)

    def _fail_all(self, err: EngineError) -> None:
        futures: list[asyncio.Future[UtteranceResult] | asyncio.Future[IntentRecognized]] = [
            *self._results.values(), *self._intents.values()]
        for future in futures:
            if not future.done():
                future.set_exception(err)
        self._results.clear()
        self._intents.clear()
        for waiter in self._grammar_waiters:
            if not waiter.done():
                waiter.set_exception(err)
        self._grammar_waiters.clear()
        if self._ready and not self._ready.done():
            self._ready.set_exception(err)

    def expect_result(self, utterance: str) -> asyncio.Future[UtteranceResult]:
        future: asyncio.Future[UtteranceResult] = asyncio.get_running_loop().create_future()
        self._results[utterance] = future
        return future

    def expect_intent(self, request: str) -> asyncio.Future[IntentRecognized]:
        future: asyncio.Future[IntentRecognized] = asyncio.get_running_loop().create_future()
        self._intents[request] = future
        return future

    def load_grammar(self, vocab: Vocabulary, grammar: CompiledGrammar) -> asyncio.Future[str]:
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._grammar_waiters.append(waiter)
        self.send(LoadGrammar(vocab, grammar))
        return waiter

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.alive:
            try:
                self.send(Exit())
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                await asyncio.wait_for(self.proc.wait(), 3)
            except (EngineError, TimeoutError, ConnectionError):
                self.kill()
                await self.proc.wait()
        elif self.proc.returncode is None:
            self.kill()
            await self.proc.wait()
        if self._reader_task:
            await asyncio.gather(self._reader_task, return_exceptions=True)


class DecoderPool:
    """Hands each utterance a worker of its own; utterances beyond the pool wait their turn."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.workers: list[DecoderWorker] = []
        self._idle: asyncio.Queue[DecoderWorker] = asyncio.Queue()
        self._partial_listeners: dict[str, Callable[[bool], None]] = {}
        self._grammar: tuple[Vocabulary, CompiledGrammar] | None = None
        self._ids = itertools.count()
        self.restarts = 0
        self.utterances_started = 0

    def _on_partial(self, utterance: str, complete: bool) -> None:
        listener = self._partial_listeners.get(utterance)
        if listener:
            listener(complete)

    async def start(self, vocab: Vocabulary, grammar: CompiledGrammar) -> None:
        self._grammar = (vocab, grammar)
        for index in range(self.size):
            worker = await self._spawn(index)
            self.workers.append(worker)
            self._idle.put_nowait(worker)

    async def _spawn(self, index: int) -> DecoderWorker:
        worker = DecoderWorker(index, self._on_partial)
        await worker.start()
        if self._grammar is not None:
            await worker.load_grammar(*self._grammar)
        return worker

    async def set_grammar(self, vocab: Vocabulary, grammar: CompiledGrammar) -> None:
        """Every worker switches after its current utterance; returns when all have switched."""
        self._grammar = (vocab, grammar)
        waiters = [w.load_grammar(vocab, grammar) for w in self.workers if w.alive]
        await asyncio.gather(*waiters)

    async def acquire(self, utterance: str, on_partial: Callable[[bool], None]) -> DecoderWorker:
        while True:
            worker = await self._idle.get()
            if worker.alive:
                break
            worker = await self._replace(worker)
            break
        worker.utterance = utterance
        self.utterances_started += 1
        self._partial_listeners[utterance] = on_partial
        return worker

    async def _replace(self, dead: DecoderWorker) -> DecoderWorker:
        self.restarts += 1
        _LOGGER.warning("Restarting decoder worker %d", dead.index)
        fresh = await self._spawn(dead.index)
        self.workers[self.workers.index(dead)] = fresh
        return fresh

    def release(self, worker: DecoderWorker) -> None:
        if worker.utterance:
            self._partial_listeners.pop(worker.utterance, None)
        worker.utterance = None
        self._idle.put_nowait(worker)

    @property
    def busy(self) -> int:
        return self.size - self._idle.qsize()

    async def recognize_intent(self, text: str, area: str | None = None) -> tuple[IntentResult | None, float]:
        """Intent recognition on the least-loaded worker (never on the event loop): the intent,
        or None, and the CPU seconds it took.

        For text that did not come from the local recognizer (Hermes NLU queries, other engines'
        transcripts): the local engine's transcripts carry their intent already. `area` is the
        speaking satellite's area, for "turn on the lights" and the like."""
        live = [w for w in self.workers if w.alive]
        if not live:
            raise EngineError("stt_worker_died", "no recognizer worker is running")
        worker = min(live, key=lambda w: (w.utterance is not None, w.pending_intents))
        ident = f"intent-{next(self._ids)}"
        future = worker.expect_intent(ident)
        worker.pending_intents += 1
        try:
            worker.send(RecognizeIntent(ident, text, area))
            answer = await asyncio.wait_for(future, 10)
        finally:
            worker.pending_intents -= 1
        return answer.intent, answer.cpu_seconds

    async def stop(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers), return_exceptions=True)


def _resolve[T](future: asyncio.Future[T] | None, value: T) -> None:
    if future is not None and not future.done():
        future.set_result(value)
