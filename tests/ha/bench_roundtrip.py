"""Round-trip benchmark: speech in → action in Home Assistant → speech out. Not a test.

    .venv/bin/python -m pytest -p no:sugar tests/ha/bench_roundtrip.py -s -q

It lives beside the end-to-end tests because it needs the same harness: Home Assistant core with
its real MQTT client, a real Mosquitto, the real bridge process, a real light, and the simulated
satellite streaming espeak-ng speech in real time. For each command it measures, from the end of
speech: the transcript at the satellite, the light's state change in Home Assistant, and the first
chunk of the spoken answer reaching the satellite.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from homeassistant.core import Event, HomeAssistant, callback

from bridge.tools.satellite import SatelliteOptions, run_satellite
from tests.support.bridge_proc import Probe
from tests.support.broker import Mosquitto

from .e2e import LIGHT, probe_fixture, real_bridge_fixture, speech, until  # noqa: F401 - fixtures
from .test_e2e_bridge import home  # noqa: F401 - fixture

pytestmark = [pytest.mark.timeout(900)]
ROUNDS = 10


async def test_round_trip(hass: HomeAssistant, home, real_mqtt: Mosquitto, probe: Probe, tmp_path: Path) -> None:  # noqa: F811
    changed: list[float] = []

    @callback
    def on_change(event: Event) -> None:
        if event.data.get("entity_id") == LIGHT:
            changed.append(time.monotonic())

    hass.bus.async_listen("state_changed", on_change)
    rows = []
    for i in range(ROUNDS):
        command = "turn on the kitchen light" if i % 2 == 0 else "turn off the kitchen light"
        pcm = await speech(hass, tmp_path, command)
        changed.clear()
        first_play = len(probe.messages)
        result = await run_satellite(SatelliteOptions(sat_id="kitchen", host="127.0.0.1", port=real_mqtt.port,
                                                      timeout=20, trailing_silence=1.0), pcm)
        eos = result["end_of_speech_monotonic"]
        await until(hass, lambda: bool(changed), timeout=10, message=f"no state change; heard {result['transcript']!r}")

        def play_times() -> list[float]:
            return [t for (topic, _), t in zip(probe.messages[first_play:], probe.received_at[first_play:], strict=True)
                    if topic == "hearth/satellite/kitchen/play"]

        await until(hass, lambda: bool(play_times()), timeout=10, message="no spoken answer")
        rows.append({
            "transcript_ms": result["latency_ms"],
            "action_ms": (changed[0] - eos) * 1000,
            "answer_ms": (play_times()[0] - eos) * 1000,
            "ok": result["transcript"] == command,
        })
        # Back to idle (the bridge waits out the answer's playback) before the next command.
        start = len(probe.messages)
        await until(hass, lambda: any(t == "hearth/satellite/kitchen/state" and b'"idle"' in p
                                      for t, p in probe.messages[start:]), timeout=30, message="satellite never idle")

    def p(values: list[float], q: float) -> float:
        values = sorted(values)
        return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]

    print("\n## Round trip: speech in → action in Home Assistant → speech out\n")
    print("Command: `.venv/bin/python -m pytest -p no:sugar tests/ha/bench_roundtrip.py -s -q` "
          f"({ROUNDS} commands, alternately on/off, espeak-ng en-us, real-time streaming)\n")
    print("| from the end of speech to | p50 | p95 | max |")
    print("|---|---|---|---|")
    for key, label in (("transcript_ms", "transcript at the satellite"), ("action_ms", "light state changed in Home Assistant"),
                       ("answer_ms", "first audio of the spoken answer at the satellite")):
        values = [r[key] for r in rows]
        print(f"| {label} | {p(values, 0.5):.0f} ms | {p(values, 0.95):.0f} ms | {max(values):.0f} ms |")
    print(f"\nTranscripts exactly right: {sum(r['ok'] for r in rows)}/{len(rows)}; "
          f"mean answer latency {statistics.mean(r['answer_ms'] for r in rows):.0f} ms")
