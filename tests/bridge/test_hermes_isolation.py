"""Hermes clients and Hearth satellites kept apart, and Hermes session control (in process).

A Hermes message naming a Hearth satellite's id is refused, counted as `hermes_site_conflict`
and told on `hermes/error/...`: a `tts/say` or `endSession` never speaks on a Hearth satellite.
A Hearth satellite announcing itself under an id a Hermes client used first takes it over and
works. `hermes.session_control` decides whose startListening, stopListening and hotword
detections count. A real bridge from `build_bridge`, messages in through `dispatch`, the voice
replaced at its boundary by one that records what it was asked to say.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.audio.wav import make_wav
from bridge.engines import Locality, SynthesizedAudio, TextToSpeech
from bridge.protocol import hermes
from bridge.protocol.hearth import encode_frame
from bridge.satellite import Protocol, Satellite, Session, SessionSource
from bridge.satellite.machine import END_OF_STREAM
from bridge.service import Bridge
from tests.support.inprocess import close_in_process, in_process_bridge, on, sent



class RecordingVoice(TextToSpeech):
    """The voice at its boundary: records the text, returns 0.1 s of silence."""

    name = "recording"
    locality = Locality.IN_PROCESS

    def __init__(self) -> None:
        self.said: list[str] = []

    async def synthesize(self, text: str, rate: int) -> SynthesizedAudio:
        self.said.append(text)
        return SynthesizedAudio(bytes(rate // 5), rate)


class NoStream:
    complete = False

    async def cancel(self) -> None:
        return None


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Callable[..., Bridge]]:
    made: list[Bridge] = []

    def _make(**hermes_settings: Any) -> Bridge:
        bridge = in_process_bridge(tmp_path / str(len(made)), hermes=hermes_settings)
        bridge.speech_out.tts = RecordingVoice()
        made.append(bridge)
        return bridge

    yield _make
    for bridge in made:
        await close_in_process(bridge)


def voice(bridge: Bridge) -> RecordingVoice:
    assert isinstance(bridge.speech_out.tts, RecordingVoice)
    return bridge.speech_out.tts






def publish(bridge: Bridge, topic: str, payload: dict[str, object]) -> None:
    bridge.dispatch(topic, json.dumps(payload).encode())


def hearth_online(bridge: Bridge, sat_id: str) -> Satellite:
    publish(bridge, f"hearth/satellite/{sat_id}/status", {"state": "online"})
    return bridge.satellites[sat_id]


def hermes_frame(bridge: Bridge, site: str) -> None:
    bridge.dispatch(f"hermes/audioServer/{site}/audioFrame", make_wav(bytes(512)))


async def settle(until: Callable[[], bool] | None = None) -> None:
    for _ in range(100):
        await asyncio.sleep(0.01)
        if until is not None and until():
            return


def fake_session(sat: Satellite, session_id: str, source: SessionSource) -> Session:
    session = Session(id=session_id, source=source, wake_word="okay_nabu", stream=NoStream(),  # type: ignore[arg-type]
                      endpointer=None)  # type: ignore[arg-type]
    sat.session = session
    return session


# -- Hermes messages never reach a Hearth satellite ---------------------------------------------


async def test_tts_say_for_a_hearth_satellite_is_refused_and_counted(make: Callable[..., Bridge]) -> None:
    bridge = make()
    hearth_online(bridge, "kitchen")
    sent(bridge)
    publish(bridge, hermes.TTS_SAY, {"siteId": "kitchen", "text": "open the door", "id": "say-1"})
    await settle()
    out = sent(bridge)
    assert voice(bridge).said == []
    assert not [t for t, _, _ in out if t.startswith("hearth/satellite/kitchen/")]
    assert [e["code"] for e in on(out, "hearth/bridge/error")] == ["hermes_site_conflict"]
    assert on(out, "hearth/bridge/error")[0]["satellite"] is None  # nothing on the Hearth satellite's topics
    (notice,) = on(out, hermes.ERROR_TTS)
    assert (notice["siteId"], notice["context"]) == ("kitchen", "hermes_site_conflict")
    assert on(out, hermes.SAY_FINISHED) == []
    assert bridge.errors.counts["hermes_site_conflict"] == 1


async def test_tts_say_for_a_hermes_site_is_still_spoken(make: Callable[..., Bridge]) -> None:
    bridge = make()
    publish(bridge, hermes.TTS_SAY, {"siteId": "porch", "text": "hello", "id": "say-2"})
    await settle(lambda: bool(voice(bridge).said))
    out = sent(bridge)
    assert voice(bridge).said == ["hello"]
    (play_topic,) = [t for t, _, _ in out if t.startswith("hermes/audioServer/porch/playBytes/")]
    publish(bridge, "hermes/audioServer/porch/playFinished", {"id": play_topic.rsplit("/", 1)[1], "siteId": "porch"})
    finished: list[dict[str, object]] = []

    def said_finished() -> bool:
        finished.extend(on(sent(bridge), hermes.SAY_FINISHED))
        return bool(finished)

    await settle(said_finished)
    assert [f["id"] for f in finished] == ["say-2"]
    assert bridge.errors.counts["hermes_site_conflict"] == 0


async def test_end_session_with_a_hearth_satellites_session_is_refused(make: Callable[..., Bridge]) -> None:
    bridge = make()
    hearth_online(bridge, "kitchen")
    hermes_frame(bridge, "porch")
    bridge.speech_out.remember_session("hearth-session", "kitchen")  # heard on the Hearth satellite
    publish(bridge, hermes.END_SESSION, {"siteId": "porch", "sessionId": "hearth-session", "text": "unlocked"})
    publish(bridge, hermes.END_SESSION, {"siteId": "kitchen", "sessionId": "x", "text": "unlocked"})
    await settle()
    assert voice(bridge).said == []
    assert bridge.errors.counts["hermes_site_conflict"] == 2


async def test_every_other_hermes_message_for_a_hearth_id_is_refused(make: Callable[..., Bridge]) -> None:
    bridge = make()
    sat = hearth_online(bridge, "kitchen")
    sent(bridge)
    hermes_frame(bridge, "kitchen")
    publish(bridge, hermes.START_LISTENING, {"siteId": "kitchen", "sessionId": "h1"})
    publish(bridge, "hermes/hotword/okay_nabu/detected", {"siteId": "kitchen", "sessionId": "h2"})
    publish(bridge, hermes.STOP_LISTENING, {"siteId": "kitchen"})
    publish(bridge, "hermes/audioServer/kitchen/playFinished", {"id": "p1"})
    publish(bridge, hermes.NLU_QUERY, {"siteId": "kitchen", "input": "turn on the light"})
    assert bridge.satellites["kitchen"] is sat and sat.protocol is Protocol.HEARTH
    assert sat.pending_start is None and sat.session is None and sat.counters["frames"] == 0
    assert bridge.errors.counts["hermes_site_conflict"] == 6
    out = sent(bridge)
    assert not [t for t, _, _ in out if t.startswith("hearth/satellite/kitchen/")]
    assert {n["context"] for n in on(out, hermes.ERROR_ASR)} == {"hermes_site_conflict"}


async def test_a_hearth_satellite_takes_its_id_back_from_a_hermes_site(make: Callable[..., Bridge]) -> None:
    bridge = make()
    hermes_frame(bridge, "kitchen")  # a Hermes client speaks first under the Hearth satellite's id
    assert bridge.satellites["kitchen"].protocol is Protocol.HERMES
    sent(bridge)
    sat = hearth_online(bridge, "kitchen")
    assert sat.protocol is Protocol.HEARTH
    bridge.dispatch("hearth/satellite/kitchen/audio", encode_frame(1, 0, bytes(960)))
    assert sat.counters["frames"] == 1  # served, not "unknown_satellite"
    await asyncio.gather(*bridge._closing)  # noqa: SLF001 - the Hermes site is closed
    out = sent(bridge)
    assert [e["code"] for e in on(out, "hearth/bridge/error")] == ["hermes_site_replaced"]
    assert [n["context"] for n in on(out, hermes.ERROR_ASR)] == ["hermes_site_replaced"]
    assert on(out, "hearth/satellite/kitchen/state")[-1]["protocol"] == "hearth"
    hermes_frame(bridge, "kitchen")  # and the Hermes client is refused from now on
    assert bridge.satellites["kitchen"] is sat and sat.counters["frames"] == 1
    assert bridge.errors.counts["hermes_site_conflict"] == 1


async def test_hearth_topics_do_not_reach_a_hermes_site(make: Callable[..., Bridge]) -> None:
    bridge = make()
    hermes_frame(bridge, "porch")
    site = bridge.satellites["porch"]
    publish(bridge, "hearth/satellite/porch/event", {"type": "wake"})
    bridge.dispatch("hearth/satellite/porch/status", b"")  # a cleared Hearth status is not the site's
    await settle()
    assert bridge.satellites["porch"] is site and site.pending_start is None and site.session is None
    assert bridge.errors.counts["unknown_satellite"] == 1


# -- session control -----------------------------------------------------------------------------


async def test_session_control_any_is_compatible(make: Callable[..., Bridge]) -> None:
    bridge = make()
    hermes_frame(bridge, "porch")
    site = bridge.satellites["porch"]
    publish(bridge, hermes.START_LISTENING, {"siteId": "porch", "sessionId": "dm-1"})
    assert site.pending_start is not None and site.pending_start.session_id == "dm-1"
    site.pending_start = None
    fake_session(site, "own-wake", SessionSource.BRIDGE)
    publish(bridge, hermes.STOP_LISTENING, {"siteId": "porch"})
    assert site.queue[-1][1] is END_OF_STREAM  # the session ends now
    assert bridge.errors.counts["hermes_session_control"] == 0


async def test_session_control_none_refuses_clients(make: Callable[..., Bridge]) -> None:
    bridge = make(session_control="none")
    hermes_frame(bridge, "porch")
    site = bridge.satellites["porch"]
    sent(bridge)
    publish(bridge, hermes.START_LISTENING, {"siteId": "porch", "sessionId": "dm-1"})
    publish(bridge, "hermes/hotword/okay_nabu/detected", {"siteId": "porch", "sessionId": "dm-2"})
    assert site.pending_start is None
    # The bridge's own wake: its detection comes back to it and is not a client's.
    own = fake_session(site, "own-wake", SessionSource.BRIDGE)
    bridge.hermes.hotword_detected(site, own)
    publish(bridge, "hermes/hotword/okay_nabu/detected", {"siteId": "porch", "sessionId": "own-wake"})
    queued = len(site.queue)
    publish(bridge, hermes.STOP_LISTENING, {"siteId": "porch"})
    assert len(site.queue) == queued  # not cut short
    assert bridge.errors.counts["hermes_session_control"] == 3
    out = sent(bridge)
    assert [e["code"] for e in on(out, "hearth/bridge/error")] == ["hermes_session_control"]  # 1/s per cause
    assert {n["context"] for n in on(out, hermes.ERROR_ASR)} == {"hermes_session_control"}
    site.session = None
    site.pending_start = None
    site.queue.clear()


async def test_session_control_own_protects_the_bridges_sessions(make: Callable[..., Bridge]) -> None:
    bridge = make(session_control="own")
    hermes_frame(bridge, "porch")
    site = bridge.satellites["porch"]
    fake_session(site, "own-wake", SessionSource.BRIDGE)
    queued = len(site.queue)
    publish(bridge, hermes.STOP_LISTENING, {"siteId": "porch"})
    publish(bridge, hermes.STOP_LISTENING, {"siteId": "porch", "sessionId": "own-wake"})
    assert len(site.queue) == queued
    assert bridge.errors.counts["hermes_session_control"] == 2
    site.session = None
    publish(bridge, hermes.START_LISTENING, {"siteId": "porch", "sessionId": "dm-1"})
    assert site.pending_start is not None and site.pending_start.session_id == "dm-1"
    site.pending_start = None
    fake_session(site, "dm-1", SessionSource.COMMAND)  # the client's session, opened
    publish(bridge, hermes.STOP_LISTENING, {"siteId": "porch", "sessionId": "dm-1"})
    assert site.queue[-1][1] is END_OF_STREAM
    assert bridge.errors.counts["hermes_session_control"] == 2
    site.session = None
    site.queue.clear()
