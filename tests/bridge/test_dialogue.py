"""Asking back, end to end: a real bridge and Mosquitto, espeak-ng speech, a Hearth satellite that
wakes on its own (so it streams only when told to: after its wake word, or after the bridge's
`start_streaming` for the answer to a question).

The bridge demands full confidence for sensitive actions (`recognition.sensitive_confidence=1.0`),
so "unlock the front door" is always asked about ("Unlock the front door?"). One bridge serves the
module; each test uses a satellite of its own.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.protocol.hearth import decode_frame, encode_frame
from bridge.tools.satellite import load_wav_pcm16k
from tests.support.bridge_proc import BridgeProcess, Probe
from tests.support.broker import Mosquitto
from tests.support.signing import signed

FRAME = 960


@pytest.fixture(scope="module")
def asking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, BridgeProcess]]:
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp_path_factory.mktemp("dialogue-data"),
                           args=["--set", "recognition.sensitive_confidence=1.0"]).start()
    try:
        yield broker, bridge
    finally:
        bridge.stop()
        broker.close()


class Satellite:
    """A Hearth satellite that detects its wake word itself, driven by a test."""

    def __init__(self, probe: Probe, sat_id: str) -> None:
        self.probe, self.id = probe, sat_id
        self.topic = f"hearth/satellite/{sat_id}"

    async def announce(self) -> None:
        await self.probe.client.publish(f"{self.topic}/status", json.dumps({
            "state": "online", "protocol": 1, "name": self.id, "audio": {"rate": 16000, "width": 2, "channels": 1},
            "capabilities": {"wake_word": True, "speaker": True, "mute": True}}), qos=1, retain=True)
        await self.probe.wait_for("/state", lambda d: d.get("online") is True)

    async def stream(self, pcm: bytes, wake: bool, until_stopped: bool = True, silence: float = 2.0) -> None:
        """Streams `pcm` in real time (after a wake event if `wake`), then silence, until the bridge
        says stop_streaming (or the audio runs out)."""
        stream_id = random.randrange(1 << 32)
        stops_before = len([c for c in self.probe.json(f"{self.topic}/command") if c["command"] == "stop_streaming"])
        if wake:
            await self.probe.client.publish(f"{self.topic}/event", json.dumps(
                {"type": "wake", "wake_word": "okay_nabu", "stream_id": stream_id}))
        audio = pcm + bytes(int(silence * 32000))
        loop = asyncio.get_running_loop()
        started = loop.time()
        for seq, offset in enumerate(range(0, len(audio), FRAME)):
            stops = [c for c in self.probe.json(f"{self.topic}/command") if c["command"] == "stop_streaming"]
            if until_stopped and len(stops) > stops_before:
                return
            await asyncio.sleep(max(0.0, started + offset / 32000 - loop.time()))
            await self.probe.client.publish(f"{self.topic}/audio", encode_frame(stream_id, seq, audio[offset:offset + FRAME]))

    async def hear_play(self, timeout: float = 20.0) -> float:
        """Waits for the last chunk of a `play`; returns its length in seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            frames = [decode_frame(p) for t, p in self.probe.messages if t == f"{self.topic}/play"]
            last = [f for f in frames if f.last]
            if last:
                stream = last[0].stream_id
                return sum(len(f.pcm) for f in frames if f.stream_id == stream) / 32000
            assert asyncio.get_running_loop().time() < deadline, "nothing played"
            await asyncio.sleep(0.05)

    async def played(self) -> None:
        await self.probe.client.publish(f"{self.topic}/event", json.dumps({"type": "played"}))

    def plays(self) -> int:
        return len({decode_frame(p).stream_id for t, p in self.probe.messages if t == f"{self.topic}/play"})

    def acted(self) -> list[dict[str, Any]]:
        return [t for t in self.probe.json(f"{self.topic}/transcript") if not t["rejected"]]


async def _asked(sat: Satellite, say) -> dict[str, Any]:
    """Says the unlock command; returns the question the bridge asked."""
    await sat.announce()
    await sat.stream(load_wav_pcm16k(say("unlock the front door")), wake=True)
    question = await sat.probe.wait_for(f"{sat.topic}/question")
    transcript = await sat.probe.wait_for(f"{sat.topic}/transcript")
    assert transcript["rejected"] is True and transcript["text"] == ""  # nothing acts on it yet
    assert question["kind"] == "did_you_mean" and question["reason"] == "sensitive_unsure"
    assert question["intents"] == ["HassTurnOff"] and question["entity_ids"] == ["lock.front_door"]
    assert question["text"] == "Unlock the front door?"
    return question


