"""The bridge refused a satellite because its table is full: one repair issue, no device."""

from __future__ import annotations

import re

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.translation import async_get_translations
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.hearth.const import DOMAIN
from custom_components.hearth.hub import table_full_issue_id

from .fake_bridge import BRIDGE_ID, HassBridge


def _refused(satellite: str) -> dict[str, object]:
    return {"session_id": None, "satellite": satellite, "code": "too_many_satellites",
            "message": f"satellite limit 200 reached (limits.max_satellites); {satellite!r} is not served",
            "fatal": True}


async def test_a_refused_satellite_raises_one_repair_issue(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    issues = ir.async_get(hass)
    issue_id = table_full_issue_id(loaded.entry_id)
    assert issues.async_get_issue(DOMAIN, issue_id) is None
    errors: list[dict[str, object]] = []
    hub = loaded.runtime_data.hub
    hub.async_add_event_listener("kitchen", lambda kind, data: errors.append(data))

    for index in range(5):  # a flood of refused ids
        await bridge.send(f"satellite/ghost{index}/error", _refused(f"ghost{index}"))
    # An id the bridge does not know (audio or an event before any status) is no satellite either.
    await bridge.send("satellite/stranger/error", {**_refused("stranger"), "code": "unknown_satellite"})
    await hass.async_block_till_done()
    issue = issues.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "too_many_satellites"
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.translation_placeholders == {"bridge": BRIDGE_ID, "satellite": "ghost0"}  # the first, once
    translations = await async_get_translations(hass, "en", "issues", {DOMAIN})
    key = f"component.{DOMAIN}.issues.too_many_satellites"
    assert translations[f"{key}.title"]
    assert set(re.findall(r"{(\w+)}", translations[f"{key}.description"])) == set(issue.translation_placeholders)
    # A satellite the bridge does not serve gets no device in Home Assistant.
    devices = dr.async_get(hass)
    assert all(devices.async_get_device(identifiers={(DOMAIN, f"{BRIDGE_ID}-ghost{i}")}) is None for i in range(5))
    assert "ghost0" not in hub.satellites and "stranger" not in hub.satellites
    assert devices.async_get_device(identifiers={(DOMAIN, f"{BRIDGE_ID}-stranger")}) is None

    # A satellite Home Assistant knows, refused (e.g. after it was forgotten): its entities hear it.
    await bridge.send("satellite/kitchen/error", _refused("kitchen"))
    await hass.async_block_till_done()
    assert [e["code"] for e in errors] == ["too_many_satellites"]

    assert await hass.config_entries.async_unload(loaded.entry_id)
    await hass.async_block_till_done()
    assert issues.async_get_issue(DOMAIN, issue_id) is None
