"""Counting and reporting bad input: logged once per cause, counted always."""

from __future__ import annotations

import logging
import time
from collections import Counter

_LOGGER = logging.getLogger("bridge")


class ErrorReporter:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._logged: set[tuple[str, str | None]] = set()
        self._last_event: dict[tuple[str, str | None], float] = {}

    def report(self, code: str, message: str, satellite: str | None = None) -> bool:
        """Counts the error, logs it the first time for (code, satellite); returns True when an
        error event should be published (at most one per second per cause, so a broken satellite
        streaming garbage cannot flood the broker)."""
        self.counts[code] += 1
        key = (code, satellite)
        if key not in self._logged:
            self._logged.add(key)
            _LOGGER.warning("%s%s: %s (further %s errors counted, not logged)",
                            f"satellite {satellite}: " if satellite else "", code, message, code)
        now = time.monotonic()
        if now - self._last_event.get(key, 0.0) >= 1.0:
            self._last_event[key] = now
            return True
        return False
