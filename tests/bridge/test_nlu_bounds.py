"""Hermes NLU queries cannot take recognition away from the satellites (issue: two 8 KB
`hermes/nlu/query` messages left every satellite without recognition for ~110 s, unanswered).

Against a real Mosquitto and the real bridge process: too-long text is refused at once with
`hermes/error/nlu` and a counted `bridge/error` code; a match that overruns the deadline gets its
worker replaced and an error answer; a satellite's spoken command right after is understood."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite
from tests.support.bridge_proc import BridgeProcess, Probe
from tests.support.broker import Mosquitto
from tests.support.speech import have_espeak

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(not have_espeak(), reason="espeak-ng is not installed")]

BIG = ("turn on the kitchen light and " * 300)[:8192]  # 8 KB: minutes of hassil's time if matched


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    mosquitto = Mosquitto().start()
    try:
        yield mosquitto
    finally:
        mosquitto.close()


def query(text: str, n: str) -> str:
    return json.dumps({"input": text, "siteId": "rhasspy", "id": f"q-{n}", "sessionId": f"s-{n}"})


async def spoken_command(broker: Mosquitto, sat_id: str, say: Any) -> tuple[dict[str, Any], float]:
    """A Hearth satellite says "turn on the kitchen light": its result and the seconds it took."""
    pcm = load_wav_pcm16k(say("turn on the kitchen light"))
    started = time.monotonic()
    result = await run_satellite(SatelliteOptions(sat_id=sat_id, host=broker.host, port=broker.port,
                                                  timeout=15), pcm)
    return result, time.monotonic() - started


def understood(result: dict[str, Any]) -> bool:
    return (result.get("transcript") == "turn on the kitchen light"
            and (result.get("intent") or {}).get("name") == "HassTurnOn")


async def test_two_8kb_queries_are_refused_at_once_and_satellites_keep_recognition(
        broker: Mosquitto, tmp_path: Path, say: Any) -> None:
    bridge = BridgeProcess(broker.host, broker.port, tmp_path / "data").start()
    try:
        async with Probe(broker.host, broker.port, ["hermes/nlu/#", "hermes/error/nlu", "hearth/bridge/error",
                                                    "hearth/bridge/stats"]) as probe:
            sent = time.monotonic()
            await probe.client.publish("hermes/nlu/query", query(BIG, "big-1"))
            await probe.client.publish("hermes/nlu/query", query(BIG, "big-2"))
            for n in ("big-1", "big-2"):
                error = await probe.wait_for("hermes/error/nlu", lambda d, n=n: d["sessionId"] == f"s-{n}", timeout=15)
                assert error["siteId"] == "rhasspy" and error["context"] == "intent_text_too_long"
                assert "8192 characters" in error["error"] and "at most 300" in error["error"]
            assert time.monotonic() - sent < 15
            coded = await probe.wait_for("hearth/bridge/error", lambda d: d["code"] == "intent_text_too_long")
            assert coded["topic"] == "hermes/nlu/query"
            await probe.wait_for("hearth/bridge/stats",
                                 lambda d: d["errors"].get("intent_text_too_long") == 2, timeout=20)

            # A satellite's command right after is recognized promptly.
            result, seconds = await spoken_command(broker, "kitchen-after-big", say)
            assert understood(result), result
            assert seconds < 25  # ~3 s of it is the speech itself, streamed in real time

            # An ordinary query is still answered.
            await probe.client.publish("hermes/nlu/query", query("turn on the kitchen light", "ok"))
            parsed = await probe.wait_for("hermes/nlu/intentParsed", lambda d: d["id"] == "q-ok", timeout=15)
            assert parsed["intent"]["intentName"] == "HassTurnOn"
            assert not [d for d in probe.json("intentParsed") if d["id"] in ("q-big-1", "q-big-2")]
    finally:
        bridge.stop()


async def test_slow_queries_are_cut_off_their_workers_replaced_and_satellites_served_meanwhile(
        broker: Mosquitto, tmp_path: Path, say: Any) -> None:
    """With the length limit raised, 8 KB queries are slow: each is cut off at the deadline
    (`limits.intent_timeout`), its worker replaced and the query answered with an error; while they
    run, satellites are served (the deadline is long enough to tell: before, the two queries took
    both workers and a satellite waited for the first to end), and after them all works as before."""
    bridge = BridgeProcess(broker.host, broker.port, tmp_path / "data", args=[
        "--set", "limits.max_intent_text=10000", "--set", "limits.intent_timeout=12"]).start()
    try:
        async with Probe(broker.host, broker.port, ["hermes/nlu/#", "hermes/error/nlu", "hearth/bridge/error",
                                                    "hearth/bridge/stats"]) as probe:
            sent = time.monotonic()
            await probe.client.publish("hermes/nlu/query", query(BIG, "slow-1"))
            await probe.client.publish("hermes/nlu/query", query(BIG, "slow-2"))

            # While the queries are matched (one at a time, never on the last idle worker), a
            # satellite's command is recognized promptly.
            result, seconds = await spoken_command(broker, "kitchen-during-slow", say)
            assert understood(result), result
            assert seconds < 25  # ~3 s of it is the speech itself, streamed in real time
            assert not probe.json("hermes/error/nlu")  # served while the queries were still matched

            for n in ("slow-1", "slow-2"):
                error = await probe.wait_for("hermes/error/nlu", lambda d, n=n: d["sessionId"] == f"s-{n}", timeout=120)
                assert error["siteId"] == "rhasspy" and error["context"] == "intent_timeout"
                assert "longer than 12 s" in error["error"]
            assert time.monotonic() - sent < 120  # not the minutes each match would take
            coded = await probe.wait_for("hearth/bridge/error", lambda d: d["code"] == "intent_timeout")
            assert coded["topic"] == "hermes/nlu/query"
            stats = await probe.wait_for("hearth/bridge/stats",
                                         lambda d: d["errors"].get("intent_timeout") == 2
                                         and d["decoder_restarts"] >= 2, timeout=60)
            assert stats["decoder_restarts"] == 2

            # Later utterances and queries work, on the fresh workers too.
            for n in range(2):
                result, seconds = await spoken_command(broker, f"kitchen-after-slow-{n}", say)
                assert understood(result), result
                assert seconds < 25  # ~3 s of it is the speech itself, streamed in real time
            for n in range(3):
                await probe.client.publish("hermes/nlu/query", query("turn on the kitchen light", f"after-{n}"))
                parsed = await probe.wait_for("hermes/nlu/intentParsed", lambda d, n=n: d["id"] == f"q-after-{n}",
                                              timeout=15)
                assert parsed["intent"]["intentName"] == "HassTurnOn"
    finally:
        bridge.stop()