async def _answer(sat: Satellite, say, words: str) -> dict[str, Any]:
    """Lets the question play out, answers `words` when told to stream; returns the `answer`."""
    await sat.hear_play()
    assert not [c for c in sat.probe.json(f"{sat.topic}/command") if c["command"] == "start_streaming"]
    await sat.played()
    start = await sat.probe.wait_for(f"{sat.topic}/command", lambda c: c["command"] == "start_streaming")
    assert start["session_id"]
    await sat.stream(load_wav_pcm16k(say(words)) if words else b"", wake=False, silence=6.0)
    return await sat.probe.wait_for(f"{sat.topic}/answer")


async def test_yes_acts_on_the_meaning_asked_about(asking, say) -> None:
    broker, _bridge = asking
    async with Probe(broker.host, broker.port, ["hearth/satellite/yes-sat/#"]) as probe:
        sat = Satellite(probe, "yes-sat")
        question = await _asked(sat, say)
        answer = await _answer(sat, say, "yes")
        assert answer == {"session_id": question["session_id"], "satellite": "yes-sat", "outcome": "yes",
                          "acted": True, "choice": 0, "intent": "HassTurnOff"}
        acted = await probe.wait_for(f"{sat.topic}/intent", lambda d: not d["rejected"])
        assert acted["session_id"] == question["session_id"] and acted["text"] == "unlock the front door"
        assert acted["intent"]["name"] == "HassTurnOff"
        assert acted["intent"]["slots"]["name"]["entity_ids"] == ["lock.front_door"]
        assert [t["text"] for t in sat.acted()] == ["unlock the front door"]
        await asyncio.sleep(0.5)
        assert sat.plays() == 1  # the question only: no "never mind"


async def test_no_does_nothing_and_says_so(asking, say) -> None:
    broker, _bridge = asking
    async with Probe(broker.host, broker.port, ["hearth/satellite/no-sat/#"]) as probe:
        sat = Satellite(probe, "no-sat")
        await _asked(sat, say)
        answer = await _answer(sat, say, "no thanks")
        assert answer["outcome"] == "no" and answer["acted"] is False and answer["intent"] is None
        for _ in range(100):  # "OK, never mind." follows
            if sat.plays() == 2:
                break
            await asyncio.sleep(0.1)
        assert sat.plays() == 2
        assert sat.acted() == [] and not [i for i in probe.json(f"{sat.topic}/intent") if i["intent"]]


async def test_silence_does_nothing_within_the_time_out(asking, say) -> None:
    broker, _bridge = asking
    async with Probe(broker.host, broker.port, ["hearth/satellite/quiet-sat/#"]) as probe:
        sat = Satellite(probe, "quiet-sat")
        await _asked(sat, say)
        await sat.hear_play()
        await sat.played()
        start = await probe.wait_for(f"{sat.topic}/command", lambda c: c["command"] == "start_streaming")
        began = asyncio.get_running_loop().time()
        streaming = asyncio.create_task(sat.stream(b"", wake=False, silence=8.0))
        answer = await probe.wait_for(f"{sat.topic}/answer", timeout=8.0)
        waited = asyncio.get_running_loop().time() - began
        assert answer["outcome"] in ("silence", "timeout") and answer["acted"] is False
        assert waited <= 5.0 + 1.0  # the question's time-out (5 s) bounds it
        stop = await probe.wait_for(f"{sat.topic}/command", lambda c: c["command"] == "stop_streaming"
                                    and c["session_id"] == start["session_id"])
        assert stop  # the satellite is not left streaming in a session
        await streaming
        state = await probe.wait_for(f"{sat.topic}/state", lambda d: d["state"] == "idle")
        assert state["session_id"] is None
        assert sat.acted() == []


