"""The local speech-to-text engine: pocketsphinx against the home's grammar, in worker processes.

Its transcripts carry their intent: the worker recognizes it (in the satellite's area) right after
decoding, in the same answer (`Transcript.intent_checked`). A worker that does not answer the end
of an utterance within `FINISH_TIMEOUT` is killed (the pool replaces it) and the utterance fails
with ``stt_timeout``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from ..engines import EngineError, Locality, SpeechToText, SttStream, Transcript
from ..recognition.decoder import PATCHED_BUILD_MARK, pocketsphinx_build
from .messages import Audio, CancelUtterance, EndUtterance, Prime, StartUtterance
from .pool import DecoderPool, DecoderWorker

_LOGGER = logging.getLogger(__name__)

MAX_WAIT_BUFFER = 16000 * 2 * 30  # audio kept while waiting for a free worker (30 s)
FINISH_TIMEOUT = 30.0  # seconds from the end of an utterance to its transcript and intent


class PocketsphinxStream(SttStream):
    def __init__(self, pool: DecoderPool, utterance: str, area: str | None = None) -> None:
        self._pool = pool
        self.utterance = utterance
        self.area = area
        self._complete = False
        self._worker: DecoderWorker | None = None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._prime = b""
        self._acquire = asyncio.create_task(self._get_worker())
        self._closed = False

    @property
    def complete(self) -> bool:
        """The partial hypothesis is already a whole command (lets the endpointer end sooner)."""
        return self._complete

    def _on_partial(self, complete: bool) -> None:
        self._complete = complete

    async def _get_worker(self) -> DecoderWorker:
        worker = await self._pool.acquire(self.utterance, self._on_partial)
        try:
            worker.send(StartUtterance(self.utterance))
            if self._prime:
                worker.send(Prime(self.utterance, self._prime))
            for chunk in self._buffer:
                worker.send(Audio(self.utterance, chunk))
        except EngineError:
            self._pool.release(worker)
            raise
        self._buffer.clear()
        self._worker = worker
        return worker

    async def prime(self, pcm: bytes) -> None:
        if self._closed or not pcm:
            return
        if self._worker is not None:
            self._worker.send(Prime(self.utterance, pcm))
        else:
            self._prime = pcm

    async def feed(self, pcm: bytes) -> None:
        if self._closed:
            return
        if self._worker is not None:
            self._worker.send(Audio(self.utterance, pcm))
        elif self._buffered + len(pcm) <= MAX_WAIT_BUFFER:
            self._buffer.append(pcm)
            self._buffered += len(pcm)

    async def finish(self) -> Transcript:
        if self._closed:
            raise EngineError("stt_cancelled", "the utterance was cancelled")
        self._closed = True
        worker = await self._acquire
        future = worker.expect_result(self.utterance)
        try:
            worker.send(EndUtterance(self.utterance, self.area, self._pool.verdict_settings))
            try:
                result = await asyncio.wait_for(future, FINISH_TIMEOUT)
            except TimeoutError:
                worker.kill()  # it cannot be trusted with the next utterance: replaced on release
                raise EngineError("stt_timeout", f"the recognizer did not answer within {FINISH_TIMEOUT:g} s; "
                                  "its worker was replaced") from None
        finally:
            self._pool.release(worker)
        return Transcript(
            text=result.text, confidence=result.confidence, rejected=result.rejected,
            engine="pocketsphinx", locality=Locality.IN_PROCESS,
            audio_seconds=result.audio_seconds, cpu_seconds=result.cpu_seconds,
            intent=result.intent, intent_checked=result.intent_error is None,
            intent_cpu_seconds=result.intent_cpu_seconds, verdict=result.verdict,
        )

    async def cancel(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._worker is None:
            self._acquire.cancel()
            try:
                worker = await self._acquire
            except (asyncio.CancelledError, EngineError):
                return
        else:
            worker = self._worker
        try:
            worker.send(CancelUtterance(self.utterance))
        except EngineError:
            pass
        self._pool.release(worker)


class PocketsphinxStt(SpeechToText):
    name = "pocketsphinx"
    locality = Locality.IN_PROCESS

    def __init__(self, pool: DecoderPool) -> None:
        self.pool = pool
        self._ids = itertools.count()
        self.build = pocketsphinx_build()
        if PATCHED_BUILD_MARK not in self.build:
            _LOGGER.warning("pocketsphinx %s is not Hearth's patched build: about twice the "
                            "decoding CPU, and noisy speech is understood less often (no "
                            "cepstral scaling); scripts/_env.sh builds it (docs/recognition.md)",
                            self.build)

    async def open(self, session_id: str, *, area: str | None = None) -> PocketsphinxStream:
        return PocketsphinxStream(self.pool, f"{session_id}#{next(self._ids)}", area)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "locality": str(self.locality), "workers": self.pool.size,
                "model": "en-us", "grammar": "home", "pocketsphinx": self.build}
