"""Report privacy changes, refused cloud requests and the vocabulary state.

What the owner may want in the logbook and in automations: privacy changes and refused cloud
requests, fired as events on Home Assistant's bus (described by `logbook.py`, used by the
blueprints in `blueprints/automation/hearth/`); and the bridge's vocabulary state, for
`system_health.py`.

`hearth_privacy_changed` — one per change of the policy the bridge confirmed (not for the first
policy seen after start-up, which changes nothing): `{"bridge_id", "setting": "local_only" |
"privacy_mode" | "retention" | "publish_transcripts" | "microphone", "value", "satellite"}`; for
"microphone" the value is whether that satellite's microphone is on.

`hearth_cloud_refused` — a request that would have left the local network was refused:
`{"bridge_id", "satellite", "source": "bridge" | "home_assistant"}`. The bridge refuses a cloud
speech engine (its satellite `error` `cloud_refused`, the local engine answers instead); Home
Assistant refuses a cloud conversation agent or Assist pipeline (the satellite is not known
there: None). Neither carries what was said.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from homeassistant.components import mqtt
from homeassistant.components.mqtt import ReceiveMessage
from homeassistant.core import HomeAssistant, callback

from .models import Policy, parse_json

if TYPE_CHECKING:
    from . import HearthConfigEntry
    from .hub import HearthHub

EVENT_PRIVACY_CHANGED: Final = "hearth_privacy_changed"
EVENT_CLOUD_REFUSED: Final = "hearth_cloud_refused"
_POLICY_SETTINGS = ("local_only", "privacy_mode", "retention", "publish_transcripts")


class HearthActivity:
    """Fires the logbook events of one bridge and keeps its vocabulary state."""

    def __init__(
        self, hass: HomeAssistant, entry: HearthConfigEntry, hub: HearthHub
    ) -> None:
        """Initialize."""
        self.hass = hass
        self.entry = entry
        self.hub = hub
        self.vocabulary: dict[str, Any] | None = None
        """The bridge's retained `bridge/vocabulary/state`, once seen."""
        self._policy: Policy | None = None
        self._blocked_agents = hub.blocked_cloud_agents

    async def async_start(self) -> None:
        """Follow the policy, the satellites' refusals, and the vocabulary state."""
        self.entry.async_on_unload(self.hub.async_on_policy(self._async_policy))
        self.entry.async_on_unload(
            self.hub.async_add_listener(self._async_bridge_update)
        )
        self.entry.async_on_unload(
            self.hub.async_add_satellite_listener(self._async_satellite)
        )
        self.entry.async_on_unload(
            await mqtt.async_subscribe(
                self.hass,
                self.hub.topic("bridge", "vocabulary", "state"),
                self._handle_vocabulary,
            )
        )

    @callback
    def _handle_vocabulary(self, msg: ReceiveMessage) -> None:
        self.vocabulary = parse_json(msg.payload)

    @callback
    def _async_satellite(self, satellite_id: str) -> None:
        @callback
        def bridge_event(event_type: str, data: dict[str, Any]) -> None:
            if event_type == "error" and data.get("code") == "cloud_refused":
                self._fire_refused(satellite_id, "bridge")

        self.entry.async_on_unload(
            self.hub.async_add_event_listener(satellite_id, bridge_event)
        )

    @callback
    def _async_bridge_update(self) -> None:
        blocked = self.hub.blocked_cloud_agents
        for _ in range(max(0, blocked - self._blocked_agents)):
            self._fire_refused(None, "home_assistant")
        self._blocked_agents = blocked

    @callback
    def _fire_refused(self, satellite_id: str | None, source: str) -> None:
        self.hass.bus.async_fire(
            EVENT_CLOUD_REFUSED,
            {
                "bridge_id": self.hub.bridge_id,
                "satellite": satellite_id,
                "source": source,
            },
        )

    @callback
    def _async_policy(self) -> None:
        before, after = self._policy, self.hub.policy
        self._policy = after
        if before is None or after is None:
            return
        for setting in _POLICY_SETTINGS:
            if (value := getattr(after, setting)) != getattr(before, setting):
                self._fire_privacy(setting, value, None)
        for satellite_id in sorted(set(before.microphones) | set(after.microphones)):
            if bool(before.muted(satellite_id)) != bool(after.muted(satellite_id)):
                self._fire_privacy(
                    "microphone", not after.muted(satellite_id), satellite_id
                )

    @callback
    def _fire_privacy(self, setting: str, value: Any, satellite_id: str | None) -> None:
        self.hass.bus.async_fire(
            EVENT_PRIVACY_CHANGED,
            {
                "bridge_id": self.hub.bridge_id,
                "setting": setting,
                "value": value,
                "satellite": satellite_id,
            },
        )