async def test_barge_in_during_the_question_ends_it_and_the_new_command_is_heard(asking, say) -> None:
    broker, _bridge = asking
    async with Probe(broker.host, broker.port, ["hearth/satellite/barge-sat/#"]) as probe:
        sat = Satellite(probe, "barge-sat")
        await _asked(sat, say)
        await sat.hear_play()  # the question is playing (no `played` yet): the user speaks over it
        await sat.stream(load_wav_pcm16k(say("turn on the kitchen light")), wake=True)
        answer = await probe.wait_for(f"{sat.topic}/answer")
        assert answer["outcome"] == "interrupted" and answer["acted"] is False
        acted = await probe.wait_for(f"{sat.topic}/intent", lambda d: not d["rejected"])
        assert acted["intent"]["name"] == "HassTurnOn" and acted["text"] == "turn on the kitchen light"
        assert [c["command"] for c in probe.json(f"{sat.topic}/command")].count("stop_playback") >= 1
        assert not [c for c in probe.json(f"{sat.topic}/command") if c["command"] == "start_streaming"]
        assert [t["text"] for t in sat.acted()] == ["turn on the kitchen light"]  # never the unlock


async def test_mute_during_the_question_means_nothing_is_heard(asking, say) -> None:
    broker, bridge = asking
    async with Probe(broker.host, broker.port, ["hearth/satellite/mute-sat/#", "hearth/bridge/policy/#"]) as probe:
        sat = Satellite(probe, "mute-sat")
        await _asked(sat, say)
        await sat.hear_play()
        await probe.client.publish("hearth/bridge/policy/set", signed(
            bridge.data_dir, "hearth/bridge/policy/set",
            {"request_id": "m1", "microphones": {"mute-sat": {"muted": True}}}))
        await probe.wait_for("/policy/result", lambda d: d["request_id"] == "m1" and d["ok"])
        await sat.played()
        answer = await probe.wait_for(f"{sat.topic}/answer")
        assert answer["outcome"] == "muted" and answer["acted"] is False
        await sat.stream(load_wav_pcm16k(say("yes")), wake=False, silence=0.5)  # dropped: muted
        await asyncio.sleep(1.0)
        assert not [c for c in probe.json(f"{sat.topic}/command") if c["command"] == "start_streaming"]
        assert sat.acted() == [] and sat.plays() == 1  # nothing said after the mute either
        assert len(probe.json(f"{sat.topic}/transcript")) == 1  # the question's utterance only


async def test_a_hermes_site_is_asked_and_its_yes_acts(asking, say) -> None:
    """The bridge is a Hermes site's dialogue manager: the question is played with playBytes, the
    site is listened to again once it says playFinished (no hotword in between), and the yes
    acts: intentParsed and intent/<name> for the skills, and Hearth's transcript and intent."""
    from bridge.audio.wav import make_wav

    broker, _bridge = asking
    site = "hermes.den"
    async with Probe(broker.host, broker.port, [f"hearth/satellite/{site}/#", "hermes/#"]) as probe:
        pending: list[bytes] = []

        async def microphone() -> None:  # an audio server streams all the time
            loop = asyncio.get_running_loop()
            started, sent = loop.time(), 0
            while True:
                chunk = pending.pop(0) if pending else bytes(FRAME)
                await asyncio.sleep(max(0.0, started + sent / 32000 - loop.time()))
                await probe.client.publish(f"hermes/audioServer/{site}/audioFrame", make_wav(chunk))
                sent += len(chunk)

        def speak(pcm: bytes) -> None:
            pending.extend(pcm[i:i + FRAME] for i in range(0, len(pcm), FRAME))

        mic = asyncio.create_task(microphone())
        try:
            await asyncio.sleep(0.3)
            await probe.client.publish("hermes/asr/startListening", json.dumps({"siteId": site, "sessionId": "h1"}))
            speak(load_wav_pcm16k(say("unlock the front door")))
            question = await probe.wait_for(f"{site}/question")
            assert question["kind"] == "did_you_mean" and question["text"] == "Unlock the front door?"
            for _ in range(200):
                plays = [t for t, _p in probe.messages if t.startswith(f"hermes/audioServer/{site}/playBytes/")]
                if plays:
                    break
                await asyncio.sleep(0.05)
            request_id = plays[0].rsplit("/", 1)[1]
            assert not probe.json("hermes/error/asr")  # the asked utterance did not end the dialogue
            await asyncio.sleep(1.0)
            await probe.client.publish(f"hermes/audioServer/{site}/playFinished",
                                       json.dumps({"id": request_id, "siteId": site}))
            await asyncio.sleep(0.3)
            speak(load_wav_pcm16k(say("yes")))
            answer = await probe.wait_for(f"{site}/answer")
            assert answer["outcome"] == "yes" and answer["acted"] is True
            parsed = await probe.wait_for("hermes/intent/HassTurnOff", lambda d: d.get("siteId") == site)
            assert parsed["sessionId"] == question["session_id"] and parsed["input"] == "unlock the front door"
            acted = await probe.wait_for(f"{site}/intent", lambda d: not d["rejected"])
            assert acted["intent"]["slots"]["name"]["entity_ids"] == ["lock.front_door"]
            assert not [d for d in probe.json("hermes/hotword/default/detected") if d.get("siteId") == site]
        finally:
            mic.cancel()
            await asyncio.gather(mic, return_exceptions=True)


