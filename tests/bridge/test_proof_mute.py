"""Proof: a muted microphone is muted in the bridge, not only on the device.

One real Mosquitto and one real bridge. Four satellites are muted with a policy command:
Hearth and Hermes, each once streaming continuously with the wake word for the bridge to hear
(`wake="bridge"`) and once opening a session itself (`wake="event"`: a Hearth wake event or a
Hermes startListening). The simulated satellites ignore `mute` (they keep streaming a spoken
command), so only the bridge can keep the promise: no wake-word call, no decoder call, no wake,
transcript or intent, every frame dropped and counted, and the satellite told to mute.
Then the same audio is streamed unmuted and IS transcribed, so the test can fail.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bridge.tools.satellite import SatelliteError, SatelliteOptions, load_wav_pcm16k, run_satellite
from tests.support.bridge_proc import BridgeProcess, Probe
from tests.support.signing import signed
from tests.support.broker import Mosquitto

SATS = {  # satellite -> (protocol, wake)
    "mute-hearth-wake": ("hearth", "bridge"),
    "mute-hearth-event": ("hearth", "event"),
    "mute-hermes-wake": ("hermes", "bridge"),
    "mute-hermes-event": ("hermes", "event"),
}
TEXT = "turn on the kitchen light"
WATCH = ["hearth/#", "hermes/#", "+/audio"]  # `<siteId>/audio`: the ESP32 Hermes firmware's mute_input


@dataclass
class Live:
    broker: Mosquitto
    bridge: BridgeProcess
    status_api: str
    pcm: dict[str, bytes]

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.status_api}/stats", timeout=5) as response:
            return json.loads(response.read())

    def options(self, sat: str, **kw: Any) -> SatelliteOptions:
        protocol, wake = SATS[sat]
        return SatelliteOptions(sat_id=sat, host=self.broker.host, port=self.broker.port, protocol=protocol,
                                wake=wake, **kw)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, say: Any) -> Iterator[Live]:
    pcm_wake = load_wav_pcm16k(say(f"okay nabu, {TEXT}", speed=150))
    pcm_command = load_wav_pcm16k(say(TEXT))
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp_path_factory.mktemp("mute") / "data")
    try:
        status = bridge.start().wait_online()
        pcm = {sat: pcm_wake if wake == "bridge" else pcm_command for sat, (_p, wake) in SATS.items()}
        yield Live(broker, bridge, status["status_api"], pcm)
    finally:
        bridge.stop()
        broker.close()


async def set_policy(probe: Probe, command: dict[str, Any], live: Live) -> dict[str, Any]:
    request_id = uuid.uuid4().hex[:8]
    await probe.client.publish("hearth/bridge/policy/set", signed(live.bridge.data_dir, "hearth/bridge/policy/set",
                                                                  {"request_id": request_id, **command}), qos=1)
    result = await probe.wait_for("hearth/bridge/policy/result", lambda d: d.get("request_id") == request_id)
    assert result["ok"] is True, result
    return result["policy"]


def sat_counter(stats: dict[str, Any], sat: str, name: str) -> int:
    return int(stats["satellites"].get(sat, {}).get(name, 0))


def for_sat(probe: Probe, suffix: str, sat: str) -> list[dict[str, Any]]:
    return [d for d in probe.json(suffix) if sat in (d.get("satellite"), d.get("siteId"))]


@dataclass
class MutedRun:
    before: dict[str, Any]
    after: dict[str, Any]
    outcomes: dict[str, Any]
    probe_messages: list[tuple[str, bytes]]
    probe: Probe


@pytest.fixture(scope="module")
def muted_run(live: Live) -> MutedRun:
    async def run() -> MutedRun:
        async with Probe(live.broker.host, live.broker.port, WATCH) as probe:
            policy = await set_policy(probe, {"microphones": {sat: {"muted": True} for sat in SATS}}, live)
            assert all(policy["microphones"][sat]["muted"] for sat in SATS), policy
            before = await asyncio.to_thread(live.stats)
            outcomes = await asyncio.gather(
                *(run_satellite(live.options(sat, timeout=2, trailing_silence=1.0), live.pcm[sat]) for sat in SATS),
                return_exceptions=True)
            await asyncio.sleep(1.5)  # anything still queued in the bridge has been handled by now
            after = await asyncio.to_thread(live.stats)
            return MutedRun(before, after, dict(zip(SATS, outcomes, strict=True)), list(probe.messages), probe)

    return asyncio.run(run())


def test_muted_satellites_never_reach_the_wake_word_detector_or_decoder(muted_run: MutedRun) -> None:
    for sat in SATS:
        for counter in ("wake_chunks", "decoded_chunks", "utterances", "wakes"):
            assert sat_counter(muted_run.after, sat, counter) == sat_counter(muted_run.before, sat, counter), \
                (sat, counter, muted_run.after["satellites"].get(sat))
    assert muted_run.after["decoder_utterances"] == muted_run.before["decoder_utterances"]


def test_muted_satellites_get_no_wake_transcript_or_intent(muted_run: MutedRun) -> None:
    for sat, outcome in muted_run.outcomes.items():
        assert isinstance(outcome, SatelliteError), (sat, outcome)  # no result within the timeout
        for suffix in ("/wake", "/transcript", "/intent", "hermes/asr/textCaptured", "hermes/nlu/intentParsed",
                       "/detected"):
            assert not for_sat(muted_run.probe, suffix, sat), (sat, suffix)
        assert not [t for t, _ in muted_run.probe_messages if t.startswith((f"hearth/satellite/{sat}/wake",
                                                                            f"hearth/satellite/{sat}/transcript"))]


def test_muted_frames_are_dropped_and_counted(muted_run: MutedRun) -> None:
    # Each satellite streamed about 3 s of 30 ms (Hearth) or 16 ms (Hermes) frames: all dropped.
    dropped = muted_run.after["dropped_muted"] - muted_run.before["dropped_muted"]
    assert dropped >= 4 * 80, (muted_run.before["dropped_muted"], muted_run.after["dropped_muted"])
    frames = muted_run.after["frames"] - muted_run.before["frames"]
    assert 0 < frames <= dropped  # every frame that arrived was dropped (the Hearth wake events count too)


def test_muted_satellites_are_told_to_mute(muted_run: MutedRun) -> None:
    messages = [(t, json.loads(p)) for t, p in muted_run.probe_messages if p[:1] == b"{"]
    for sat, (protocol, _wake) in SATS.items():
        if protocol == "hearth":
            assert (f"hearth/satellite/{sat}/command", {"command": "mute", "session_id": None}) in messages, sat
        else:
            assert (f"{sat}/audio", {"mute_input": "true"}) in messages, sat
            assert any(t == "hermes/hotword/toggleOff" and d.get("siteId") == sat for t, d in messages), sat
        states = [d for t, d in messages if t == f"hearth/satellite/{sat}/state"]
        assert states and all(d["muted"] for d in states), (sat, states)


def test_unmuted_the_same_audio_is_transcribed(live: Live, muted_run: MutedRun) -> None:
    async def run() -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
        async with Probe(live.broker.host, live.broker.port, WATCH) as probe:
            policy = await set_policy(probe, {"microphones": {sat: {"muted": False} for sat in SATS}}, live)
            assert policy["microphones"] == {}, policy
            before = await asyncio.to_thread(live.stats)
            results = []
            for pair in (list(SATS)[:2], list(SATS)[2:]):
                results += await asyncio.gather(*(run_satellite(live.options(sat, timeout=20), live.pcm[sat])
                                                  for sat in pair))
            after = await asyncio.to_thread(live.stats)
            return before, after, results

    before, after, results = asyncio.run(run())
    assert [r["transcript"] for r in results] == [TEXT] * 4, results
    for sat, (_protocol, wake) in SATS.items():
        assert sat_counter(after, sat, "decoded_chunks") > sat_counter(before, sat, "decoded_chunks"), sat
        if wake == "bridge":
            assert sat_counter(after, sat, "wake_chunks") > sat_counter(before, sat, "wake_chunks"), sat
    assert after["decoder_utterances"] >= before["decoder_utterances"] + 4
    assert after["dropped_muted"] == before["dropped_muted"]
