"""Prometheus metrics at `/metrics`, read with prometheus_client's own parser from a real bridge
process while a simulated satellite speaks over a real Mosquitto: the counts and latencies
match what was said and what the bridge published; a satellite that leaves takes its series
along; each bridge has a registry of its own; only satellites in the table get series."""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.config import validate
from bridge.service import build_bridge
from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite
from tests.support.bridge_proc import BridgeProcess, Probe
from tests.support.broker import Mosquitto
from tests.support.speech import have_espeak

pytestmark = pytest.mark.skipif(not have_espeak(), reason="espeak-ng is needed for real speech")

COMMANDS = ("turn on the kitchen light", "turn off the kitchen light")

type Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:  # noqa: S310 - loopback
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def names(samples: Samples, satellite: str) -> set[str]:
    return {name for name, labels in samples if ("satellite", satellite) in labels}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, BridgeProcess, str]]:
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp_path_factory.mktemp("metrics") / "data")
    try:
        status = bridge.start().wait_online()
        yield broker, bridge, status["status_api"]
    finally:
        bridge.stop()
        broker.close()


async def test_metrics_count_what_was_spoken(live: tuple[Mosquitto, BridgeProcess, str], say: Any) -> None:
    broker, _bridge, url = live
    sat = "metrics-kitchen"
    before = scrape(url)
    assert sat not in {dict(labels).get("satellite") for _name, labels in before}
    assert value(before, "hearth_satellites_online") == 0
    assert value(before, "process_resident_memory_bytes") > 20e6
    results = []
    async with Probe(broker.host, broker.port, [f"hearth/satellite/{sat}/transcript",
                                                f"hearth/satellite/{sat}/intent"]) as probe:
        for command in COMMANDS:
            pcm = load_wav_pcm16k(say(command))
            results.append(await run_satellite(SatelliteOptions(sat_id=sat, host=broker.host, port=broker.port,
                                                                trailing_silence=1.5), pcm))
        transcripts = probe.json("/transcript")
        await probe.wait_for("/intent", lambda _d: len(probe.json("/intent")) == len(COMMANDS))
        intents = probe.json("/intent")
    assert [r["transcript"] for r in results] == list(COMMANDS)  # what was spoken was heard
    assert len(transcripts) == len(COMMANDS)

    after = scrape(url)
    assert value(after, "hearth_utterances_total", satellite=sat) == len(COMMANDS)
    assert value(after, "hearth_rejections_total", satellite=sat) == sum(t["rejected"] for t in transcripts) == 0
    # the latency histogram holds exactly the latencies the bridge published with the transcripts
    assert value(after, "hearth_end_of_speech_to_text_seconds_count", satellite=sat) == len(COMMANDS)
    published = sum(t["timings"]["end_of_speech_to_text_ms"] for t in transcripts) / 1000
    assert math.isclose(value(after, "hearth_end_of_speech_to_text_seconds_sum", satellite=sat), published,
                        abs_tol=0.001 * len(COMMANDS))
    slowest = max(t["timings"]["end_of_speech_to_text_ms"] for t in transcripts) / 1000
    below = [le for (name, labels), _v in after.items() if name == "hearth_end_of_speech_to_text_seconds_bucket"
             and ("satellite", sat) in labels and (le := float(dict(labels)["le"])) < slowest]
    for le in below:  # a bucket below the slowest observation cannot hold every utterance
        assert value(after, "hearth_end_of_speech_to_text_seconds_bucket", satellite=sat, le=str(le)) < len(COMMANDS)
    assert value(after, "hearth_end_of_speech_to_text_seconds_bucket", satellite=sat, le="+Inf") == len(COMMANDS)
    # intents: each command was understood, and its latency is the one published
    assert all(i["intent"] is not None for i in intents)
    assert value(after, "hearth_end_of_speech_to_intent_seconds_count", satellite=sat) == len(COMMANDS)
    intent_sum = sum(t["latency_ms"] for t in transcripts) / 1000
    assert math.isclose(value(after, "hearth_end_of_speech_to_intent_seconds_sum", satellite=sat), intent_sum,
                        abs_tol=0.001 * len(COMMANDS))
    cpu = [t["cpu_seconds"] / t["audio_seconds"] for t in transcripts]
    assert value(after, "hearth_decode_cpu_seconds_per_audio_second_count", satellite=sat) == len(COMMANDS)
    assert math.isclose(value(after, "hearth_decode_cpu_seconds_per_audio_second_sum", satellite=sat), sum(cpu),
                        rel_tol=0.01)
    # the counters the bridge keeps anyway, per satellite and bridge-wide
    for reason in ("queue_full", "late", "gap", "rate_limited"):
        assert value(after, "hearth_dropped_frames_total", satellite=sat, reason=reason) == 0
    assert value(after, "hearth_satellite_queue_depth", satellite=sat) == 0
    assert value(after, "hearth_satellites") == 1
    # the simulated satellite said goodbye on its own connection: the bridge hears it a moment later
    deadline = time.monotonic() + 10
    while value(scrape(url), "hearth_satellites_online") != 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert value(scrape(url), "hearth_satellites_online") == 0
    assert value(after, "hearth_refused_cloud_requests_total") == 0
    assert value(after, "hearth_bytes_off_lan_total") == 0
    assert value(after, "hearth_reconnects_total") == 0
    assert value(after, "hearth_bridge_dropped_frames_total", reason="muted") == 0
    assert 0 <= value(after, "hearth_event_loop_lag_seconds") < 5
    # the queues are gauges of this instant (a stats message may be on its way out): empty once quiet
    deadline = time.monotonic() + 5
    while (depths := [value(quiet := scrape(url), f"hearth_{way}_queue_depth") for way in ("inbound", "outgoing")]) \
            != [0, 0] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert depths == [0, 0], quiet

    # the satellite is removed (its retained status cleared): its series go with it
    async with Probe(broker.host, broker.port, []) as probe:
        await probe.client.publish(f"hearth/satellite/{sat}/status", b"", qos=1, retain=True)
    for _ in range(50):
        gone = scrape(url)
        if not names(gone, sat):
            break
        await asyncio.sleep(0.1)
    assert names(gone, sat) == set(), sorted(names(gone, sat))
    assert value(gone, "hearth_satellites") == 0


async def test_each_bridge_has_its_own_registry_and_only_known_satellites_get_series(tmp_path: Path) -> None:
    def make(name: str):  # noqa: ANN202
        return build_bridge(validate({"data_dir": str(tmp_path / name), "bridge_id": name,
                                      "status_api": {"enabled": False}, "tts": {"engine": "none"}}))

    first, second = make("one"), make("two")
    try:
        assert first.metrics.registry is not second.metrics.registry
        first.metrics.observe_result("stranger", "s1", text_ms=120.0, intent_ms=120.0, cpu_seconds=0.01,
                                     audio_seconds=1.0, rejected=False, text="hello")
        samples = {s.name: s for f in text_string_to_metric_families(first.metrics.exposition().decode())
                   for s in f.samples if s.labels.get("satellite") == "stranger"}
        assert samples == {}  # not in the bridge's table: no series, however many ids are made up
        assert first.metrics.figures("stranger").utterances == 0
        text = json.dumps(first.metrics.latency_histogram())
        assert '"total": 0' in text
    finally:
        await first.close()
        await second.close()
