"""Counting and reporting bad input: every error counted by code; published and logged in bounds.

Each error is counted under its code, always. Whether it is also published (`bridge/error`, the
satellite's `error`) is rate-limited per code across all satellites — a token bucket of
`PUBLISH_BURST` then `PUBLISH_PER_SECOND` — and to once a second per (code, satellite), so a
satellite streaming garbage or a flood of 20,000 made-up satellite ids cannot flood the broker
or the journal. The first error of a code is logged with its message; after that one summary
line per code at most every `SUMMARY_INTERVAL` seconds says how many more came, from how many
satellites, and how many were not published. Memory is bounded: one small record per code (codes
are the bridge's own constants, capped at `MAX_CODES`) and a bounded table of recent
(code, satellite) pairs.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

_LOGGER = logging.getLogger("bridge")

PUBLISH_PER_SECOND = 5.0  #: error events published per code per second, across satellites
PUBLISH_BURST = 20  #: ... after a burst of this many
PER_SATELLITE_INTERVAL = 1.0  #: seconds between two published events of one (code, satellite)
SUMMARY_INTERVAL = 60.0  #: seconds between two log lines of one code
MAX_CODES = 256  #: codes tracked one by one; more share one record (there are far fewer)
RECENT_PAIRS = 1024  #: (code, satellite) pairs remembered for the per-satellite interval
MAX_SATELLITES_NAMED = 1000  #: distinct satellites counted per summary
OTHER_CODES = "other"


@dataclass(slots=True)
class _Code:
    """What is known about one error code."""

    tokens: float
    refilled: float
    logged_at: float | None = None  # when the last log line of this code was written
    unlogged: int = 0  # errors since that line
    unpublished: int = 0  # ... of which not published
    satellites: set[str] = field(default_factory=set)  # distinct satellites since that line (bounded)
    last: str = ""  # the last unlogged error's message


class ErrorReporter:
    """Counts every error; says which ones to publish; logs the first and then summaries."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.counts: Counter[str] = Counter()
        #: errors counted but not published, by code
        self.unpublished: Counter[str] = Counter()
        self._clock = clock
        self._codes: dict[str, _Code] = {}
        self._recent: OrderedDict[tuple[str, str | None], float] = OrderedDict()

    def report(self, code: str, message: str, satellite: str | None = None) -> bool:
        """Counts the error and logs it within bounds; True when an error event should be
        published for it (rate-limited per code and per (code, satellite))."""
        now = self._clock()
        self.counts[code] += 1
        state = self._state(code, now)
        if state.logged_at is None:
            state.logged_at = now
            _LOGGER.warning("%s%s: %s (more %s errors are counted and summarized every %.0f s)",
                            f"satellite {satellite}: " if satellite else "", code, message, code,
                            SUMMARY_INTERVAL)
            published = self._may_publish(code, satellite, state, now)
        else:
            state.unlogged += 1
            state.last = f"satellite {satellite}: {message}" if satellite else message
            if satellite is not None and len(state.satellites) < MAX_SATELLITES_NAMED:
                state.satellites.add(satellite)
            published = self._may_publish(code, satellite, state, now)
            if not published:
                state.unpublished += 1
            if now - state.logged_at >= SUMMARY_INTERVAL:
                self._summarize(code, state, now)
        if not published:
            self.unpublished[code] += 1
        return published

    def flush(self) -> None:
        """Writes the summary of every code whose interval has passed (call it now and then, so
        the last errors of a burst are logged even when no further error comes)."""
        now = self._clock()
        for code, state in self._codes.items():
            if state.unlogged and state.logged_at is not None and now - state.logged_at >= SUMMARY_INTERVAL:
                self._summarize(code, state, now)

    # -- internals ------------------------------------------------------------------------------

    def _state(self, code: str, now: float) -> _Code:
        state = self._codes.get(code)
        if state is None:
            if len(self._codes) >= MAX_CODES:
                code = OTHER_CODES
                state = self._codes.get(code)
            if state is None:
                state = self._codes[code] = _Code(tokens=float(PUBLISH_BURST), refilled=now)
        return state

    def _may_publish(self, code: str, satellite: str | None, state: _Code, now: float) -> bool:
        state.tokens = min(float(PUBLISH_BURST), state.tokens + (now - state.refilled) * PUBLISH_PER_SECOND)
        state.refilled = now
        key = (code, satellite)
        last = self._recent.get(key)
        if last is not None and now - last < PER_SATELLITE_INTERVAL:
            return False
        if state.tokens < 1.0:
            return False
        state.tokens -= 1.0
        self._recent[key] = now
        self._recent.move_to_end(key)
        while len(self._recent) > RECENT_PAIRS:
            self._recent.popitem(last=False)
        return True

    def _summarize(self, code: str, state: _Code, now: float) -> None:
        since = now - (state.logged_at or now)
        named = len(state.satellites)
        satellites = f"{named}{'+' if named >= MAX_SATELLITES_NAMED else ''} satellite(s)"
        _LOGGER.warning("%s: %d more in the last %.0f s from %s, %d not published (%d in all); last: %s",
                        code, state.unlogged, since, satellites, state.unpublished, self.counts[code], state.last)
        state.logged_at = now
        state.unlogged = 0
        state.unpublished = 0
        state.satellites = set()
        state.last = ""
