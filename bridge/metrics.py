"""What the bridge measures, for Prometheus (`/metrics`) and the status page.

Each bridge has a registry of its own (never prometheus_client's global one), so two bridges in
one process, or tests, do not share series. Two kinds of figures feed it:

- observed as they happen, through small hooks in `bridge.service`: each finished utterance's
  end of speech → text and → intent, the decoder's CPU per second of audio, utterances and
  rejections per satellite, and a satellite's input level (`observe_result`, `input_level`);
- read when scraped from the counters the bridge keeps anyway (`_BridgeCollector`): refused cloud
  requests, bytes off the LAN, dropped frames by reason, reconnects, satellites online, queue
  depths, event-loop lag; the process collector adds resident memory and CPU.

The only unbounded-looking label is the satellite id, and it is bounded: only satellites in the
bridge's table (at most `limits.max_satellites`) are observed, and `forget` removes a satellite's
series when it leaves the table. Nothing here ever holds what was said, except the last text per
satellite while its audio is retained (retention "memory"; `SatelliteFigures.text`, dropped with
that audio: a purge, retention "none", or newer utterances pushing it out).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .service import Bridge

#: seconds; end of speech to text is ~0.1-1.5 s on the machines Hearth targets
LATENCY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
CPU_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
#: the status page's histogram of the last hour: bucket upper edges in milliseconds
PAGE_BUCKETS_MS = (100, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000)
HISTORY_SECONDS = 3600.0
HISTORY_MAX = 20000  #: latencies kept for the page's last hour (bounded however busy the home)
LEVEL_INTERVAL = 0.1  #: seconds between input level measurements per satellite
LEVEL_FLOOR_DB = -90.0
PER_SATELLITE_DROPS = {"queue_full": "dropped_queue_full", "late": "late", "gap": "gaps",
                       "rate_limited": "rate_limited"}


@dataclass(slots=True)
class SatelliteFigures:
    """What the status page shows about one satellite beyond its state (content-free)."""

    utterances: int = 0
    rejections: int = 0
    latency_ms: float | None = None  #: the last end of speech → text
    level_db: float | None = None  #: the last input level, dBFS
    level_at: float = 0.0  #: time.monotonic() of `level_db`
    text: str | None = None  #: the last text, only while its audio is retained (retention "memory")
    text_session: str | None = None  #: the session `text` belongs to


def level_dbfs(pcm: bytes) -> float:
    """The RMS level of 16-bit PCM in dB relative to full scale (LEVEL_FLOOR_DB for silence)."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float32)
    if samples.size == 0:
        return LEVEL_FLOOR_DB
    rms = float(np.sqrt(np.mean(samples * samples))) / 32768.0
    return max(LEVEL_FLOOR_DB, 20.0 * math.log10(rms)) if rms > 0 else LEVEL_FLOOR_DB


