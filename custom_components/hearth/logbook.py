"""Logbook entries for Hearth's privacy changes and refused cloud requests (`activity`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.core import Event, HomeAssistant, callback

from .activity import EVENT_CLOUD_REFUSED, EVENT_PRIVACY_CHANGED
from .const import DOMAIN

# The logbook's entry keys (its LOGBOOK_ENTRY_NAME / _MESSAGE, not exported by its root).
LOGBOOK_ENTRY_NAME = "name"
LOGBOOK_ENTRY_MESSAGE = "message"

_SETTINGS = {
    "local_only": "local-only processing",
    "privacy_mode": "privacy mode",
    "publish_transcripts": "transcript publishing",
}


def _on_off(value: Any) -> str:
    return "on" if value else "off"


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event], dict[str, str]]], None],
) -> None:
    """Describe Hearth's logbook events."""

    @callback
    def describe_privacy(event: Event) -> dict[str, str]:
        data = event.data
        setting, value = data.get("setting"), data.get("value")
        if setting == "microphone":
            message = f"turned the microphone of satellite {data.get('satellite')} {_on_off(value)}"
        elif setting == "retention":
            message = f"set audio retention to {value}"
        else:
            message = (
                f"turned {_SETTINGS.get(str(setting), str(setting))} {_on_off(value)}"
            )
        return {LOGBOOK_ENTRY_NAME: "Hearth", LOGBOOK_ENTRY_MESSAGE: message}

    @callback
    def describe_refused(event: Event) -> dict[str, str]:
        data = event.data
        if data.get("source") == "bridge":
            what = "a cloud speech engine"
            where = (
                f" for satellite {data['satellite']}" if data.get("satellite") else ""
            )
            message = f"refused {what}{where}; the local engine answered"
        else:
            message = "refused a cloud conversation agent or Assist pipeline; a local one answered"
        return {LOGBOOK_ENTRY_NAME: "Hearth", LOGBOOK_ENTRY_MESSAGE: message}

    async_describe_event(DOMAIN, EVENT_PRIVACY_CHANGED, describe_privacy)
    async_describe_event(DOMAIN, EVENT_CLOUD_REFUSED, describe_refused)
