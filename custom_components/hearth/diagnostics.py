"""Diagnostics: what the integration knows about its bridge, with private data redacted."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from . import HearthConfigEntry

TO_REDACT = {
    # Spoken words, prompts and anything that could carry them.
    "text",
    "last_utterance",
    "recent",
    "conversation_id",
    "extra_system_prompt",
    "session_id",
    # Credentials and addresses: the status API, engines' servers (Wyoming STT/TTS hosts).
    "password",
    "pairing_key",
    "username",
    "token",
    "status_api",
    "host",
    "url",
    "uri",
    "address",
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: HearthConfigEntry
) -> dict[str, Any]:
    """Return diagnostics for a config entry."""
    data = entry.runtime_data
    hub = data.hub
    return async_redact_data(
        {
            "entry": {"data": dict(entry.data), "options": dict(entry.options)},
            "mqtt_connected": hub.mqtt_connected,
            "bridge": asdict(hub.status),
            "policy": asdict(hub.policy) if hub.policy else None,
            "kept_policy": {
                "policy": asdict(hub.keeper.owner) if hub.keeper.owner else None,
                "reset_pending": hub.keeper.reset is not None,
                "last_error": hub.keeper.last_error,
            },
            "audit": asdict(hub.audit) if hub.audit else None,
            "blocked_cloud_agents": hub.blocked_cloud_agents,
            "satellites": {
                satellite_id: asdict(satellite)
                for satellite_id, satellite in sorted(hub.satellites.items())
            },
            "vocabulary_published": data.vocabulary.last_published is not None,
        },
        TO_REDACT,
    )