async def test_home_assistant_asks_and_hears_the_answer_to_act_itself(asking, say) -> None:
    """`ask`: what Home Assistant's own pipeline would need to ask before acting. The bridge says
    the question, hears the answer and reports it; it acts on nothing."""
    broker, _bridge = asking
    async with Probe(broker.host, broker.port, ["hearth/satellite/ask-sat/#", "hearth/bridge/error"]) as probe:
        sat = Satellite(probe, "ask-sat")
        await sat.announce()
        await probe.client.publish(f"{sat.topic}/ask", json.dumps({"request_id": "r1", "choices": 4, "text": "Hm?"}))
        error = await probe.wait_for("bridge/error", lambda d: d["code"] == "bad_question")
        assert "choices" in error["message"]
        await probe.client.publish(f"{sat.topic}/ask", json.dumps({"request_id": "r2", "text": "Open the garage door?"}))
        question = await probe.wait_for(f"{sat.topic}/question")
        assert (question["request_id"], question["session_id"], question["kind"]) == ("r2", None, "confirm")
        answer = await _answer(sat, say, "yes")
        assert answer == {"session_id": None, "satellite": "ask-sat", "outcome": "yes", "acted": False,
                          "choice": 0, "intent": None, "request_id": "r2"}
        assert probe.json(f"{sat.topic}/transcript") == [] and probe.json(f"{sat.topic}/intent") == []


async def test_which_one_names_them_by_area_and_the_choice_acts_on_that_one(asking, say) -> None:
    """Two entities called "Night lamp" (bedroom, office): "which one?", answered by its place.

    Last in the module: it gives the bridge a vocabulary with the two lamps added."""
    from pathlib import Path

    import yaml

    broker, _bridge = asking
    vocabulary = yaml.safe_load((Path(__file__).parents[2] / "bridge/data/demo_home.yaml").read_text())
    vocabulary["entities"] += [{"id": "light.bedroom_lamp", "name": "Night lamp", "domain": "light", "area": "bedroom"},
                               {"id": "light.office_lamp", "name": "Night lamp", "domain": "light", "area": "office"}]
    async with Probe(broker.host, broker.port, ["hearth/satellite/which-sat/#", "hearth/bridge/vocabulary/state"]) as probe:
        await probe.client.publish("hearth/bridge/vocabulary/set", json.dumps(vocabulary), qos=1, retain=True)
        await probe.wait_for("vocabulary/state", lambda d: d["entities"] == len(vocabulary["entities"]), timeout=90)
        sat = Satellite(probe, "which-sat")
        await sat.announce()
        await sat.stream(load_wav_pcm16k(say("turn on the night lamp")), wake=True)
        question = await probe.wait_for(f"{sat.topic}/question")
        assert question["kind"] == "which" and question["reason"] == "ambiguous_name"
        assert question["text"] == "Turn on the night lamp: the one in the bedroom or the one in the office?"
        assert question["entity_ids"] == ["light.bedroom_lamp", "light.office_lamp"]
        answer = await _answer(sat, say, "the second one")
        assert (answer["outcome"], answer["acted"], answer["choice"]) == ("yes", True, 1)
        acted = await probe.wait_for(f"{sat.topic}/intent", lambda d: not d["rejected"])
        assert acted["text"] == "turn on the night lamp in the office"
        assert acted["intent"]["slots"]["name"]["entity_ids"] == ["light.office_lamp"]
