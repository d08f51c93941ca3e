"""System health: is each Hearth bridge reachable, what does it run, what does it hold."""

from __future__ import annotations

from typing import Any

from homeassistant.components import system_health
from homeassistant.core import HomeAssistant, callback

from .const import DOMAIN

KEYS = (
    "bridge_reachable",
    "bridge_version",
    "satellites_online",
    "local_only",
    "privacy_mode",
    "grammar_size",
)


@callback
def async_register(
    hass: HomeAssistant, register: system_health.SystemHealthRegistration
) -> None:
    """Register the system health information."""
    register.async_register_info(system_health_info)


def _grammar_size(vocabulary: dict[str, Any] | None) -> str:
    """Return the vocabulary in service, as the bridge described it."""
    if not vocabulary or vocabulary.get("status") != "ok":
        return "unknown"
    grammar = vocabulary.get("grammar")
    figures = grammar if isinstance(grammar, dict) else {}
    return (
        f"{vocabulary.get('sentences', 0)} sentences, {vocabulary.get('entities', 0)} entities;"
        f" {figures.get('words', '?')} words, {figures.get('states', '?')} states,"
        f" {figures.get('transitions', '?')} transitions"
    )


async def system_health_info(hass: HomeAssistant) -> dict[str, Any]:
    """Bridge reachable, version, satellites online, local-only, privacy mode, grammar size.

    With several bridges, each figure lists the bridges' values in the order of their entries.
    """
    rows: list[dict[str, Any]] = []
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        hub = entry.runtime_data.hub
        policy = hub.policy
        online = sum(
            1
            for satellite_id in hub.satellites
            if hub.satellite_available(satellite_id)
        )
        rows.append(
            {
                "bridge_reachable": hub.available,
                "bridge_version": hub.status.version or "unknown",
                "satellites_online": f"{online}/{len(hub.satellites)}",
                "local_only": "unknown" if policy is None else policy.local_only,
                "privacy_mode": "unknown" if policy is None else policy.privacy_mode,
                "grammar_size": _grammar_size(entry.runtime_data.activity.vocabulary),
            }
        )
    if not rows:
        return {"bridge_reachable": False}
    if len(rows) == 1:
        return rows[0]
    return {key: ", ".join(str(row[key]) for row in rows) for key in KEYS}
