"""End to end, no mocks on the path: satellite speech → real bridge → Home Assistant → light.

Home Assistant (this test's core, with its real MQTT client) and the real bridge process meet on
a real Mosquitto. The simulated satellite streams espeak-ng speech in real time; the bridge
recognises it with the vocabulary Home Assistant published; Home Assistant's built-in
conversation agent turns the light on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
import json
from pathlib import Path
import signal

import pytest

from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component

from bridge.tools.satellite import SatelliteError, SatelliteOptions, run_satellite
from custom_components.hearth.const import DOMAIN
from custom_components.hearth.pairing import refused_issue_id
from custom_components.hearth.policy_keeper import reset_issue_id
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.support.bridge_proc import BridgeProcess, Probe
from tests.support.broker import Mosquitto

from .e2e import (  # noqa: F401 - probe_fixture, real_bridge_fixture: fixtures
    LIGHT,
    needs_tools,
    probe_fixture,
    publish_json,
    real_bridge_fixture,
    satellite_status,
    setup_hearth,
    setup_kitchen_light,
    speech,
    start_bridge,
    state_of,
    until,
    vocabulary_in_service,
)

pytestmark = [needs_tools, pytest.mark.timeout(240)]

COMMAND = "turn on the kitchen light"
MICROPHONE = "switch.kitchen_microphone"


@pytest.fixture
async def home(
    hass: HomeAssistant, real_bridge: BridgeProcess, probe: Probe
) -> AsyncIterator[MockConfigEntry]:
    """Kitchen light, Hearth set up against the real bridge, satellite `kitchen` known."""
    assert await async_setup_component(hass, "conversation", {})
    await setup_kitchen_light(hass)
    entry = await setup_hearth(hass, real_bridge)
    # The satellite announces itself first (as a real one does when it boots), so its entities
    # exist before it speaks.
    await publish_json(
        probe, "hearth/satellite/kitchen/status", satellite_status("kitchen"), retain=True
    )
    await until(hass, lambda: state_of(hass, MICROPHONE) == "on", message="no microphone switch")
    assert state_of(hass, "binary_sensor.hearth_bridge_connectivity") == "on"
    await vocabulary_in_service(hass, probe)
    yield entry
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def _say(hass: HomeAssistant, port: int, tmp_path: Path, timeout: float) -> dict:
    pcm = await speech(hass, tmp_path, COMMAND)
    return await run_satellite(
        SatelliteOptions(sat_id="kitchen", host="127.0.0.1", port=port, timeout=timeout), pcm
    )


async def test_spoken_command_turns_on_the_light(
    hass: HomeAssistant, home: MockConfigEntry, real_mqtt: Mosquitto, probe: Probe, tmp_path: Path
) -> None:
    result = await _say(hass, real_mqtt.port, tmp_path, timeout=15)
    transcript = result["transcript"]
    await until(
        hass,
        lambda: state_of(hass, LIGHT) == "on",
        timeout=15,
        message=f"light still {state_of(hass, LIGHT)}; the bridge heard {transcript!r} "
        f"(intent {result.get('intent')})",
    )
    assert transcript == COMMAND, f"the bridge heard {transcript!r}"
    # Home Assistant answered the satellite on the session the bridge opened.
    response = await probe.wait_for(
        "/satellite/kitchen/response", lambda data: data.get("session_id") == result["session_id"]
    )
    assert response["text"]


async def test_muted_microphone_hears_nothing(
    hass: HomeAssistant, home: MockConfigEntry, real_mqtt: Mosquitto, probe: Probe, tmp_path: Path
) -> None:
    await hass.services.async_call(
        "switch", "turn_off", {"entity_id": MICROPHONE}, blocking=True
    )
    # Not optimistic: the switch shows the policy the bridge confirmed.
    assert state_of(hass, MICROPHONE) == "off"
    # the probe is another client: the retained state may reach it a moment after Home Assistant
    policy = await probe.wait_for(
        "/bridge/policy/state", lambda data: "kitchen" in data.get("microphones", {})
    )
    assert policy["microphones"]["kitchen"]["muted"] is True

    # Another client on the broker (every login may publish here) tries to unmute: unsigned, and
    # by replaying the signed command Home Assistant just sent. The bridge applies neither, and
    # Home Assistant raises the repair issue on the first refusal.
    (signed_mute,) = [p for t, p in probe.messages if t == "hearth/bridge/policy/set"]
    assert signed_mute.startswith(b"hearth-auth1 ")
    await probe.client.publish(
        "hearth/bridge/policy/set",
        json.dumps({"request_id": "forged", "microphones": {"kitchen": {"muted": False}}}),
        qos=1,
    )
    await probe.client.publish("hearth/bridge/policy/set", signed_mute, qos=1)
    refused = await probe.wait_for(
        "/bridge/policy/result", lambda d: d.get("request_id") == "forged"
    )
    assert refused["code"] == "unauthenticated" and refused["ok"] is False
    await until(
        hass,
        lambda: ir.async_get(hass).async_get_issue(DOMAIN, refused_issue_id(home.entry_id)) is not None,
        message="no repair issue for the refused command",
    )
    stats = await probe.wait_for("/bridge/stats", lambda d: d["refused_commands"]["refused"] >= 2, timeout=15)
    assert stats["refused_commands"]["by_reason"] == {"unsigned": 1, "replayed": 1}
    assert probe.json("/bridge/policy/state")[-1] == policy, "a refused command changed the policy"
    assert state_of(hass, MICROPHONE) == "off"

    with pytest.raises(SatelliteError, match="no result"):
        await _say(hass, real_mqtt.port, tmp_path, timeout=5)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert state_of(hass, LIGHT) == "off"
    assert probe.json("/satellite/kitchen/transcript") == []
    assert probe.json("/satellite/kitchen/response") == []


async def test_lost_policy_file_is_reapplied_and_the_microphone_stays_muted(
    hass: HomeAssistant,
    home: MockConfigEntry,
    real_bridge: BridgeProcess,
    real_mqtt: Mosquitto,
    probe: Probe,
    tmp_path: Path,
) -> None:
    """The real bridge loses its policy file while it is down: Home Assistant re-applies the mute
    it holds, shows "muted" only once the bridge confirms it, and raises the repair issue."""
    await hass.services.async_call("switch", "turn_off", {"entity_id": MICROPHONE}, blocking=True)
    muted = probe.json("/bridge/policy/state")[-1]
    assert muted["microphones"]["kitchen"]["muted"] is True
    hub = home.runtime_data.hub
    shown: list[tuple[str, str | None, bool]] = []

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        if event.data["entity_id"] == MICROPHONE and (state := event.data["new_state"]):
            policy = hub.policy
            shown.append((state.state, policy.epoch if policy else None,
                          bool(policy and policy.muted("kitchen"))))

    hass.bus.async_listen("state_changed", changed)

    # Down (SIGKILL), the policy file lost, up again on the same data folder.
    await hass.async_add_executor_job(real_bridge.stop, signal.SIGKILL)
    (real_bridge.data_dir / "policy.json").unlink()
    restarted = await start_bridge(hass, real_mqtt, real_bridge.data_dir)
    try:
        error = await probe.wait_for("/bridge/error", lambda d: d.get("code") == "policy_reset", timeout=60)
        lost = await probe.wait_for("/bridge/policy/state", lambda d: d["epoch"] != muted["epoch"])
        assert lost["revision"] == 0 and lost["microphones"] == {}, lost
        assert lost["epoch"] in error["message"]
        # Home Assistant re-applied the mute; the bridge confirmed it under its new epoch.
        again = await probe.wait_for(
            "/bridge/policy/state",
            lambda d: d["epoch"] == lost["epoch"] and "kitchen" in d["microphones"],
            timeout=20,
        )
        assert again["microphones"]["kitchen"]["muted"] is True
        await until(hass, lambda: state_of(hass, MICROPHONE) == "off", message="mute not shown again")
        assert all(muted for state, _epoch, muted in shown if state == "off"), shown
        new = [(state, muted) for state, epoch, muted in shown if epoch == lost["epoch"]]
        assert new[0] == ("on", False) and new[-1] == ("off", True), shown
        issue = ir.async_get(hass).async_get_issue(DOMAIN, reset_issue_id(home.entry_id))
        assert issue is not None and issue.translation_placeholders["muted"] == "kitchen"

        # The mute is real again: the bridge hears nothing from the kitchen.
        with pytest.raises(SatelliteError, match="no result"):
            await _say(hass, real_mqtt.port, tmp_path, timeout=5)
        assert probe.json("/satellite/kitchen/transcript") == []
    finally:
        await hass.async_add_executor_job(restarted.stop)
