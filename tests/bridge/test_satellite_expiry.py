"""The satellite table forgets what is gone and tells a refused satellite why (in process).

Offline Hearth satellites are forgotten after `OFFLINE_SATELLITE_EXPIRY`, silent Hermes sites
after `HERMES_SITE_EXPIRY` (their retained state cleared); a full table first forgets what is
gone, and a satellite still refused is told on its own topic (Hearth `<prefix>/satellite/<id>/error`,
Hermes `hermes/error/asr`). The table's clock is replaced by one the test moves.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.audio.wav import make_wav
from bridge.protocol import hermes
from bridge.service import Bridge
from tests.support.inprocess import close_in_process, in_process_bridge, on, sent
from bridge.protocol.hearth import encode_frame
from bridge.service.table import EVICTABLE_SILENCE, HERMES_SITE_EXPIRY, OFFLINE_SATELLITE_EXPIRY, ONLINE_SILENCE_EXPIRY



class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def bridge(tmp_path: Path, clock: Clock) -> AsyncIterator[Bridge]:
    made = in_process_bridge(tmp_path, limits={"max_satellites": 3})
    made.last_seen.clock = clock
    yield made
    await close_in_process(made)






def status(bridge: Bridge, sat_id: str, state: str = "online") -> None:
    bridge.dispatch(f"hearth/satellite/{sat_id}/status", json.dumps({"state": state}).encode())


def frame(bridge: Bridge, site: str) -> None:
    bridge.dispatch(f"hermes/audioServer/{site}/audioFrame", make_wav(bytes(512)))


async def test_an_offline_hearth_satellite_is_forgotten_and_its_state_cleared(bridge: Bridge, clock: Clock) -> None:
    status(bridge, "kitchen")
    status(bridge, "hall")
    clock.advance(3600)
    status(bridge, "kitchen", "offline")
    status(bridge, "hall")  # the online one announces itself again (hearth-satellite's refresh)
    clock.advance(OFFLINE_SATELLITE_EXPIRY - 1)
    assert bridge.expire_satellites() == []
    sent(bridge)
    clock.advance(1)
    assert bridge.expire_satellites() == ["kitchen"]  # the online one that keeps talking stays
    assert sorted(bridge.satellites) == ["hall"]
    assert ("hearth/satellite/kitchen/state", b"", True) in sent(bridge)
    await asyncio.gather(*bridge._closing)  # noqa: SLF001 - closed
    assert not on(sent(bridge), "hearth/satellite/kitchen/state")  # nothing stale republished
    status(bridge, "kitchen")  # it comes back: served again
    assert sorted(bridge.satellites) == ["hall", "kitchen"]


async def test_a_silent_hermes_site_is_forgotten(bridge: Bridge, clock: Clock) -> None:
    frame(bridge, "porch")
    frame(bridge, "living.room")
    clock.advance(HERMES_SITE_EXPIRY - 1)
    frame(bridge, "living.room")  # living.room keeps streaming, porch is silent
    assert bridge.expire_satellites() == []
    clock.advance(1)
    assert bridge.expire_satellites() == ["porch"]
    assert sorted(bridge.satellites) == ["living.room"]
    assert ("hearth/satellite/porch/state", b"", True) in sent(bridge)
    for _ in range(3):
        clock.advance(HERMES_SITE_EXPIRY - 1)
        frame(bridge, "living.room")
        assert bridge.expire_satellites() == []


async def test_a_site_asked_to_listen_is_not_forgotten(bridge: Bridge, clock: Clock) -> None:
    frame(bridge, "porch")
    bridge.dispatch(hermes.START_LISTENING, b'{"siteId": "porch", "sessionId": "s1"}')
    clock.advance(HERMES_SITE_EXPIRY * 10)
    assert bridge.satellites["porch"].pending_start is not None
    assert bridge.expire_satellites() == []
    bridge.satellites["porch"].pending_start = None


async def test_a_full_table_makes_room_from_what_is_gone_then_refuses_and_tells(bridge: Bridge, clock: Clock) -> None:
    status(bridge, "s0")
    status(bridge, "s1")
    status(bridge, "s2")
    status(bridge, "s2", "offline")
    clock.advance(OFFLINE_SATELLITE_EXPIRY)  # s2 is gone: it makes room at once
    status(bridge, "s3")
    assert sorted(bridge.satellites) == ["s0", "s1", "s3"]
    status(bridge, "s0")
    status(bridge, "s1")  # all three are talking: none of them makes room
    sent(bridge)
    status(bridge, "s4")  # nothing is gone now: refused, and told on its own topic
    frame(bridge, "porch")
    frame(bridge, "porch")
    assert sorted(bridge.satellites) == ["s0", "s1", "s3"]
    out = sent(bridge)
    (told,) = on(out, "hearth/satellite/s4/error")
    assert (told["code"], told["satellite"], told["fatal"]) == ("too_many_satellites", "s4", True)
    assert "limits.max_satellites" in str(told["message"])
    (hermes_told,) = on(out, hermes.ERROR_ASR)  # once, however many frames
    assert (hermes_told["siteId"], hermes_told["context"]) == ("porch", "too_many_satellites")
    assert bridge.errors.counts["too_many_satellites"] == 3
    assert "too_many_satellites" in [e["code"] for e in on(out, "hearth/bridge/error")]


async def test_refusal_notices_are_bounded_across_ids(bridge: Bridge) -> None:
    for index in range(3):
        status(bridge, f"s{index}")
    sent(bridge)
    for index in range(200):  # a flood of made-up ids
        status(bridge, f"flood{index}")
    told = [t for t, _, _ in sent(bridge) if t.endswith("/error") and t.startswith("hearth/satellite/")]
    assert 1 <= len(told) <= 25
    assert bridge.errors.counts["too_many_satellites"] == 200


async def test_an_online_satellite_that_sends_nothing_is_forgotten(bridge: Bridge, clock: Clock) -> None:
    """An "online" status without a last will (any broker login can make one up) does not hold a
    place for ever: silent for ONLINE_SILENCE_EXPIRY, it is gone; audio keeps a satellite."""
    status(bridge, "ghost")
    status(bridge, "talker")
    for seq in range(3):
        clock.advance(ONLINE_SILENCE_EXPIRY / 3)
        bridge.dispatch("hearth/satellite/talker/audio", encode_frame(7, seq, bytes(960)))
        if seq < 2:
            assert bridge.expire_satellites() == []
    assert bridge.expire_satellites() == ["ghost"]
    assert sorted(bridge.satellites) == ["talker"]
    assert ("hearth/satellite/ghost/state", b"", True) in sent(bridge)


async def test_a_full_table_of_ghosts_makes_room_for_a_real_satellite(bridge: Bridge, clock: Clock) -> None:
    """The probe: a flood of made-up "online" announcements fills the table; a real satellite
    2.5 minutes later is served, the longest-silent ghost giving way."""
    for index in range(3):
        status(bridge, f"ghost{index}")
        clock.advance(1)
    clock.advance(150)
    assert 150 >= EVICTABLE_SILENCE
    sent(bridge)
    status(bridge, "real")
    assert sorted(bridge.satellites) == ["ghost1", "ghost2", "real"]
    out = sent(bridge)
    assert ("hearth/satellite/ghost0/state", b"", True) in out
    assert not on(out, "hearth/satellite/real/error")
    assert "too_many_satellites" not in bridge.errors.counts


async def test_a_forgotten_satellite_that_speaks_is_told_to_announce_itself(bridge: Bridge, clock: Clock) -> None:
    status(bridge, "kitchen")
    clock.advance(ONLINE_SILENCE_EXPIRY)
    assert bridge.expire_satellites() == ["kitchen"]
    sent(bridge)
    for _ in range(5):  # however often it tries: told once, bounded
        bridge.dispatch("hearth/satellite/kitchen/event", json.dumps({"type": "wake", "stream_id": 1}).encode())
    (told,) = on(sent(bridge), "hearth/satellite/kitchen/error")
    assert (told["code"], told["session_id"], told["fatal"]) == ("unknown_satellite", None, True)
    status(bridge, "kitchen")  # it announces itself again: served
    assert "kitchen" in bridge.satellites
