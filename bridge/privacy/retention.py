"""Keeping the last few utterances' audio in memory, only when the owner chose retention=memory.

Nothing here touches the disk: the objects refuse to be pickled, audio is held in bytearrays
that are zeroed when dropped, and every access re-reads the policy so switching retention back
to ``none`` drops what was kept at the next call (call :meth:`UtteranceRetention.enforce`
after a policy change to drop it at once).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from .policy import Policy, Retention

#: Longest audio kept per utterance: 30 s of 16 kHz 16-bit mono.
MAX_BYTES_PER_ITEM = 16000 * 2 * 30


@dataclass(eq=False)
class RetainedUtterance:
    """One kept utterance (memory only)."""

    time: float
    satellite: str
    session_id: str
    _pcm: bytearray = field(repr=False)

    @property
    def pcm(self) -> bytes:
        """A copy of the audio: 16 kHz, 16-bit signed little-endian, mono."""
        return bytes(self._pcm)

    def wipe(self) -> None:
        """Overwrite and drop the audio."""
        self._pcm[:] = bytes(len(self._pcm))
        self._pcm.clear()

    def __reduce__(self) -> NoReturn:
        raise TypeError("retained audio must never be serialized")


class UtteranceRetention:
    """The last `max_items` utterances' PCM, kept only while ``policy.retention`` is MEMORY."""

    def __init__(
        self,
        policy_getter: Callable[[], Policy],
        max_items: int = 5,
        max_bytes_per_item: int = MAX_BYTES_PER_ITEM,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self._policy = policy_getter
        self._max_bytes = max_bytes_per_item
        self._items: deque[RetainedUtterance] = deque()
        self._max_items = max_items

    def _enabled(self) -> bool:
        return self._policy().retention is Retention.MEMORY

    def keep(self, satellite: str, session_id: str, pcm: bytes, now: float) -> bool:
        """Keep `pcm` (truncated to the per-item limit) if retention is MEMORY; True if kept."""
        if not self._enabled():
            self.purge()
            return False
        item = RetainedUtterance(now, satellite, session_id, bytearray(pcm[: self._max_bytes]))
        self._items.append(item)
        while len(self._items) > self._max_items:
            self._items.popleft().wipe()
        return True

    def items(self) -> tuple[RetainedUtterance, ...]:
        """The kept utterances, oldest first (empty, and purged, unless retention is MEMORY)."""
        self.enforce()
        return tuple(self._items)

    def enforce(self) -> int:
        """Drop everything if the policy no longer allows retention; returns how many."""
        return 0 if self._enabled() else self.purge()

    def purge(self) -> int:
        """Wipe and drop every kept utterance; returns how many there were."""
        count = len(self._items)
        while self._items:
            self._items.popleft().wipe()
        return count

    def __len__(self) -> int:
        self.enforce()
        return len(self._items)

    def __reduce__(self) -> NoReturn:
        raise TypeError("retained audio must never be serialized")
