"""A pool of decoder worker processes, driven from the event loop without blocking it."""

from __future__ import annotations

import asyncio
import itertools
import logging
import pickle
import sys
from collections.abc import Callable
from typing import Any

from ..engines import EngineError
from .worker import HEADER

_LOGGER = logging.getLogger(__name__)


class DecoderWorker:
    """One `bridge.stt.worker` child process."""

    def __init__(self, index: int, on_partial: Callable[[str, bool], None]) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.utterance: str | None = None  # the utterance this worker decodes now
        self.grammar_hash: str | None = None
        self._futures: dict[str, asyncio.Future[Any]] = {}
        self._reader_task: asyncio.Task[None] | None = None
        self._on_partial = on_partial
        self._ready: asyncio.Future[None] | None = None
        self._grammar_waiters: list[asyncio.Future[str]] = []
        self.pending_intents = 0

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge.stt.worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
        )
        self._ready = asyncio.get_running_loop().create_future()
        self._reader_task = asyncio.create_task(self._read_loop(), name=f"decoder-worker-{self.index}")
        await asyncio.wait_for(asyncio.shield(self._ready), 60)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def send(self, message: tuple[Any, ...]) -> None:
        if not self.alive or self.proc is None or self.proc.stdin is None:
            raise EngineError("stt_worker_died", "speech recognizer worker is not running")
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.write(HEADER.pack(len(data)) + data)

    async def _read_loop(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        try:
            while True:
                header = await stdout.readexactly(HEADER.size)
                (size,) = HEADER.unpack(header)
                message = pickle.loads(await stdout.readexactly(size))
                self._dispatch(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._fail_all(EngineError("stt_worker_died", "speech recognizer worker exited"))

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            if self._ready and not self._ready.done():
                self._ready.set_result(None)
        elif kind == "grammar_ok":
            self.grammar_hash = message[1]
            for waiter in self._grammar_waiters:
                if not waiter.done():
                    waiter.set_result(message[1])
            self._grammar_waiters.clear()
        elif kind == "partial":
            self._on_partial(message[1], message[2])
        elif kind in ("result", "intent"):
            future = self._futures.pop(message[1], None)
            if future and not future.done():
                future.set_result(message[2:])
        elif kind == "error":
            ident = message[1]
            future = self._futures.pop(ident, None) if ident else None
            if future and not future.done():
                future.set_exception(EngineError("stt_failed", message[2]))
            else:
                _LOGGER.error("Decoder worker %d: %s", self.index, message[2])
                for waiter in self._grammar_waiters:
                    if not waiter.done():
                        waiter.set_exception(EngineError("grammar_failed", message[2]))
                self._grammar_waiters.clear()

    def _fail_all(self, err: EngineError) -> None:
        for future in self._futures.values():
            if not future.done():
                future.set_exception(err)
        self._futures.clear()
        for waiter in self._grammar_waiters:
            if not waiter.done():
                waiter.set_exception(err)
        self._grammar_waiters.clear()
        if self._ready and not self._ready.done():
            self._ready.set_exception(err)

    def expect(self, ident: str) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._futures[ident] = future
        return future

    def load_grammar(self, vocab: Any, grammar: Any) -> asyncio.Future[str]:
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._grammar_waiters.append(waiter)
        self.send(("grammar", vocab, grammar))
        return waiter

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.alive:
            try:
                self.send(("exit",))
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                await asyncio.wait_for(self.proc.wait(), 3)
            except (EngineError, TimeoutError, ConnectionError):
                self.proc.kill()
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
        self._grammar: tuple[Any, Any] | None = None
        self._ids = itertools.count()
        self.restarts = 0
        self.utterances_started = 0

    def _on_partial(self, utterance: str, complete: bool) -> None:
        listener = self._partial_listeners.get(utterance)
        if listener:
            listener(complete)

    async def start(self, vocab: Any, grammar: Any) -> None:
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

    async def set_grammar(self, vocab: Any, grammar: Any) -> None:
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

    async def recognize_intent(self, text: str, area_id: str | None = None) -> tuple[dict[str, Any] | None, float]:
        """Intent recognition on the least-loaded worker (never on the event loop).

        `area_id` is the speaking satellite's area, for "turn on the lights" and the like."""
        live = [w for w in self.workers if w.alive]
        if not live:
            raise EngineError("stt_worker_died", "no recognizer worker is running")
        worker = min(live, key=lambda w: (w.utterance is not None, w.pending_intents))
        ident = f"intent-{next(self._ids)}"
        future = worker.expect(ident)
        worker.pending_intents += 1
        try:
            worker.send(("intent", ident, text, area_id))
            intent, cpu = await asyncio.wait_for(future, 10)
        finally:
            worker.pending_intents -= 1
        return intent, cpu

    async def stop(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers), return_exceptions=True)
