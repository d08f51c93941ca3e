"""Refusal notices: telling a refused satellite why, on its own protocol's topic, within bounds.

A satellite the bridge will not serve (the table is full, its id breaks the id rule, a Hermes
client names a Hearth satellite, session control is not allowed) is told why where it listens:
`<prefix>/satellite/<id>/error` for Hearth, `hermes/error/asr` (or `hermes/error/tts`) for
Hermes. The error is always counted by the reporter (`<prefix>/bridge/error`); this module only
decides whether one more notice may go out, so that a flood of frames or of made-up ids cannot
turn into a flood of messages: at most one notice per (code, id) every `NOTICE_REPEAT` seconds,
and at most `NOTICE_BURST` notices at once across all ids, refilled at `NOTICES_PER_SECOND`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

#: A satellite that keeps sending (a Hermes site streams ~30 frames a second) is told again at
#: most this often: enough for a person watching the topic, nothing for the broker.
NOTICE_REPEAT = 10.0
#: Notices across all ids: a burst of this many, then this many a second (a flood of new ids).
NOTICE_BURST = 20
NOTICES_PER_SECOND = 5.0
#: (code, id) pairs remembered for NOTICE_REPEAT; the oldest is forgotten beyond this many.
NOTICE_MEMORY = 512


class NoticeLimiter:
    """Whether a refusal notice for (code, id) may be published now (bounded memory)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._tokens = float(NOTICE_BURST)
        self._refilled = clock()
        self.suppressed = 0  #: notices not sent (the errors themselves are still counted)

    def allow(self, code: str, sat_id: str) -> bool:
        now = self._clock()
        key = (code, sat_id)
        last = self._last.get(key)
        if last is not None and now - last < NOTICE_REPEAT:
            self.suppressed += 1
            return False
        self._tokens = min(float(NOTICE_BURST), self._tokens + (now - self._refilled) * NOTICES_PER_SECOND)
        self._refilled = now
        if self._tokens < 1.0:
            self.suppressed += 1
            return False
        self._tokens -= 1.0
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > NOTICE_MEMORY:
            self._last.popitem(last=False)
        return True
