"""One answer per wake, against a real Mosquitto and a real bridge process.

Three satellites in one area hear the same utterance at 0, -6 and -12 dB (sox) and each sends
its wake event with the level it heard (speech_db, measured the way a satellite does: the RMS of
the last second of voiced frames above its noise floor). In every run the 0 dB one wins and is
understood; the others get `stand_down` and nothing else (no wake, no transcript, no sound).
A satellite in another area wakes at the same moment and gets its own session; a satellite that
competes with nobody starts at once (counted by the bridge as such, no window).
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from bridge import PROTOCOL_VERSION
from bridge.protocol.hearth import RECOMMENDED_FRAME_BYTES, encode_frame
from bridge.tools.satellite import load_wav_pcm16k, wake_level_db
from tests.support.broker import Mosquitto
from tests.support.bridge_proc import BridgeProcess, wait_for_retained
from tests.support.speech import have_espeak

pytestmark = pytest.mark.skipif(not have_espeak(), reason="espeak-ng is needed for real speech")

RUNS = 8  # the 20-run contest with the satellite program itself: tests/satellite/test_arbitration.py
NOISE_FLOOR_DBFS = -70.0  # the simulated satellites' own noise floor


def speech_db(pcm: bytes) -> float:
    """RMS of the last second of voiced 30 ms frames above the noise floor, in dB."""
    return wake_level_db(pcm, NOISE_FLOOR_DBFS)


def attenuated(src: Path, db: int, dest: Path) -> bytes:
    subprocess.run(["sox", str(src), str(dest), "vol", f"{db}dB"], check=True)
    return load_wav_pcm16k(dest)


class Sat:
    """A minimal satellite following the contract: status, wake event, then its stream."""

    def __init__(self, sat_id: str, area: str, pcm: bytes) -> None:
        self.id, self.area, self.pcm = sat_id, area, pcm
        self.speech_db = speech_db(pcm)

    async def announce(self, client: aiomqtt.Client) -> None:
        await client.publish(f"hearth/satellite/{self.id}/status", json.dumps({
            "state": "online", "protocol": PROTOCOL_VERSION, "name": self.id, "area": self.area,
            "audio": {"rate": 16000, "width": 2, "channels": 1},
            "capabilities": {"wake_word": True, "speaker": True, "mute": True}}), qos=1, retain=True)

    async def wake_and_stream(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        stream_id = random.randrange(1 << 32)
        await client.publish(f"hearth/satellite/{self.id}/event", json.dumps({
            "type": "wake", "wake_word": "okay_nabu", "stream_id": stream_id,
            "wake_probability": 0.95, "speech_db": self.speech_db}))
        audio = self.pcm + bytes(32000)  # the command, then a second of the quiet room
        chunks = [audio[i:i + RECOMMENDED_FRAME_BYTES] for i in range(0, len(audio), RECOMMENDED_FRAME_BYTES)]
        for seq, chunk in enumerate(chunks):
            if stop.is_set():
                return
            frame = encode_frame(stream_id, seq, chunk, last=seq == len(chunks) - 1)
            await client.publish(f"hearth/satellite/{self.id}/audio", frame)
            if seq % 10 == 9:
                await asyncio.sleep(0.1)  # about 3x real time: within the bridge's rate limit


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory):
    broker = Mosquitto().start()
    data_dir = tmp_path_factory.mktemp("arbitration-bridge")
    proc = BridgeProcess(broker.host, broker.port, data_dir).start()
    try:
        yield broker, proc
    finally:
        proc.stop()
        broker.close()


async def _run_all(broker: Mosquitto, say: Any, tmp: Path) -> dict[str, Any]:
    clip = say("turn on the kitchen light")
    loud = Sat("kitchen-a", "kitchen", load_wav_pcm16k(clip))
    mid = Sat("kitchen-b", "kitchen", attenuated(clip, -6, tmp / "m6.wav"))
    quiet = Sat("kitchen-c", "kitchen", attenuated(clip, -12, tmp / "m12.wav"))
    other = Sat("bedroom-a", "bedroom", load_wav_pcm16k(say("turn off the bedroom light")))
    lone = Sat("garage-a", "garage", load_wav_pcm16k(clip))
    assert loud.speech_db - mid.speech_db == pytest.approx(6, abs=0.5)
    assert mid.speech_db - quiet.speech_db == pytest.approx(6, abs=0.5)
    sats = [loud, mid, quiet, other, lone]
    seen: list[tuple[str, str, dict[str, Any]]] = []  # (satellite, leaf, payload) the bridge sent
    got = asyncio.Event()

    clients = {s.id: aiomqtt.Client(broker.host, broker.port, identifier=f"{s.id}-{uuid.uuid4().hex[:4]}") for s in sats}
    probe = aiomqtt.Client(broker.host, broker.port, identifier=f"probe-{uuid.uuid4().hex[:4]}")
    async with probe, clients[loud.id], clients[mid.id], clients[quiet.id], clients[other.id], clients[lone.id]:
        await probe.subscribe("hearth/satellite/+/+")

        async def read() -> None:
            async for message in probe.messages:
                _, _, sat_id, leaf = str(message.topic).split("/")
                if leaf in ("audio", "status", "event", "state"):
                    continue
                payload = message.payload if isinstance(message.payload, bytes) else b""
                try:
                    data = json.loads(payload) if payload else {}
                except ValueError:
                    data = {"raw": len(payload)}
                seen.append((sat_id, leaf, data if isinstance(data, dict) else {}))
                got.set()

        reader = asyncio.create_task(read())
        for s in sats:
            await s.announce(clients[s.id])
        await asyncio.sleep(0.5)

        async def until(predicate: Any, timeout: float = 15.0) -> None:
            async with asyncio.timeout(timeout):
                while not predicate():
                    got.clear()
                    await got.wait()

        def intents(sat_id: str) -> int:
            return sum(1 for s, leaf, _ in seen if s == sat_id and leaf == "intent")

        results: dict[str, Any] = {"runs": []}
        for run in range(RUNS):
            start = len(seen)
            contenders = [loud, mid, quiet]
            random.shuffle(contenders)  # the loudest is not always the first to wake
            with_other = run % 4 == 0
            stops = {s.id: asyncio.Event() for s in sats}
            streams = [asyncio.create_task(s.wake_and_stream(clients[s.id], stops[s.id]))
                       for s in contenders + ([other] if with_other else [])]
            before = intents(loud.id), intents(other.id)

            def finished(before: tuple[int, int] = before, with_other: bool = with_other, start: int = start) -> bool:
                return (intents(loud.id) > before[0] and (not with_other or intents(other.id) > before[1])
                        and sum(1 for _, leaf, d in seen[start:]
                                if leaf == "command" and d.get("command") == "stand_down") >= 2)

            await until(finished)
            await asyncio.gather(*streams)
            await asyncio.sleep(0.3)  # anything a loser would wrongly get has time to arrive
            results["runs"].append(seen[start:])
            await asyncio.sleep(1.0)  # the rate limit's allowance refills
        # A satellite that competes with nobody
        start = len(seen)
        before_lone = intents(lone.id)
        await lone.wake_and_stream(clients[lone.id], asyncio.Event())
        await until(lambda: intents(lone.id) > before_lone)
        results["lone"] = seen[start:]
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        for s in sats:
            await clients[s.id].publish(f"hearth/satellite/{s.id}/status", json.dumps({"state": "offline"}),
                                        qos=1, retain=True)
    return results


def test_the_best_heard_satellite_answers_and_the_others_stand_down(bridge, say, tmp_path: Path) -> None:
    broker, _proc = bridge
    results = asyncio.run(_run_all(broker, say, tmp_path))
    assert len(results["runs"]) == RUNS
    for i, run in enumerate(results["runs"]):
        by_sat: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for sat_id, leaf, data in run:
            by_sat.setdefault(sat_id, []).append((leaf, data))
        winner = by_sat.get("kitchen-a", [])
        leaves = [leaf for leaf, _ in winner]
        assert "wake" in leaves and "transcript" in leaves, (i, run)
        transcript = next(d for leaf, d in winner if leaf == "transcript")
        assert transcript["text"] == "turn on the kitchen light", (i, transcript)
        assert not any(leaf == "command" and d.get("command") == "stand_down" for leaf, d in winner), (i, winner)
        for loser in ("kitchen-b", "kitchen-c"):
            got = by_sat.get(loser, [])
            assert [(leaf, d.get("command")) for leaf, d in got] == [("command", "stand_down")], (i, loser, got)
        if i % 4 == 0:  # the bedroom woke at the same time: its own session, not arbitrated
            bedroom = by_sat.get("bedroom-a", [])
            text = next((d["text"] for leaf, d in bedroom if leaf == "transcript"), None)
            assert text == "turn off the bedroom light", (i, bedroom)
            assert not any(leaf == "command" and d.get("command") == "stand_down" for leaf, d in bedroom)
    lone = [(s, leaf, d) for s, leaf, d in results["lone"] if s == "garage-a"]
    assert any(leaf == "transcript" and d.get("text") == "turn on the kitchen light" for _, leaf, d in lone), lone
    assert not any(leaf == "command" and d.get("command") == "stand_down" for _, leaf, d in lone)
    # The bridge's own account: every kitchen run was one decided group with two losers; the
    # bedroom and the garage satellites started at once, without a window.
    stats = wait_for_retained(broker.host, broker.port, "hearth/bridge/stats",
                              lambda d: d.get("arbitration", {}).get("alone", 0) >= RUNS // 4 + 1, timeout=20)
    assert stats["arbitration"]["decided"] == RUNS
    assert stats["arbitration"]["stood_down"] == 2 * RUNS
    assert stats["arbitration"]["alone"] == RUNS // 4 + 1


def test_neighbours_and_the_window_are_configured() -> None:
    from bridge.config import ConfigError, validate  # noqa: PLC0415

    settings = validate({"satellites": {"hall": {"neighbours": ["kitchen-a"]}}, "arbitration": {"window": 0.05}})
    assert settings.satellite("hall").neighbours == ("kitchen-a",)
    assert settings.satellite("kitchen-a").neighbours == ()
    assert settings.arbitration.window == 0.05
    assert validate({}).arbitration.window <= 0.15
    with pytest.raises(ConfigError):
        validate({"arbitration": {"window": 0.4}})  # beyond 150 ms: refused
    with pytest.raises(ConfigError):
        validate({"satellites": {"hall": {"neighbours": ["not an id!"]}}})


def test_the_best_heard_wins_then_the_likeliest_then_the_earliest() -> None:
    from bridge.service.arbitration import Claim, best  # noqa: PLC0415
    from bridge.satellite import SessionSource  # noqa: PLC0415

    def claim(order: int, db: float | None, probability: float | None) -> Claim:
        return Claim(sat=None, source=SessionSource.SATELLITE, speech_db=db,  # type: ignore[arg-type]
                     wake_probability=probability, order=order)

    assert best([claim(1, 10.0, 0.99), claim(2, 16.0, 0.6), claim(3, 4.0, 1.0)]).order == 2
    assert best([claim(1, 16.0, 0.7), claim(2, 16.2, 0.9), claim(3, 4.0, 1.0)]).order == 2  # a tie: likelier
    assert best([claim(1, 16.0, 0.9), claim(2, 16.0, 0.9)]).order == 1  # a tie: earlier
    assert best([claim(1, None, None), claim(2, 3.0, None)]).order == 2  # no level says nothing
    assert best([claim(1, None, None), claim(2, None, 0.5)]).order == 2


def test_bridge_side_wakes_of_two_hermes_sites_give_one_answer_and_the_loser_hears_nothing(
        tmp_path: Path, say: Any) -> None:
    """Two always-streaming Hermes sites in one area (configured) hear "okay nabu, turn on the
    kitchen light", one 6 dB quieter: the bridge hears the wake word on both, the louder one gets
    the hotword detection and the transcript; the other gets nothing a Hermes satellite reacts to
    (no hotword detection, no toggleOff, no transcript, no error) for its site."""
    from bridge.tools.satellite import SatelliteOptions, run_satellite  # noqa: PLC0415

    clip = say("okay nabu, turn on the kitchen light", speed=150)
    loud_pcm = load_wav_pcm16k(clip)
    quiet_pcm = attenuated(clip, -6, tmp_path / "hermes-m6.wav")
    broker = Mosquitto().start()
    proc = BridgeProcess(broker.host, broker.port, tmp_path / "data", args=[
        "--set", "satellites.hermes-loud.area=kitchen", "--set", "satellites.hermes-quiet.area=kitchen"]).start()
    try:
        async def run() -> tuple[list[tuple[str, dict[str, Any]]], list[Any]]:
            seen: list[tuple[str, dict[str, Any]]] = []
            async with aiomqtt.Client(broker.host, broker.port, identifier=f"probe-{uuid.uuid4().hex[:4]}") as probe:
                await probe.subscribe("hermes/#")

                async def read() -> None:
                    async for message in probe.messages:
                        topic = str(message.topic)
                        if "/audioServer/" in topic and topic.endswith("/audioFrame"):
                            continue
                        try:
                            data = json.loads(message.payload) if isinstance(message.payload, bytes) else {}
                        except ValueError:
                            data = {}
                        seen.append((topic, data if isinstance(data, dict) else {}))

                reader = asyncio.create_task(read())
                results = await asyncio.gather(*(run_satellite(SatelliteOptions(
                    sat_id=sat_id, host=broker.host, port=broker.port, protocol="hermes", wake="bridge",
                    trailing_silence=1.5, timeout=8.0), pcm)
                    for sat_id, pcm in (("hermes-loud", loud_pcm), ("hermes-quiet", quiet_pcm))),
                    return_exceptions=True)
                await asyncio.sleep(0.5)
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            return seen, results

        seen, results = asyncio.run(run())
        loud, quiet = results
        assert isinstance(loud, dict) and loud["transcript"] == "turn on the kitchen light", (loud, proc.log()[-3000:])
        assert not isinstance(quiet, dict), quiet  # no transcript for the quieter site
        for_quiet = [(topic, data) for topic, data in seen if data.get("siteId") == "hermes-quiet"]
        assert for_quiet == [], for_quiet
        assert any(topic.startswith("hermes/hotword/") and topic.endswith("/detected")
                   and data.get("siteId") == "hermes-loud" for topic, data in seen), seen
        stats = wait_for_retained(broker.host, broker.port, "hearth/bridge/stats",
                                  lambda d: d.get("arbitration", {}).get("decided", 0) >= 1, timeout=20)
        assert stats["arbitration"]["stood_down"] == 1  # the quieter site did wake, and lost
        assert stats["satellites"]["hermes-quiet"]["stood_down"] == 1
    finally:
        proc.stop()
        broker.close()
