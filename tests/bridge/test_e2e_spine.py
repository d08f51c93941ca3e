"""End to end: real Mosquitto, the real bridge process, espeak-ng speech, simulated satellites."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite
from tests.support.bridge_proc import Probe


def options(live, sat_id: str, **kw) -> SatelliteOptions:
    broker, _ = live
    kw.setdefault("timeout", 20)
    return SatelliteOptions(sat_id=sat_id, host=broker.host, port=broker.port, **kw)


async def test_hearth_satellite_turn_on_the_kitchen_light(live, say) -> None:
    pcm = load_wav_pcm16k(say("turn on the kitchen light"))
    result = await run_satellite(options(live, "kitchen"), pcm)
    assert result["transcript"] == "turn on the kitchen light"
    assert result["intent"]["name"] == "HassTurnOn"
    assert "light.kitchen" in json.dumps(result["intent"]["slots"])
    assert result["latency_ms"] is not None and result["latency_ms"] > 0


async def test_hermes_satellite_publishes_text_captured_with_the_session(live, say) -> None:
    broker, _ = live
    pcm = load_wav_pcm16k(say("turn on the kitchen light"))
    async with Probe(broker.host, broker.port, ["hermes/#"]) as probe:
        result = await run_satellite(options(live, "hermes-kitchen", protocol="hermes"), pcm)
        assert result["transcript"] == "turn on the kitchen light"
        captured = await probe.wait_for("hermes/asr/textCaptured", lambda d: d["siteId"] == "hermes-kitchen")
        started = [d for d in probe.json("hermes/asr/startListening") if d["siteId"] == "hermes-kitchen"]
        assert captured["sessionId"] == started[0]["sessionId"]
        assert captured["text"] == "turn on the kitchen light"
        assert set(captured) >= {"text", "likelihood", "seconds", "siteId", "sessionId", "wakewordId", "lang", "asrTokens"}
        assert 1.0 < captured["seconds"] < 5.0
        # The ESP32 firmware shows listening from toggleOff/dialogueSession and idle from toggleOn.
        await probe.wait_for("hermes/hotword/toggleOn", lambda d: d["siteId"] == "hermes-kitchen")
        toggles = [(t.rsplit("/", 1)[-1], json.loads(p)) for t, p in probe.messages if t.startswith("hermes/hotword/toggle")]
        site_toggles = [(k, d["reason"]) for k, d in toggles if d["siteId"] == "hermes-kitchen"]
        assert ("toggleOff", "dialogueSession") in site_toggles
        assert site_toggles.index(("toggleOff", "dialogueSession")) < site_toggles.index(("toggleOn", "dialogueSession"))
        parsed = await probe.wait_for("hermes/nlu/intentParsed", lambda d: d["siteId"] == "hermes-kitchen")
        assert parsed["sessionId"] == captured["sessionId"]
        assert parsed["intent"]["intentName"] == "HassTurnOn"


@pytest.mark.parametrize("protocol", ["hearth", "hermes"])
async def test_wake_word_on_the_bridge_in_a_continuous_stream(live, say, protocol) -> None:
    broker, _ = live
    pcm = load_wav_pcm16k(say("okay nabu, turn on the kitchen light", speed=150))
    async with Probe(broker.host, broker.port, ["hearth/satellite/+/wake", "hermes/hotword/+/detected"]) as probe:
        result = await run_satellite(options(live, f"stream-{protocol}", protocol=protocol, wake="bridge"), pcm)
        assert result["transcript"] == "turn on the kitchen light"
        wake = await probe.wait_for("/wake", lambda d: d["satellite"] == f"stream-{protocol}")
        assert wake["source"] == "bridge" and wake["wake_word"] == "okay_nabu"
        if protocol == "hermes":
            detected = await probe.wait_for("/detected", lambda d: d["siteId"] == "stream-hermes")
            assert detected["modelId"] == "okay_nabu"


async def test_continuous_stream_without_wake_word_stays_idle(live, say) -> None:
    pcm = load_wav_pcm16k(say("turn on the kitchen light"))
    with pytest.raises(Exception, match="no result"):
        await run_satellite(options(live, "quiet", wake="bridge", timeout=2), pcm)


async def test_two_satellites_at_once_each_get_their_own_text(live, say) -> None:
    a = load_wav_pcm16k(say("turn on the kitchen light"))
    b = load_wav_pcm16k(say("turn off the bedroom light", voice="en-us+f3"))
    ra, rb = await asyncio.gather(run_satellite(options(live, "sat-a"), a), run_satellite(options(live, "sat-b", protocol="hermes"), b))
    assert ra["transcript"] == "turn on the kitchen light"
    assert rb["transcript"] == "turn off the bedroom light"


async def test_satellite_cli_prints_one_json_line(live, say) -> None:
    broker, _ = live
    wav = say("turn on the kitchen light")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "satellite", "--id", "cli", "--wav", str(wav), "--mqtt-host", broker.host,
        "--mqtt-port", str(broker.port), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    lines = out.decode().strip().splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert data["satellite"] == "cli" and data["transcript"] == "turn on the kitchen light"
    assert data["latency_ms"] > 0


async def test_satellite_cli_times_out_clearly(tmp_path, say) -> None:
    from tests.support.broker import Mosquitto

    broker = Mosquitto().start()  # a broker with no bridge behind it
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", "satellite", "--id", "lonely", "--wav", str(say("turn on the kitchen light")),
            "--mqtt-port", str(broker.port), "--timeout", "1", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
    finally:
        broker.close()
    assert proc.returncode == 1
    assert out == b""
    assert "no result from the bridge within 1 s" in err.decode()


async def test_wake_word_after_a_long_quiet_spell(live, say) -> None:
    """The wake-word model is spared in a quiet room; the first words after it must still wake it."""
    import numpy as np

    quiet = (np.random.default_rng(7).standard_normal(16000 * 4) * 8).astype("<i2").tobytes()
    pcm = quiet + load_wav_pcm16k(say("okay nabu, turn on the kitchen light", speed=150))
    result = await run_satellite(options(live, "quiet-room", wake="bridge"), pcm)
    assert result["transcript"] == "turn on the kitchen light"
