"""Switches: Local-only processing, Privacy mode, and each satellite's Microphone.

None of them is optimistic: a change is a policy command the bridge must confirm, and the
state always shows the bridge's confirmed policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import HearthConfigEntry
from .entity import HearthEntity, HearthSatelliteEntity, async_setup_hearth_platform
from .models import Policy

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class HearthPolicySwitchDescription(SwitchEntityDescription):
    """A switch over one boolean of the bridge's policy."""

    policy_key: str
    value_fn: Callable[[Policy], bool]


BRIDGE_SWITCHES = (
    HearthPolicySwitchDescription(
        key="local_only",
        translation_key="local_only",
        entity_category=EntityCategory.CONFIG,
        policy_key="local_only",
        value_fn=lambda policy: policy.local_only,
    ),
    HearthPolicySwitchDescription(
        key="privacy_mode",
        translation_key="privacy_mode",
        entity_category=EntityCategory.CONFIG,
        policy_key="privacy_mode",
        value_fn=lambda policy: policy.privacy_mode,
    ),
)
MICROPHONE = SwitchEntityDescription(key="microphone", translation_key="microphone")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HearthConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the switches."""
    async_setup_hearth_platform(
        entry,
        async_add_entities,
        lambda hub: [
            HearthPolicySwitch(hub, description) for description in BRIDGE_SWITCHES
        ],
        lambda hub, satellite_id: [
            HearthMicrophoneSwitch(hub, satellite_id, MICROPHONE)
        ],
    )


class HearthPolicySwitch(HearthEntity, SwitchEntity):
    """A bridge-wide policy switch."""

    entity_description: HearthPolicySwitchDescription

    @property
    def available(self) -> bool:
        """Available once the bridge is reachable and has told its policy."""
        return super().available and self.hub.policy is not None

    @property
    def is_on(self) -> bool | None:
        """Return the confirmed policy value."""
        if self.hub.policy is None:
            return None
        return self.entity_description.value_fn(self.hub.policy)

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Ask the bridge to turn the policy on."""
        await self.hub.async_set_policy(**{self.entity_description.policy_key: True})

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Ask the bridge to turn the policy off."""
        await self.hub.async_set_policy(**{self.entity_description.policy_key: False})


class HearthMicrophoneSwitch(HearthSatelliteEntity, SwitchEntity):
    """A satellite's microphone: off means muted."""

    @property
    def is_on(self) -> bool:
        """Return whether the microphone listens (the policy decides, else the bridge's state)."""
        return not self.hub.microphone_muted(self.satellite_id)

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Unmute."""
        await self.hub.async_set_policy(
            microphones={self.satellite_id: {"muted": False}}
        )

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Mute."""
        await self.hub.async_set_policy(
            microphones={self.satellite_id: {"muted": True}}
        )
