"""How late the event loop wakes up: one probe task, the last minute of samples kept.

A stalled loop stalls every satellite at once, so the bridge measures it all the time and
publishes the last value, the 99th percentile and the maximum in its statistics.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

INTERVAL = 0.05  # seconds between samples


class LoopLagProbe:
    """Samples the loop's lateness every 50 ms; keeps the last minute."""

    def __init__(self) -> None:
        self.last_ms = 0.0
        self.samples: deque[float] = deque(maxlen=int(60 / INTERVAL))

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(INTERVAL)
            self.last_ms = max(0.0, (time.monotonic() - started - INTERVAL) * 1000)
            self.samples.append(self.last_ms)

    def summary(self) -> dict[str, float]:
        """`loop_lag_ms`, `loop_lag_p99_ms` and `loop_lag_max_ms` as the statistics publish them."""
        lags = sorted(self.samples)
        return {"loop_lag_ms": round(self.last_ms, 2),
                "loop_lag_p99_ms": round(lags[int(len(lags) * 0.99)], 2) if lags else 0.0,
                "loop_lag_max_ms": round(lags[-1], 2) if lags else 0.0}
