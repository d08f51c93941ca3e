"""The blueprints in blueprints/automation/hearth: valid for Home Assistant's blueprint loader,
and each does what it says when used by an automation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
import shutil

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import persistent_notification
from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.blueprint import BLUEPRINT_SCHEMA, Blueprint
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from homeassistant.util import yaml as yaml_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.hearth.activity import EVENT_CLOUD_REFUSED

from .fake_bridge import HassBridge

BLUEPRINTS = Path(__file__).parents[2] / "blueprints" / "automation" / "hearth"
MICROPHONE = "switch.kitchen_microphone"
LOCAL_ONLY = "switch.hearth_bridge_local_only_processing"


def test_there_are_three_blueprints() -> None:
    assert sorted(path.name for path in BLUEPRINTS.glob("*.yaml")) == [
        "guest_mode_mutes_microphones.yaml",
        "local_only_at_night.yaml",
        "notify_cloud_refused.yaml",
    ]


@pytest.mark.parametrize("path", sorted(BLUEPRINTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_blueprint_is_valid(path: Path) -> None:
    data = yaml_util.load_yaml_dict(str(path))
    blueprint = Blueprint(
        data, path=str(path), expected_domain="automation", schema=AUTOMATION_BLUEPRINT_SCHEMA
    )
    BLUEPRINT_SCHEMA(data)
    assert blueprint.domain == "automation"
    assert blueprint.metadata["source_url"].endswith(f"blueprints/automation/hearth/{path.name}")
    assert blueprint.name.startswith("Hearth — ")


@pytest.fixture
async def blueprints(hass: HomeAssistant, tmp_path: Path) -> None:
    """The blueprints where Home Assistant looks for them (a configuration folder of its own)."""
    hass.config.config_dir = str(tmp_path)
    shutil.copytree(BLUEPRINTS, tmp_path / "blueprints" / "automation" / "hearth")


async def _automation(hass: HomeAssistant, name: str, inputs: dict[str, object]) -> None:
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "id": name,
                "alias": name,
                "use_blueprint": {"path": f"hearth/{name}.yaml", "input": inputs},
            }
        },
    )
    await hass.async_block_till_done()
    assert hass.states.get(f"automation.{name}").state == "on"


async def test_guest_mode_mutes_microphones(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, blueprints: None
) -> None:
    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {"guests": {"name": "Guests"}}}
    )
    await _automation(
        hass,
        "guest_mode_mutes_microphones",
        {"guest_mode": "input_boolean.guests", "microphones": [MICROPHONE]},
    )
    assert hass.states.get(MICROPHONE).state == "on"
    await hass.services.async_call(
        "input_boolean", "turn_on", {"entity_id": "input_boolean.guests"}, blocking=True
    )
    await hass.async_block_till_done()
    assert hass.states.get(MICROPHONE).state == "off"
    assert bridge.policy["microphones"]["kitchen"]["muted"] is True
    await hass.services.async_call(
        "input_boolean", "turn_off", {"entity_id": "input_boolean.guests"}, blocking=True
    )
    await hass.async_block_till_done()
    assert hass.states.get(MICROPHONE).state == "on"
    assert "kitchen" not in bridge.policy["microphones"]


async def test_local_only_at_night(
    hass: HomeAssistant,
    bridge: HassBridge,
    loaded: MockConfigEntry,
    blueprints: None,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(dt_util.now().replace(hour=21, minute=59, second=50))
    await _automation(
        hass,
        "local_only_at_night",
        {"local_only": LOCAL_ONLY, "night_starts": "22:00:00", "night_ends": "07:00:00"},
    )
    assert hass.states.get(LOCAL_ONLY).state == "off"
    freezer.tick(15)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(LOCAL_ONLY).state == "on"
    assert bridge.policy["local_only"] is True
    freezer.move_to(dt_util.now().replace(hour=7, minute=0, second=1) + timedelta(days=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(LOCAL_ONLY).state == "off"


async def test_notify_when_a_cloud_request_was_refused(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, blueprints: None
) -> None:
    assert await async_setup_component(hass, "persistent_notification", {})
    await _automation(hass, "notify_cloud_refused", {})
    await bridge.send(
        "satellite/kitchen/error",
        {
            "session_id": "s1",
            "satellite": "kitchen",
            "code": "cloud_refused",
            "message": "local only",
            "fatal": False,
        },
    )
    await hass.async_block_till_done()
    shown = persistent_notification._async_get_or_create_notifications(hass)  # noqa: SLF001
    (notification,) = shown.values()
    assert notification["title"] == "Hearth refused a cloud request"
    assert "satellite kitchen" in notification["message"]
    assert "(bridge)" in notification["message"]


async def test_notify_blueprint_runs_the_chosen_action(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, blueprints: None
) -> None:
    notified = async_capture_events(hass, "test_notified")
    await _automation(
        hass,
        "notify_cloud_refused",
        {
            "notify": [
                {
                    "event": "test_notified",
                    "event_data": {"satellite": "{{ satellite }}", "source": "{{ source }}"},
                }
            ]
        },
    )
    hass.bus.async_fire(
        EVENT_CLOUD_REFUSED, {"bridge_id": "b", "satellite": None, "source": "home_assistant"}
    )
    await hass.async_block_till_done()
    assert [event.data for event in notified] == [{"satellite": None, "source": "home_assistant"}]
