"""The bridge lost its policy: Home Assistant notices, shows the truth, re-applies, and says so.

The fake bridge "loses its policy file" (`lose_policy`: the defaults at revision 0 under a new
epoch) and comes back online. Home Assistant must show what the bridge now holds (the microphone
listening, never "muted" while the bridge says otherwise), re-apply the policy the owner last
set with one `policy/set`, show the mute again only once the bridge confirms it, and raise a
translated repair issue saying what it re-applied. A bridge that does not answer leaves an error
issue and transcripts of the muted microphone ignored until it does.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.translation import async_get_translations
from homeassistant.setup import async_setup_component

from custom_components.hearth.const import DOMAIN
from custom_components.hearth.policy_keeper import (
    pending_issue_id,
    reapply_command,
    reset_issue_id,
    storage_key,
)
from custom_components.hearth.models import Policy
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .fake_bridge import HassBridge

MIC = "switch.kitchen_microphone"
PRIVACY = "switch.hearth_bridge_privacy_mode"
RETENTION = "select.hearth_bridge_audio_retention"


async def _call(hass: HomeAssistant, domain: str, service: str, entity_id: str, **data: Any) -> None:
    await hass.services.async_call(domain, service, {ATTR_ENTITY_ID: entity_id, **data}, blocking=True)


def _record(hass: HomeAssistant, entry: MockConfigEntry) -> list[tuple[str, str | None, bool]]:
    """Every state the microphone switch takes from now on, with the epoch of the policy the
    bridge last published and whether that policy mutes the kitchen, at that moment."""
    seen: list[tuple[str, str | None, bool]] = []
    hub = entry.runtime_data.hub

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        if event.data["entity_id"] == MIC and (state := event.data["new_state"]) is not None:
            policy = hub.policy
            seen.append((state.state, policy.epoch if policy else None,
                         bool(policy and policy.muted("kitchen"))))

    hass.bus.async_listen("state_changed", changed)
    return seen


async def _restart_without_policy(hass: HomeAssistant, bridge: HassBridge) -> None:
    """The bridge restarts with its policy file lost."""
    await bridge.go_offline()
    await hass.async_block_till_done(wait_background_tasks=True)
    bridge.lose_policy()
    await bridge.announce()
    await hass.async_block_till_done(wait_background_tasks=True)


async def _mute_kitchen_and_keep_audio(hass: HomeAssistant) -> None:
    await _call(hass, "switch", "turn_off", MIC)
    await _call(hass, "select", "select_option", RETENTION, option="memory")
    assert hass.states.get(MIC).state == STATE_OFF
    assert hass.states.get(RETENTION).state == "memory"


async def _placeholders_match_translation(hass: HomeAssistant, issue: ir.IssueEntry, text: str) -> None:
    translations = await async_get_translations(hass, "en", "issues", {DOMAIN})
    key = f"component.{DOMAIN}.issues.{issue.translation_key}"
    assert translations[f"{key}.title"]
    description = translations[f"{key}.{text}"]
    wanted = set(re.findall(r"{(\w+)}", description)) | set(re.findall(r"{(\w+)}", translations[f"{key}.title"]))
    assert wanted == set(issue.translation_placeholders or {})


async def test_a_lost_policy_is_shown_then_reapplied_and_confirmed(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    await _mute_kitchen_and_keep_audio(hass)
    commands_before = len(bridge.messages("/policy/set"))
    before = loaded.runtime_data.hub.policy.epoch
    states = _record(hass, loaded)

    await _restart_without_policy(hass, bridge)

    # Never "muted" unless the bridge's latest policy mutes it: under the new epoch the switch
    # showed the truth (listening) first, and "muted" only once the bridge confirmed the mute.
    assert all(muted for state, _epoch, muted in states if state == STATE_OFF), states
    new = [(state, muted) for state, epoch, muted in states if epoch not in (before, None)]
    assert new[0] == (STATE_ON, False) and new[-1] == (STATE_OFF, True), states
    assert hass.states.get(MIC).state == STATE_OFF
    # One command re-applied what the owner had set (and nothing the owner had not).
    (command,) = bridge.messages("/policy/set")[commands_before:]
    assert command["microphones"] == {"kitchen": {"muted": True}}
    assert (command["retention"], command["local_only"], command["privacy_mode"]) == ("memory", False, False)
    assert bridge.policy["microphones"]["kitchen"]["muted"] is True and bridge.policy["revision"] == 1
    assert hass.states.get(RETENTION).state == "memory"

    issues = ir.async_get(hass)
    assert issues.async_get_issue(DOMAIN, pending_issue_id(loaded.entry_id)) is None
    issue = issues.async_get_issue(DOMAIN, reset_issue_id(loaded.entry_id))
    assert issue is not None and issue.is_fixable and issue.is_persistent
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.translation_placeholders == {
        "bridge": "test-bridge", "local_only": "off", "privacy_mode": "off", "retention": "memory",
        "publish_transcripts": "on", "muted": "kitchen",
    }
    await _placeholders_match_translation(hass, issue, "fix_flow.step.confirm.description")

    # The owner reads it and confirms: the notice goes.
    assert await async_setup_component(hass, "repairs", {})
    manager = hass.data["repairs"]["flow_manager"]
    flow = await manager.async_init(DOMAIN, data={"issue_id": reset_issue_id(loaded.entry_id)})
    assert flow["step_id"] == "confirm"
    assert flow["description_placeholders"]["muted"] == "kitchen"
    await manager.async_configure(flow["flow_id"], {})
    assert issues.async_get_issue(DOMAIN, reset_issue_id(loaded.entry_id)) is None

    # The bridge's next restart keeps its epoch: nothing is re-applied, nothing raised.
    await bridge.go_offline()
    await bridge.announce()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(bridge.messages("/policy/set")) == commands_before + 1
    assert issues.async_get_issue(DOMAIN, reset_issue_id(loaded.entry_id)) is None


async def test_a_restart_with_the_policy_kept_is_not_a_reset(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    await _call(hass, "switch", "turn_off", MIC)
    sent = len(bridge.messages("/policy/set"))
    await bridge.go_offline()
    await bridge.announce()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(bridge.messages("/policy/set")) == sent
    assert hass.states.get(MIC).state == STATE_OFF
    assert not [i for i in ir.async_get(hass).issues.values() if i.domain == DOMAIN]


async def test_a_bridge_that_begins_sending_an_epoch_is_not_a_reset(
    hass: HomeAssistant, bridge: HassBridge, setup_entry
) -> None:
    bridge.policy.pop("epoch")  # a bridge from before epochs
    entry = await setup_entry()
    await bridge.announce()
    await bridge.satellite("kitchen")
    await hass.async_block_till_done(wait_background_tasks=True)
    await _call(hass, "switch", "turn_off", MIC)
    sent = len(bridge.messages("/policy/set"))
    keeper = entry.runtime_data.hub.keeper
    assert keeper.owner is not None and keeper.owner.epoch is None
    # Upgraded: the same policy, now with an epoch, at the same revision.
    bridge.policy["epoch"] = "now0with0epoch00"
    await bridge.go_offline()
    await bridge.announce()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(bridge.messages("/policy/set")) == sent
    assert keeper.owner.epoch == "now0with0epoch00" and keeper.reset is None
    assert hass.states.get(MIC).state == STATE_OFF
    assert not [i for i in ir.async_get(hass).issues.values() if i.domain == DOMAIN]


async def test_an_unanswered_reapply_is_an_error_issue_and_is_retried_when_the_bridge_is_back(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, fast_timeouts: None
) -> None:
    await _mute_kitchen_and_keep_audio(hass)
    bridge.answer = False
    await _restart_without_policy(hass, bridge)

    # Not confirmed: the switch shows what the bridge holds, and an error issue says why.
    assert hass.states.get(MIC).state == STATE_ON
    issues = ir.async_get(hass)
    pending = issues.async_get_issue(DOMAIN, pending_issue_id(loaded.entry_id))
    assert pending is not None and not pending.is_fixable
    assert pending.severity is ir.IssueSeverity.ERROR
    assert pending.translation_placeholders["muted"] == "kitchen"
    assert pending.translation_placeholders["error"] in (  # the timeout, translated if cached
        "The Hearth bridge test-bridge did not confirm the change in time; nothing was changed",
        "bridge_timeout",
    )
    await _placeholders_match_translation(hass, pending, "description")
    assert issues.async_get_issue(DOMAIN, reset_issue_id(loaded.entry_id)) is None

    # Fail closed meanwhile: what the microphone the owner muted hears is ignored.
    await bridge.transcript("kitchen", "turn on the kitchen light")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert bridge.messages("/satellite/kitchen/response") == []
    assert loaded.runtime_data.hub.satellites["kitchen"].last_utterance is None

    # The bridge answers again and comes back online: re-applied, confirmed, notice raised.
    bridge.answer = True
    await bridge.go_offline()
    await bridge.announce()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get(MIC).state == STATE_OFF
    assert bridge.policy["microphones"]["kitchen"]["muted"] is True
    assert issues.async_get_issue(DOMAIN, pending_issue_id(loaded.entry_id)) is None
    assert issues.async_get_issue(DOMAIN, reset_issue_id(loaded.entry_id)) is not None
    # And the satellite is heard again as the bridge's policy says.
    await _call(hass, "switch", "turn_on", MIC)
    await bridge.transcript("kitchen", "turn on the kitchen light")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert loaded.runtime_data.hub.satellites["kitchen"].last_utterance is not None


async def test_an_owner_change_while_not_reapplied_goes_with_the_reapply(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, fast_timeouts: None
) -> None:
    await _mute_kitchen_and_keep_audio(hass)
    bridge.answer = False
    await _restart_without_policy(hass, bridge)
    with pytest.raises(HomeAssistantError):
        await _call(hass, "switch", "turn_on", PRIVACY)
    assert hass.states.get(PRIVACY).state == STATE_OFF

    bridge.answer = True
    sent = len(bridge.messages("/policy/set"))
    await _call(hass, "switch", "turn_on", PRIVACY)
    (command,) = bridge.messages("/policy/set")[sent:]
    assert command["privacy_mode"] is True and command["microphones"] == {"kitchen": {"muted": True}}
    assert command["retention"] == "memory"
    assert hass.states.get(PRIVACY).state == STATE_ON
    assert hass.states.get(MIC).state == STATE_OFF
    assert ir.async_get(hass).async_get_issue(DOMAIN, reset_issue_id(loaded.entry_id)) is not None
    # Re-applied: the owner's next change is a plain one.
    await _call(hass, "switch", "turn_off", PRIVACY)
    assert bridge.messages("/policy/set")[-1] == {
        "request_id": bridge.messages("/policy/set")[-1]["request_id"], "privacy_mode": False}


async def test_the_kept_policy_outlives_a_home_assistant_restart(
    hass: HomeAssistant, bridge: HassBridge, setup_entry, config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """Home Assistant was down while the bridge lost its policy: the stored copy is re-applied."""
    owner = {**bridge.policy, "privacy_mode": True, "revision": 7, "epoch": "before0the0loss0",
             "microphones": {"kitchen": {"muted": True, "until": None},
                             "hall": {"muted": True, "until": 1.0}}}  # long expired
    hass_storage[storage_key(config_entry.entry_id)] = {
        "version": 1, "minor_version": 1, "key": storage_key(config_entry.entry_id),
        "data": {"policy": owner},
    }
    await setup_entry()
    bridge.lose_policy()
    await bridge.announce()
    await bridge.satellite("kitchen")
    await hass.async_block_till_done(wait_background_tasks=True)
    (command,) = bridge.messages("/policy/set")
    assert command["privacy_mode"] is True and command["microphones"] == {"kitchen": {"muted": True}}
    assert hass.states.get(PRIVACY).state == STATE_ON
    assert hass.states.get(MIC).state == STATE_OFF
    assert ir.async_get(hass).async_get_issue(DOMAIN, reset_issue_id(config_entry.entry_id)) is not None


def test_the_reapply_command() -> None:
    owner = Policy(
        local_only=True, privacy_mode=False, retention="disk", publish_transcripts=False,
        microphones={
            "kitchen": {"muted": True, "until": None},
            "hall": {"muted": True, "until": 1000.4},
            "porch": {"muted": True, "until": 10.0},  # over
            "attic": {"muted": False},
            "bad id": {"muted": True, "until": None},  # not a satellite id
            "den": {"muted": True, "until": "soon"},  # not a time: muted until unmuted
        },
        revision=3, epoch="e",
    )
    assert reapply_command(owner, 100.0) == {
        "local_only": True, "privacy_mode": False, "retention": "none", "publish_transcripts": False,
        "microphones": {"den": {"muted": True}, "hall": {"muted": True, "duration": 901},
                        "kitchen": {"muted": True}},
    }
    assert "microphones" not in reapply_command(Policy(), 0.0)


async def test_the_kept_policy_is_stored_and_forgotten_with_the_bridge(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, hass_storage: dict[str, Any]
) -> None:
    await _call(hass, "switch", "turn_off", MIC)
    await asyncio.sleep(0.7)  # the store writes half a second after the last change
    await hass.async_block_till_done()
    stored = hass_storage[storage_key(loaded.entry_id)]["data"]["policy"]
    assert stored["microphones"]["kitchen"]["muted"] is True
    assert (stored["epoch"], stored["revision"]) == (bridge.policy["epoch"], bridge.policy["revision"])
    assert await hass.config_entries.async_remove(loaded.entry_id)
    await hass.async_block_till_done()
    assert storage_key(loaded.entry_id) not in hass_storage