class BridgeMetrics:
    """One bridge's metrics registry and the figures its status page shows."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.started = time.time()
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["satellite"]
        self.eos_to_text = Histogram("hearth_end_of_speech_to_text_seconds",
                                     "From the end of speech to the recognizer's final text", labels,
                                     buckets=LATENCY_BUCKETS, registry=self.registry)
        self.eos_to_intent = Histogram("hearth_end_of_speech_to_intent_seconds",
                                       "From the end of speech to the recognized intent", labels,
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.decode_cpu = Histogram("hearth_decode_cpu_seconds_per_audio_second",
                                    "Recognizer CPU seconds per second of audio, per utterance", labels,
                                    buckets=CPU_BUCKETS, registry=self.registry)
        self.utterances = Counter("hearth_utterances", "Utterances recognized (transcripts published)",
                                  labels, registry=self.registry)
        self.rejections = Counter("hearth_rejections", "Utterances rejected (not understood, or doubtful and "
                                  "not acted on)", labels, registry=self.registry)
        self.registry.register(_BridgeCollector(bridge, self.started))
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, CPU, open files
        self.satellites: dict[str, SatelliteFigures] = {}
        self.history: deque[tuple[float, float]] = deque(maxlen=HISTORY_MAX)  # (time.time(), ms)
        self._listeners: set[asyncio.Event] = set()  # one per open status page

    # -- hooks ----------------------------------------------------------------------------------

    def _figures(self, sat_id: str) -> SatelliteFigures | None:
        if sat_id not in self.bridge.satellites:
            return None  # only satellites in the (bounded) table get series
        return self.satellites.setdefault(sat_id, SatelliteFigures())

    def observe_result(self, sat_id: str, session_id: str, *, text_ms: float, intent_ms: float | None,
                       cpu_seconds: float, audio_seconds: float, rejected: bool, text: str) -> None:
        """One finished utterance. `intent_ms` is None when no intent was recognized."""
        figures = self._figures(sat_id)
        if figures is None:
            return
        self.eos_to_text.labels(sat_id).observe(text_ms / 1000)
        if intent_ms is not None:
            self.eos_to_intent.labels(sat_id).observe(intent_ms / 1000)
        if audio_seconds > 0 and cpu_seconds > 0:
            self.decode_cpu.labels(sat_id).observe(cpu_seconds / audio_seconds)
        self.utterances.labels(sat_id).inc()
        figures.utterances += 1
        rejections = self.rejections.labels(sat_id)  # a series from the first utterance on, 0 or not
        if rejected:
            rejections.inc()
            figures.rejections += 1
        figures.latency_ms = round(text_ms, 1)
        keep = self.bridge.retention_enabled() and not rejected
        figures.text, figures.text_session = (text, session_id) if keep else (None, None)
        self.history.append((time.time(), text_ms))
        self._notify()

    def input_level(self, sat_id: str, pcm: bytes) -> None:
        """A frame of audio arrived: its level, measured at most every LEVEL_INTERVAL seconds."""
        now = time.monotonic()
        figures = self.satellites.get(sat_id)
        if figures is not None and now - figures.level_at < LEVEL_INTERVAL:
            return
        figures = figures or self._figures(sat_id)
        if figures is not None:
            figures.level_db = round(level_dbfs(pcm), 1)
            figures.level_at = now

    def state_changed(self) -> None:
        self._notify()

    def _notify(self) -> None:
        for listener in self._listeners:
            listener.set()

    @contextlib.contextmanager
    def listener(self) -> Iterator[asyncio.Event]:
        """An event set whenever something the status page shows changed at once (a state, a
        result, a satellite gone); the page's stream clears it after each update."""
        event = asyncio.Event()
        self._listeners.add(event)
        try:
            yield event
        finally:
            self._listeners.discard(event)

    def forget(self, sat_id: str) -> None:
        """The satellite left the table: its series go too."""
        self.satellites.pop(sat_id, None)
        for metric in (self.eos_to_text, self.eos_to_intent, self.decode_cpu, self.utterances, self.rejections):
            try:
                metric.remove(sat_id)
            except KeyError:
                pass
        self._notify()

    # -- readers --------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The Prometheus text format of this bridge's registry."""
        return generate_latest(self.registry)

    def latency_histogram(self, now: float | None = None) -> dict[str, object]:
        """End of speech → text over the last hour, in PAGE_BUCKETS_MS (the last bucket open)."""
        now = time.time() if now is None else now
        while self.history and self.history[0][0] < now - HISTORY_SECONDS:
            self.history.popleft()
        counts = [0] * (len(PAGE_BUCKETS_MS) + 1)
        for _t, ms in self.history:
            index = next((i for i, edge in enumerate(PAGE_BUCKETS_MS) if ms <= edge), len(PAGE_BUCKETS_MS))
            counts[index] += 1
        median = statistics.median(ms for _t, ms in self.history) if self.history else None
        return {"edges_ms": list(PAGE_BUCKETS_MS), "counts": counts, "total": len(self.history),
                "median_ms": round(median, 1) if median is not None else None}

    def figures(self, sat_id: str) -> SatelliteFigures:
        """The satellite's figures (a blank set when it has none yet). The words live exactly as
        long as their audio in the retention buffer: gone when retention is turned off, the
        history purged, or the utterance pushed out by newer ones."""
        figures = self.satellites.get(sat_id) or SatelliteFigures()
        if figures.text is not None and (not self.bridge.retention_enabled() or figures.text_session not in {
                item.session_id for item in self.bridge.retention.items()}):
            figures.text = figures.text_session = None
        return figures


