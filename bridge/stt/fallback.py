"""A remote speech-to-text stream that falls back to the local recognizer when it fails.

The utterance's audio is kept in memory (bounded by the maximum utterance length) only while it
is being recognized, so a failed remote engine can be replaced by the local one without asking the
user to repeat themselves. Nothing is written to disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..engines import EngineError, SpeechToText, SttStream, Transcript

_LOGGER = logging.getLogger(__name__)
MAX_KEPT = 16000 * 2 * 30


class FallbackSttStream(SttStream):
    def __init__(self, primary: SttStream, local: SpeechToText, session_id: str,
                 on_fallback: Callable[[EngineError], None], *, area: str | None = None) -> None:
        self.primary = primary
        self.local = local
        self.session_id = session_id
        self.area = area
        self.on_fallback = on_fallback
        self._kept: list[bytes] = []
        self._size = 0
        self._failed: EngineError | None = None
        self._prime = b""

    @property
    def complete(self) -> bool:
        """The partial hypothesis is already a whole command (lets the endpointer end sooner)."""
        return self.primary.complete

    async def prime(self, pcm: bytes) -> None:
        self._prime = pcm
        if self._failed is None:
            try:
                await self.primary.prime(pcm)
            except EngineError as err:
                self._failed = err

    async def feed(self, pcm: bytes) -> None:
        if self._size + len(pcm) <= MAX_KEPT:
            self._kept.append(pcm)
            self._size += len(pcm)
        if self._failed is None:
            try:
                await self.primary.feed(pcm)
            except EngineError as err:
                self._failed = err

    async def finish(self) -> Transcript:
        if self._failed is None:
            try:
                return await self.primary.finish()
            except EngineError as err:
                self._failed = err
        else:
            await self.primary.cancel()
        self.on_fallback(self._failed)
        stream = await self.local.open(self.session_id, area=self.area)
        await stream.prime(self._prime)
        for chunk in self._kept:
            await stream.feed(chunk)
        self._kept.clear()
        return await stream.finish()

    async def cancel(self) -> None:
        self._kept.clear()
        await self.primary.cancel()
