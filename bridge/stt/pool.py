"""A pool of decoder worker processes, driven from the event loop without blocking it.

A :class:`DecoderWorker` owns one `bridge.stt.worker` child and the futures waiting for its
answers; the :class:`DecoderPool` hands each utterance a worker of its own and runs text-only
intent recognition (Hermes NLU queries, other engines' transcripts) on idle workers, bounded so
that no message can take recognition away from the satellites: text over `max_text` characters is
refused before any worker sees it; a match that overruns `intent_timeout` gets its worker killed and
replaced (in the background, as is any worker that died or overran an utterance) and an
``intent_timeout`` error. A worker runs one thing at a time, so text is only ever sent to an idle
worker, taken from the same queue as utterances: nothing waits behind it on that worker. Hermes
NLU queries (``query=True``) go further: one at a time, never on the last idle worker (unless the
pool has one worker), so a satellite that wakes finds a worker free; at most
`max_waiting_queries` wait, each at most `query_wait` seconds, and the rest are refused at once
(``intent_busy``). Another engine's transcript is a satellite's own utterance and takes any idle
worker, in turn with the utterances. docs/recognition.md, "Bounded intent matching".
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
from ..recognition.intents import MAX_INTENT_TEXT, intent_text_problem
from ..recognition.verdict import VerdictSettings
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

INTENT_TIMEOUT = 5.0
"""Seconds one intent match may take before its worker is killed (`limits.intent_timeout`): four
times the slowest text of the longest allowed length (MAX_INTENT_TEXT) measured, 1.2 s, for slower
machines and busy cores; real commands take 7-60 ms."""
MAX_WAITING_QUERIES = 8
"""NLU queries that may wait behind the one being matched; more are refused at once."""
QUERY_WAIT = 60.0
"""Seconds an NLU query may wait for a worker before it is refused."""


class DecoderWorker:
    """One `bridge.stt.worker` child process."""

    command: tuple[str, ...] = (sys.executable, "-m", "bridge.stt.worker")

    def __init__(self, index: int, on_partial: Callable[[str, bool], None], args: tuple[str, ...] = ()) -> None:
        self.index = index
        self.args = args  # after `command`
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
        self._killed = False  # dead to the pool from the moment it is killed, before it is reaped

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.command, *self.args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
        )
        self._ready = asyncio.get_running_loop().create_future()
        self._listening = True
        self._reader_task = asyncio.create_task(self._read_loop(), name=f"decoder-worker-{self.index}")
        await asyncio.wait_for(asyncio.shield(self._ready), 60)

    @property
    def alive(self) -> bool:
        """Running, and its answers are read (a worker that sent nonsense, or was killed, is dead
        to the pool even before its process is reaped)."""
        return not self._killed and self._listening and self.proc is not None and self.proc.returncode is None

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
        self._killed = True
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def abort(self) -> None:
        """Killed at once, reaped, its reader ended (whatever it was doing)."""
        self.kill()
        if self.proc is not None:
            await self.proc.wait()
        if self._reader_task:
            await asyncio.gather(self._reader_task, return_exceptions=True)

    async def grammar_settled(self, timeout: float = 60) -> None:
        """Returns once the grammar switches asked of this worker are done (or failed)."""
        if self._grammar_waiters:
            waiters = [asyncio.shield(w) for w in self._grammar_waiters]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), timeout)

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

    def __init__(self, size: int, *, max_text: int = MAX_INTENT_TEXT, intent_timeout: float = INTENT_TIMEOUT,
                 max_waiting_queries: int = MAX_WAITING_QUERIES, query_wait: float = QUERY_WAIT) -> None:
        self.size = size
        #: the verdict's thresholds, sent with the end of each utterance (the bridge's config)
        self.verdict_settings = VerdictSettings()
        #: decode each utterance with the open ear too (docs/recognition.md, "The open ear")
        self.open_ear = True
        self.max_text = max_text
        self.intent_timeout = intent_timeout
        self.max_waiting_queries = max_waiting_queries
        self.query_wait = query_wait
        self.workers: list[DecoderWorker] = []
        self._idle: asyncio.Queue[DecoderWorker] = asyncio.Queue()
        self._released = asyncio.Event()  # a worker was put back in the idle queue
        self._lane = asyncio.Lock()  # NLU queries, one at a time
        self._queries = 0  # NLU queries being matched or waiting
        self._replacing: set[asyncio.Task[None]] = set()
        self._closed = False
        self._partial_listeners: dict[str, Callable[[bool], None]] = {}
        self._grammar: tuple[Vocabulary, CompiledGrammar] | None = None
        self._ids = itertools.count()
        self.restarts = 0
        self.utterances_started = 0
        self.intent_timeouts = 0

    def _on_partial(self, utterance: str, complete: bool) -> None:
        listener = self._partial_listeners.get(utterance)
        if listener:
            listener(complete)

    async def start(self, vocab: Vocabulary, grammar: CompiledGrammar) -> None:
        self._grammar = (vocab, grammar)
        for index in range(self.size):
            worker = await self._spawn(index)
            self.workers.append(worker)
            self._put_idle(worker)

    async def _spawn(self, index: int) -> DecoderWorker:
        """A started worker with the grammar in service (nothing left running if that fails)."""
        worker = DecoderWorker(index, self._on_partial, ("--max-intent-text", str(self.max_text),
                                                         *(() if self.open_ear else ("--no-open-ear",))))
        try:
            await worker.start()
            # the grammar may be swapped while this one loads: load until it has the latest
            while self._grammar is not None and worker.grammar_hash != self._grammar[1].hash:
                await worker.load_grammar(*self._grammar)
        except BaseException:
            await worker.abort()
            raise
        return worker

    async def set_grammar(self, vocab: Vocabulary, grammar: CompiledGrammar) -> None:
        """Every worker switches after its current utterance; returns when all have switched.

        A worker that dies meanwhile (killed for overrunning a match) is no failure of the grammar,
        unless none loaded it: its replacement starts with this one."""
        self._grammar = (vocab, grammar)
        waiters = [w.load_grammar(vocab, grammar) for w in self.workers if w.alive]
        outcomes = await asyncio.gather(*waiters, return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        for failure in failures:
            died = isinstance(failure, EngineError) and failure.code in ("stt_worker_died", "stt_worker_failed")
            if not died or len(failures) == len(outcomes):
                raise failure

    def _put_idle(self, worker: DecoderWorker) -> None:
        self._idle.put_nowait(worker)
        self._released.set()

    async def _take(self) -> DecoderWorker:
        """The next idle worker (FIFO with every other taker), replaced first if it died."""
        worker = await self._idle.get()
        return worker if worker.alive else await self._replace(worker)

    async def acquire(self, utterance: str, on_partial: Callable[[bool], None]) -> DecoderWorker:
        worker = await self._take()
        worker.utterance = utterance
        self.utterances_started += 1
        self._partial_listeners[utterance] = on_partial
        return worker

    async def _replace(self, dead: DecoderWorker) -> DecoderWorker:
        """A fresh worker in `dead`'s place; if none can be started, `dead` goes back to the idle
        queue (the next taker tries again) and EngineError is raised."""
        self.restarts += 1
        _LOGGER.warning("Restarting decoder worker %d", dead.index)
        try:
            await dead.abort()
            fresh = await self._spawn(dead.index)
        except BaseException as err:
            self._put_idle(dead)
            if isinstance(err, Exception) and not isinstance(err, EngineError):
                raise EngineError("stt_worker_died",
                                  f"speech recognizer worker could not be restarted: {err!r}") from err
            raise
        self.workers[self.workers.index(dead)] = fresh
        return fresh

    def release(self, worker: DecoderWorker) -> None:
        """Back to the idle queue; a worker that died or was killed is replaced first, in the
        background, so the next utterance does not wait for its start."""
        if worker.utterance:
            self._partial_listeners.pop(worker.utterance, None)
        worker.utterance = None
        if worker.alive or self._closed:
            self._put_idle(worker)
            return
        task = asyncio.create_task(self._restart(worker), name=f"restart-decoder-worker-{worker.index}")
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _restart(self, dead: DecoderWorker) -> None:
        try:
            fresh = await self._replace(dead)
        except EngineError as err:
            _LOGGER.error("Decoder worker %d: %s", dead.index, err.message)
            return
        self._put_idle(fresh)

    @property
    def busy(self) -> int:
        return self.size - self._idle.qsize()

    async def recognize_intent(self, text: str, area: str | None = None, *,
                               query: bool = False) -> tuple[IntentResult | None, float]:
        """Intent recognition on an idle worker (never on the event loop): the intent, or None,
        and the CPU seconds it took.

        For text that did not come from the local recognizer (`query`: Hermes NLU queries; else
        other engines' transcripts): the local engine's transcripts carry their intent already.
        `area` is the speaking satellite's area, for "turn on the lights" and the like.
        EngineError ``intent_text_too_long``, ``intent_timeout`` or (queries) ``intent_busy``
        when the text is refused; see the module's docstring."""
        problem = intent_text_problem(text, self.max_text)
        if problem is not None:
            raise EngineError("intent_text_too_long", problem)
        if not query:
            return await self._match(await self._take(), text, area)
        if self._queries > self.max_waiting_queries:
            raise EngineError("intent_busy", f"{self._queries} NLU queries are waiting already; try again later")
        self._queries += 1
        try:
            try:
                async with asyncio.timeout(self.query_wait):
                    await self._lane.acquire()
                    try:
                        await self._spare_worker()
                    except BaseException:
                        self._lane.release()
                        raise
            except TimeoutError:
                raise EngineError("intent_busy",
                                  f"no recognizer worker was free within {self.query_wait:g} s") from None
            try:
                return await self._match(await self._take(), text, area)
            finally:
                self._lane.release()
        finally:
            self._queries -= 1

    async def _spare_worker(self) -> None:
        """Waits until an idle worker can be taken with another left idle (any, in a pool of one)."""
        spare = 2 if self.size > 1 else 1
        while self._idle.qsize() < spare:
            self._released.clear()
            await self._released.wait()

    async def _match(self, worker: DecoderWorker, text: str, area: str | None) -> tuple[IntentResult | None, float]:
        """`text` matched on `worker` (taken from the idle queue, given back here) within the
        deadline; a worker that overruns it is killed and replaced."""
        try:
            await worker.grammar_settled()  # a grammar switch under way is not the match's time
            ident = f"intent-{next(self._ids)}"
            future = worker.expect_intent(ident)
            worker.send(RecognizeIntent(ident, text, area))
            try:
                answer = await asyncio.wait_for(future, self.intent_timeout)
            except TimeoutError:
                self.intent_timeouts += 1
                _LOGGER.warning("Intent matching of %d characters took over %g s on decoder worker %d: "
                                "killed", len(text), self.intent_timeout, worker.index)
                worker.kill()
                raise EngineError("intent_timeout", f"intent matching took longer than {self.intent_timeout:g} s; "
                                  "its recognizer worker was replaced") from None
        finally:
            self.release(worker)
        return answer.intent, answer.cpu_seconds

    async def stop(self) -> None:
        self._closed = True
        for task in self._replacing:
            task.cancel()
        await asyncio.gather(*self._replacing, return_exceptions=True)
        await asyncio.gather(*(w.stop() for w in self.workers), return_exceptions=True)


def _resolve[T](future: asyncio.Future[T] | None, value: T) -> None:
    if future is not None and not future.done():
        future.set_result(value)