class _BridgeCollector(Collector):
    """Figures read from the bridge's own counters when Prometheus scrapes."""

    def __init__(self, bridge: Bridge, started: float) -> None:
        self.bridge = bridge
        self.started = started

    def collect(self) -> Iterator[Metric]:
        bridge = self.bridge
        counters = bridge.audit.counters
        yield CounterMetricFamily("hearth_refused_cloud_requests", "Requests to cloud engines refused by the "
                                  "privacy policy (since install)", value=counters["blocked_cloud_requests"])
        yield CounterMetricFamily("hearth_bytes_off_lan", "Bytes of audio or text sent beyond the home network "
                                  "(since install)", value=counters["bytes_off_lan"])
        yield CounterMetricFamily("hearth_reconnects", "Connections to the MQTT broker lost or refused",
                                  value=bridge.link.reconnects)
        dropped = CounterMetricFamily("hearth_dropped_frames", "Audio frames from a satellite that were not "
                                      "heard, by reason", labels=["satellite", "reason"])
        queue = GaugeMetricFamily("hearth_satellite_queue_depth", "Audio frames waiting for a satellite's task",
                                  labels=["satellite"])
        online = 0
        for sat_id, sat in bridge.satellites.items():
            online += bool(sat.online)
            for reason, key in PER_SATELLITE_DROPS.items():
                dropped.add_metric([sat_id, reason], sat.counters.get(key, 0))
            queue.add_metric([sat_id], len(sat.queue))
        yield dropped
        yield queue
        bridge_dropped = CounterMetricFamily("hearth_bridge_dropped_frames", "Frames dropped before reaching "
                                             "a satellite, by reason", labels=["reason"])
        bridge_dropped.add_metric(["muted"], bridge.control.dropped_muted)
        bridge_dropped.add_metric(["shed_inbound"], bridge.link.backlog.shed_audio)
        yield bridge_dropped
        yield CounterMetricFamily("hearth_dropped_outgoing_messages", "Messages to the broker dropped while it "
                                  "was away (outgoing queue full)", value=bridge.link.dropped_outgoing)
        yield GaugeMetricFamily("hearth_satellites_online", "Satellites online", value=online)
        yield GaugeMetricFamily("hearth_satellites", "Satellites in the bridge's table", value=len(bridge.satellites))
        yield GaugeMetricFamily("hearth_inbound_queue_depth", "Messages from the broker waiting to be handled",
                                value=bridge.link.backlog.depth)
        yield GaugeMetricFamily("hearth_outgoing_queue_depth", "Messages waiting to be sent to the broker",
                                value=bridge.link.outgoing_depth)
        yield GaugeMetricFamily("hearth_decoder_workers_busy", "Decoder worker processes busy with an utterance",
                                value=bridge.pool.busy)
        lag = bridge.loop_lag.summary()
        yield GaugeMetricFamily("hearth_event_loop_lag_seconds", "How late the event loop woke up last (50 ms probe)",
                                value=lag["loop_lag_ms"] / 1000)
        yield GaugeMetricFamily("hearth_event_loop_lag_p99_seconds", "99th percentile of the event loop's lateness "
                                "over the last minute", value=lag["loop_lag_p99_ms"] / 1000)
        yield GaugeMetricFamily("hearth_uptime_seconds", "Seconds since the bridge started",
                                value=time.time() - self.started)
