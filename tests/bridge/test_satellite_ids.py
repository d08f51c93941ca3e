"""One satellite id rule end to end: every satellite the bridge serves can be muted.

Hermes site ids such as `living.room` or `pi@kitchen` are served, so the policy, the
configuration, Hearth's topics and the integration accept them too; a site id the policy could
not hold is refused (never served) with a counted error and a notice on `hermes/error/asr`.
In process: a real bridge from `build_bridge`, messages in through `dispatch`, what it would
publish read from the link's outgoing queue.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.audio.wav import make_wav
from bridge.config import ConfigError, validate
from bridge.privacy.policy import Policy, PolicyError
from bridge.protocol import hermes
from bridge.protocol.hearth import SATELLITE_ID, ProtocolError, Topics, encode_frame, is_satellite_id
from bridge.satellite import Protocol
from bridge.service import Bridge, build_bridge
from tests.support.inprocess import close_in_process, in_process_bridge, on, send_signed, sent
from custom_components.hearth import const as ha_const

SERVED = ["living.room", "pi@kitchen", "rhasspy:satellite-2", "kitchen", "a" * 64, "default"]
REFUSED = ["living room", "küche", "a/b", "a+b", "a#", "", "a" * 65, "kitchen\n", "tab\there", "$SYS"]


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    made = in_process_bridge(tmp_path)
    yield made
    await close_in_process(made)






def _policy_accepts(sat: str) -> bool:
    try:
        Policy().apply({"microphones": {sat: {"muted": True}}}, time.time())
    except PolicyError:
        return False
    return True


def _config_accepts(key: str, sat: str) -> bool:
    raw: dict[str, object] = {"bridge_id": "ids", "data_dir": "/nonexistent"}
    raw.update({"satellites": {sat: {}}} if key == "satellites" else {"hermes": {"sites": [sat]}})
    try:
        validate(raw)
    except ConfigError:
        return False
    return True


def _topic_accepts(sat: str) -> bool:
    try:
        return Topics("hearth").parse_satellite_topic(f"hearth/satellite/{sat}/status") == (sat, "status")
    except ProtocolError:
        return False


@pytest.mark.parametrize("sat", SERVED + REFUSED)
def test_one_rule_for_topics_policy_configuration_and_the_integration(sat: str) -> None:
    expected = sat in SERVED
    assert is_satellite_id(sat) is expected
    assert (SATELLITE_ID.fullmatch(sat) is not None) is expected
    assert (ha_const.SATELLITE_ID.fullmatch(sat) is not None) is expected
    assert _policy_accepts(sat) is expected
    assert _config_accepts("satellites", sat) is expected
    assert _config_accepts("hermes.sites", sat) is expected
    if "/" not in sat:  # a `/` is another topic level, refused as a malformed topic
        assert _topic_accepts(sat) is expected


def test_a_bad_satellite_key_is_named_in_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        validate({"bridge_id": "ids", "data_dir": "/x", "satellites": {"living room": {}}})
    assert str(err.value).startswith("satellites: 'living room' is not a satellite id")
    assert "\n" not in str(err.value)


def test_session_control_is_validated() -> None:
    assert validate({"bridge_id": "x", "data_dir": "/x"}).hermes.session_control == "any"
    assert validate({"bridge_id": "x", "data_dir": "/x", "hermes": {"session_control": "none"}}).hermes.session_control == "none"
    with pytest.raises(ConfigError, match="hermes.session_control"):
        validate({"bridge_id": "x", "data_dir": "/x", "hermes": {"session_control": "some"}})


async def test_a_dotted_hermes_site_is_served_and_can_be_muted(bridge: Bridge) -> None:
    bridge.dispatch("hermes/audioServer/living.room/audioFrame", make_wav(bytes(512)))
    assert bridge.satellites["living.room"].protocol is Protocol.HERMES
    sent(bridge)
    send_signed(bridge, "hearth/bridge/policy/set", json.dumps(
        {"request_id": "m1", "microphones": {"living.room": {"muted": True}}}).encode())
    out = sent(bridge)
    (result,) = on(out, "hearth/bridge/policy/result")
    assert result["ok"] is True, result
    assert on(out, "living.room/audio") == [{"mute_input": "true"}]
    assert on(out, "hearth/satellite/living.room/state")[-1]["muted"] is True
    frames_before = bridge.satellites["living.room"].counters["frames"]
    for _ in range(5):
        bridge.dispatch("hermes/audioServer/living.room/audioFrame", make_wav(bytes(512)))
    assert bridge.control.dropped_muted == 5
    assert bridge.satellites["living.room"].counters["frames"] == frames_before  # nothing queued
    assert bridge.errors.counts["muted"] == 5


async def test_a_hearth_satellite_with_a_dotted_id_is_served(bridge: Bridge) -> None:
    bridge.dispatch("hearth/satellite/pi@kitchen/status", b'{"state": "online"}')
    assert bridge.satellites["pi@kitchen"].protocol is Protocol.HEARTH
    bridge.dispatch("hearth/satellite/pi@kitchen/audio", encode_frame(1, 0, bytes(960)))
    assert bridge.satellites["pi@kitchen"].counters["frames"] == 1
    assert not on(sent(bridge), "hearth/bridge/error")


async def test_a_site_the_policy_could_not_hold_is_refused_and_told(bridge: Bridge) -> None:
    for _ in range(3):
        bridge.dispatch("hermes/audioServer/living room/audioFrame", make_wav(bytes(512)))
    bridge.dispatch(hermes.START_LISTENING, json.dumps({"siteId": "küche"}).encode())
    assert list(bridge.satellites) == []
    out = sent(bridge)
    assert {e["code"] for e in on(out, "hearth/bridge/error")} == {"bad_satellite_id"}
    assert bridge.errors.counts["bad_satellite_id"] == 4
    notices = on(out, hermes.ERROR_ASR)
    # told once per site (the repeats within 10 s are counted, not published again)
    assert [(n["siteId"], n["context"]) for n in notices] == [("living room", "bad_satellite_id"),
                                                              ("küche", "bad_satellite_id")]
    assert all("1-64 characters" in str(n["error"]) for n in notices)


async def test_a_site_outside_hermes_sites_is_refused_and_told(tmp_path: Path) -> None:
    made = build_bridge(validate({"data_dir": str(tmp_path), "bridge_id": "t", "status_api": {"enabled": False},
                                  "tts": {"engine": "none"}, "hermes": {"sites": ["living.room"]}}))
    made.dispatch("hermes/audioServer/porch/audioFrame", make_wav(bytes(512)))
    made.dispatch("hermes/audioServer/living.room/audioFrame", make_wav(bytes(512)))
    assert list(made.satellites) == ["living.room"]
    out = sent(made)
    assert [(n["siteId"], n["context"]) for n in on(out, hermes.ERROR_ASR)] == [("porch", "unknown_satellite")]
    for sat in list(made.satellites.values()):
        await sat.close()
