"""The bridge as Home Assistant sees it: one object per config entry, fed by MQTT."""

from __future__ import annotations

from collections.abc import Callable
import json
import logging
from typing import TYPE_CHECKING, Any

from homeassistant.components import mqtt
from homeassistant.components.mqtt import ReceiveMessage
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    issue_registry as ir,
)
from homeassistant.helpers.event import async_call_later

from .const import (
    DOMAIN,
    ISSUE_TOO_MANY_SATELLITES,
    ISSUE_UNSUPPORTED_PROTOCOL,
    MANUFACTURER,
    NOT_SERVED_CODES,
    REQUEST_TIMEOUT,
    SATELLITE_ID,
    SUPPORTED_PROTOCOL_VERSIONS,
)
from .models import Audit, BridgeStatus, Policy, Satellite, Utterance, parse_json
from .pairing import CommandSigner
from .policy_keeper import PolicyKeeper
from .requests import PendingRequests

if TYPE_CHECKING:
    from . import HearthConfigEntry

_LOGGER = logging.getLogger(__name__)

type SatelliteEventCallback = Callable[[str, dict[str, Any]], None]

# After the bridge is first seen online, how long until satellite devices whose satellite the
# broker no longer holds (no retained status or state) are removed: the retained messages of
# every known satellite arrive right after the subscriptions, well within this.
STALE_DEVICE_GRACE = 60.0


#: Links Home Assistant can open from a device page: the status page, or the add-on's ingress
#: page as ``homeassistant://hassio/ingress/<slug>``.
DEVICE_LINK_SCHEMES = ("http://", "https://", "homeassistant://")


class HearthHub:
    """Holds what the bridge published and sends it commands.

    Entities register listeners; the hub calls them when the part they show changes. Bridge-wide
    listeners (key None) are also called when availability changes.
    """

    def __init__(
        self, hass: HomeAssistant, entry: HearthConfigEntry, prefix: str
    ) -> None:
        """Initialize the hub for one bridge."""
        self.hass = hass
        self.entry = entry
        self.prefix = prefix
        self.bridge_id: str = entry.unique_id or entry.entry_id
        self.status = BridgeStatus()
        self.policy: Policy | None = None
        self.audit: Audit | None = None
        #: the bridge's question counters (`questions` of `<prefix>/bridge/stats`); None before
        self.questions: dict[str, int] | None = None
        self.satellites: dict[str, Satellite] = {}
        self.mqtt_connected = True
        self.blocked_cloud_agents = 0
        self._was_available: bool | None = None
        self._satellite_was_online: dict[str, bool] = {}
        self._listeners: dict[str | None, list[CALLBACK_TYPE]] = {}
        self._satellite_added: list[Callable[[str], None]] = []
        self._event_listeners: dict[str, list[SatelliteEventCallback]] = {}
        self._transcript_handler: Callable[[str, dict[str, Any]], None] | None = None
        self._pending = PendingRequests(hass, self.bridge_id)
        self.bridge_device_id: str | None = None
        self._online_callbacks: list[CALLBACK_TYPE] = []
        self._policy_callbacks: list[CALLBACK_TYPE] = []
        self.unsupported_protocol: str | None = None
        """The protocol version the bridge advertises ("none": none) if it is not spoken here."""
        self.table_full_reported = False
        """Whether the bridge refused a satellite for a full table (its repair issue raised)."""
        self.signer = CommandSigner(hass, entry, self.bridge_id)
        """Signs policy, purge and settings commands with the pairing key."""
        self.keeper = PolicyKeeper(hass, entry, self)
        """The owner's policy, re-applied when the bridge loses its own."""
        self._stale_check: CALLBACK_TYPE | None = None
        self._stale_checked = False

    # ------------------------------------------------------------------ topics

    def topic(self, *parts: str) -> str:
        """Return `<prefix>/<parts...>`."""
        return "/".join((self.prefix, *parts))

    # ------------------------------------------------------------------ lifecycle

    async def async_start(self) -> None:
        """Create the bridge device and subscribe to the bridge's topics."""
        self.bridge_device_id = (
            dr.async_get(self.hass)
            .async_get_or_create(
                config_entry_id=self.entry.entry_id,
                identifiers={(DOMAIN, self.bridge_id)},
                manufacturer=MANUFACTURER,
                model="Hearth bridge",
                name="Hearth bridge",
            )
            .id
        )
        await self.keeper.async_load()
        await self.signer.async_start(self.topic("bridge", "error"))
        self.entry.async_on_unload(
            self.async_on_bridge_online(self.keeper.async_reapply_soon)
        )
        self.mqtt_connected = mqtt.is_connected(self.hass)
        self.entry.async_on_unload(
            mqtt.async_subscribe_connection_status(
                self.hass, self._async_mqtt_connection
            )
        )
        subscriptions: dict[str, Callable[[ReceiveMessage], None]] = {
            self.topic("bridge", "status"): self._handle_status,
            self.topic("bridge", "policy", "state"): self._handle_policy,
            self.topic("bridge", "policy", "result"): self._handle_result,
            self.topic("bridge", "audit"): self._handle_audit,
            self.topic("satellite", "+", "status"): self._handle_satellite_status,
            self.topic("satellite", "+", "state"): self._handle_satellite_state,
            self.topic("satellite", "+", "transcript"): self._handle_transcript,
            self.topic("satellite", "+", "wake"): self._handle_satellite_event,
            self.topic("satellite", "+", "intent"): self._handle_satellite_event,
            self.topic("satellite", "+", "error"): self._handle_satellite_event,
            self.topic("satellite", "+", "question"): self._handle_satellite_event,
            self.topic("satellite", "+", "answer"): self._handle_satellite_event,
            self.topic("bridge", "stats"): self._handle_stats,
        }
        for topic, handler in subscriptions.items():
            self.entry.async_on_unload(
                await mqtt.async_subscribe(self.hass, topic, handler)
            )
        self.entry.async_on_unload(self._pending.async_cancel_all)
        self.entry.async_on_unload(self._async_cancel_stale_check)
        self.entry.async_on_unload(self._async_delete_protocol_issue)
        self.entry.async_on_unload(self._async_delete_table_full_issue)

    # ------------------------------------------------------------------ availability

    @property
    def available(self) -> bool:
        """Whether the bridge can be reached: MQTT connected and the bridge online."""
        return self.mqtt_connected and self.status.online

    def satellite_available(self, satellite_id: str) -> bool:
        """Whether a satellite can be reached through an available bridge."""
        satellite = self.satellites.get(satellite_id)
        return self.available and satellite is not None and satellite.online

    def microphone_muted(self, satellite_id: str) -> bool:
        """Return whether a satellite's microphone is muted.

        The bridge's policy decides (privacy mode or a mute; nothing said: not muted), else,
        before the policy arrives, the satellite's state.

        Never the satellite's state once there is a policy: that retained state may be from
        before the bridge lost its policy and claim a mute the bridge no longer holds.
        """
        if self.policy is not None:
            return self.policy.privacy_mode or bool(self.policy.muted(satellite_id))
        satellite = self.satellites.get(satellite_id)
        return bool(satellite and satellite.muted)

    @callback
    def _async_mqtt_connection(self, connected: bool) -> None:
        self.mqtt_connected = connected
        self._async_update_all()

    @callback
    def _async_log_availability(self) -> None:
        available = self.available
        if available != self._was_available:
            if available:
                if self._was_available is not None:
                    _LOGGER.info("Hearth bridge %s is back online", self.bridge_id)
            else:
                _LOGGER.info("Hearth bridge %s is unavailable", self.bridge_id)
            self._was_available = available
        for satellite_id in self.satellites:
            self._async_log_satellite(satellite_id)

    @callback
    def _async_log_satellite(self, satellite_id: str) -> None:
        online = self.satellite_available(satellite_id)
        before = self._satellite_was_online.get(satellite_id)
        if online == before:
            return
        if online and before is not None:
            _LOGGER.info("Hearth satellite %s is back online", satellite_id)
        elif not online and before is not None:
            _LOGGER.info("Hearth satellite %s is unavailable", satellite_id)
        self._satellite_was_online[satellite_id] = online

    # ------------------------------------------------------------------ listeners

    @callback
    def async_add_listener(
        self, update: CALLBACK_TYPE, key: str | None = None
    ) -> CALLBACK_TYPE:
        """Call `update` when the bridge (key None) or one satellite (key = its id) changes."""
        return _add(self._listeners.setdefault(key, []), update)

    @callback
    def async_add_satellite_listener(
        self, added: Callable[[str], None]
    ) -> CALLBACK_TYPE:
        """Call `added(satellite_id)` for every satellite known now and seen later."""
        remove = _add(self._satellite_added, added)
        for satellite_id in list(self.satellites):
            added(satellite_id)
        return remove

    @callback
    def async_add_event_listener(
        self, satellite_id: str, listener: SatelliteEventCallback
    ) -> CALLBACK_TYPE:
        """Call `listener(event_type, payload)` on a satellite's wake, intent and error."""
        return _add(self._event_listeners.setdefault(satellite_id, []), listener)

    @callback
    def async_set_transcript_handler(
        self, handler: Callable[[str, dict[str, Any]], None]
    ) -> None:
        """Set who acts on transcripts (the voice command handler)."""
        self._transcript_handler = handler

    @callback
    def async_on_bridge_online(self, online: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `online()` each time the bridge comes online."""
        return _add(self._online_callbacks, online)

    @callback
    def async_on_policy(self, changed: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `changed()` each time a confirmed policy arrives."""
        return _add(self._policy_callbacks, changed)

    @callback
    def _async_update(self, key: str | None) -> None:
        for update in list(self._listeners.get(key, ())):
            update()

    @callback
    def _async_update_all(self) -> None:
        self._async_log_availability()
        for key in list(self._listeners):
            self._async_update(key)

    # ------------------------------------------------------------------ bridge topics

    @callback
    def _handle_status(self, msg: ReceiveMessage) -> None:
        data = parse_json(msg.payload)
        was_online = self.status.online
        self.status = BridgeStatus.from_payload(data) if data else BridgeStatus()
        if data:
            self._async_check_protocol(self.status.protocol)
        if self.status.online and self.bridge_device_id:
            dr.async_get(self.hass).async_update_device(
                self.bridge_device_id,
                sw_version=self.status.version,
                configuration_url=self.status.status_api
                if self.status.status_api
                and self.status.status_api.startswith(DEVICE_LINK_SCHEMES)
                else None,
            )
        if self.status.online and not was_online:
            for online in list(self._online_callbacks):
                online()
            if not self._stale_checked and self._stale_check is None:
                self._stale_check = async_call_later(
                    self.hass, STALE_DEVICE_GRACE, self._async_remove_stale_devices
                )
        self._async_update_all()

    @callback
    def _async_check_protocol(self, protocol: int | None) -> None:
        """Raise a repair issue while the bridge speaks an unsupported protocol version.

        None advertised counts as unknown; the issue is withdrawn once a supported one is seen.
        """
        if protocol in SUPPORTED_PROTOCOL_VERSIONS:
            self._async_delete_protocol_issue()
            return
        advertised = "none" if protocol is None else str(protocol)
        if self.unsupported_protocol != advertised:
            _LOGGER.warning(
                "Hearth bridge %s speaks protocol version %s; this integration speaks %s",
                self.bridge_id,
                advertised,
                _versions(),
            )
        self.unsupported_protocol = advertised
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            protocol_issue_id(self.entry.entry_id),
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_UNSUPPORTED_PROTOCOL,
            translation_placeholders={
                "bridge": self.bridge_id,
                "protocol": advertised,
                "supported": _versions(),
            },
        )

    @callback
    def _async_delete_protocol_issue(self) -> None:
        self.unsupported_protocol = None
        ir.async_delete_issue(self.hass, DOMAIN, protocol_issue_id(self.entry.entry_id))

    @callback
    def _handle_policy(self, msg: ReceiveMessage) -> None:
        """Show the bridge's retained policy state.

        It is what the bridge holds, even of a lower revision or another epoch (a reset): shown
        as it is; the keeper then re-applies the owner's policy.
        """
        data = parse_json(msg.payload)
        if data is None:
            return
        policy = Policy.from_payload(data)
        self._async_show_policy(policy)
        self.keeper.async_bridge_state(policy)

    @callback
    def _async_apply_result_policy(self, policy: Policy) -> None:
        """Show a policy from a `policy/result` unless a newer state overtook it."""
        current = self.policy
        if current is not None and (
            policy.epoch != current.epoch or policy.revision < current.revision
        ):
            return
        self._async_show_policy(policy)
        self.keeper.async_bridge_result(policy)

    @callback
    def _async_show_policy(self, policy: Policy) -> None:
        self.policy = policy
        for changed in list(self._policy_callbacks):
            changed()
        self._async_update(None)
        for satellite_id in self.satellites:
            self._async_update(satellite_id)

    @callback
    def _handle_result(self, msg: ReceiveMessage) -> None:
        self._pending.async_resolve(parse_json(msg.payload))

    @callback
    def _handle_audit(self, msg: ReceiveMessage) -> None:
        data = parse_json(msg.payload)
        if data is None:
            return
        self.audit = Audit.from_payload(data)
        self._async_update(None)

    @callback
    def _handle_stats(self, msg: ReceiveMessage) -> None:
        data = parse_json(msg.payload)
        questions = data.get("questions") if data is not None else None
        if not isinstance(questions, dict):
            return
        self.questions = {
            key: value
            for key, value in questions.items()
            if isinstance(key, str)
            and isinstance(value, int)
            and not isinstance(value, bool)
        }
        self._async_update(None)

    # ------------------------------------------------------------------ satellite topics

    def _satellite_id(self, topic: str) -> str | None:
        satellite_id = topic[len(self.prefix) + 1 :].split("/")[1]
        return satellite_id if SATELLITE_ID.fullmatch(satellite_id) else None

    @callback
    def _async_satellite(
        self, satellite_id: str, status: dict[str, Any] | None = None
    ) -> Satellite:
        """Return a satellite, creating it (and its device) when first seen."""
        if (satellite := self.satellites.get(satellite_id)) is None:
            satellite = self.satellites[satellite_id] = Satellite(satellite_id)
            if status is not None:
                satellite.update_status(status)
            self._async_update_satellite_device(satellite)
            for added in list(self._satellite_added):
                added(satellite_id)
        return satellite

    @callback
    def _async_update_satellite_device(self, satellite: Satellite) -> None:
        device_registry = dr.async_get(self.hass)
        identifiers = {(DOMAIN, self.satellite_unique_id(satellite.satellite_id))}
        device = device_registry.async_get_device(identifiers=identifiers)
        if device is None:
            device = device_registry.async_get_or_create(
                config_entry_id=self.entry.entry_id,
                identifiers=identifiers,
                manufacturer=MANUFACTURER,
                model="Hearth satellite",
                name=satellite.display_name,
                via_device=(DOMAIN, self.bridge_id),
            )
            if satellite.area and device.area_id is None:
                # The satellite names its room: put the new device there (the owner may move it).
                area_registry = ar.async_get(self.hass)
                area = area_registry.async_get_area(
                    satellite.area
                ) or area_registry.async_get_or_create(satellite.area)
                device_registry.async_update_device(device.id, area_id=area.id)
        elif satellite.name and device.name != satellite.name:
            device_registry.async_update_device(device.id, name=satellite.name)

    def satellite_unique_id(self, satellite_id: str) -> str:
        """Return the unique id prefix of a satellite's device and entities."""
        return f"{self.bridge_id}-{satellite_id}"

    def satellite_device_id(self, satellite_id: str) -> str | None:
        """Return the device registry id of a satellite."""
        device = dr.async_get(self.hass).async_get_device(
            identifiers={(DOMAIN, self.satellite_unique_id(satellite_id))}
        )
        return device.id if device else None

    def satellite_for_device(self, device: dr.DeviceEntry) -> str | None:
        """Return the satellite id of one of this bridge's satellite devices, else None."""
        start = f"{self.bridge_id}-"
        for domain, identifier in device.identifiers:
            if domain == DOMAIN and identifier.startswith(start):
                return identifier[len(start) :]
        return None

    @callback
    def _handle_satellite_status(self, msg: ReceiveMessage) -> None:
        if (satellite_id := self._satellite_id(msg.topic)) is None:
            return
        data = parse_json(msg.payload)
        if data is None:
            if not msg.payload:
                self.async_forget_satellite(satellite_id, remove_device=True)
            return
        satellite = self._async_satellite(satellite_id, data)
        satellite.update_status(data)
        self._async_update_satellite_device(satellite)
        self._async_log_satellite(satellite_id)
        self._async_update(satellite_id)

    @callback
    def async_forget_satellite(
        self, satellite_id: str, remove_device: bool = False
    ) -> None:
        """Forget a satellite (the bridge removed it, or the user removed its device)."""
        if self.satellites.pop(satellite_id, None) is None:
            return
        self._satellite_was_online.pop(satellite_id, None)
        if remove_device and (device_id := self.satellite_device_id(satellite_id)):
            dr.async_get(self.hass).async_update_device(
                device_id, remove_config_entry_id=self.entry.entry_id
            )

    @callback
    def _async_cancel_stale_check(self) -> None:
        if self._stale_check is not None:
            self._stale_check()
            self._stale_check = None

    @callback
    def _async_remove_stale_devices(self, _now: Any = None) -> None:
        """Remove the devices of satellites the bridge no longer has.

        A satellite the bridge forgot while Home Assistant was not running left nothing retained
        (its status emptied, its state cleared), so it is never seen again: its device goes once
        the retained messages had time to arrive. Only while the bridge is reachable.
        """
        self._stale_check = None
        if not self.available:
            return  # judged again the next time the bridge comes online
        self._stale_checked = True
        device_registry = dr.async_get(self.hass)
        for device in dr.async_entries_for_config_entry(
            device_registry, self.entry.entry_id
        ):
            satellite_id = self.satellite_for_device(device)
            if satellite_id is None or satellite_id in self.satellites:
                continue
            _LOGGER.info(
                "Removing the device of Hearth satellite %s: the bridge no longer has it",
                satellite_id,
            )
            device_registry.async_update_device(
                device.id, remove_config_entry_id=self.entry.entry_id
            )

    @callback
    def _handle_satellite_state(self, msg: ReceiveMessage) -> None:
        if (satellite_id := self._satellite_id(msg.topic)) is None:
            return
        if (data := parse_json(msg.payload)) is None:
            return
        satellite = self._async_satellite(satellite_id)
        satellite.update_state(data)
        self._async_log_satellite(satellite_id)
        self._async_update(satellite_id)

    @callback
    def _handle_transcript(self, msg: ReceiveMessage) -> None:
        if (satellite_id := self._satellite_id(msg.topic)) is None:
            return
        if (data := parse_json(msg.payload)) is None:
            return
        satellite = self._async_satellite(satellite_id)
        if self.keeper.async_withheld(satellite_id, "transcript"):
            return
        raw_text = data.get("text")
        text = raw_text if isinstance(raw_text, str) else ""
        private = bool(data.get("private", False))
        satellite.last_utterance = Utterance(
            text=None if private or not text else text,
            private=private,
            engine=data.get("engine") if isinstance(data.get("engine"), str) else None,
            locality=data.get("locality")
            if isinstance(data.get("locality"), str)
            else None,
            session_id=data.get("session_id")
            if isinstance(data.get("session_id"), str)
            else None,
        )
        self._async_update(satellite_id)
        if text.strip() and not data.get("rejected") and self._transcript_handler:
            self._transcript_handler(satellite_id, data)

    @callback
    def _handle_satellite_event(self, msg: ReceiveMessage) -> None:
        if (satellite_id := self._satellite_id(msg.topic)) is None:
            return
        if (data := parse_json(msg.payload)) is None:
            return
        event_type = msg.topic.rsplit("/", 1)[1]
        code = data.get("code")
        if event_type == "error" and code in NOT_SERVED_CODES:
            if code == ISSUE_TOO_MANY_SATELLITES:
                self._async_table_full(satellite_id)
            if satellite_id not in self.satellites:
                return  # a satellite the bridge does not serve gets no device
        self._async_satellite(satellite_id)
        if event_type != "error" and self.keeper.async_withheld(
            satellite_id, event_type
        ):
            return
        for listener in list(self._event_listeners.get(satellite_id, ())):
            listener(event_type, data)

    @callback
    def _async_table_full(self, satellite_id: str) -> None:
        """The bridge refused a satellite (its table is full): a repair issue, raised once.

        A flood of made-up satellites would refuse many ids; the owner needs to hear it once.
        """
        if self.table_full_reported:
            return
        self.table_full_reported = True
        _LOGGER.warning(
            "Hearth bridge %s refused satellite %s: too many satellites",
            self.bridge_id,
            satellite_id,
        )
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            table_full_issue_id(self.entry.entry_id),
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=ISSUE_TOO_MANY_SATELLITES,
            translation_placeholders={
                "bridge": self.bridge_id,
                "satellite": satellite_id,
            },
        )

    @callback
    def _async_delete_table_full_issue(self) -> None:
        ir.async_delete_issue(self.hass, DOMAIN, table_full_issue_id(self.entry.entry_id))

    # ------------------------------------------------------------------ commands

    async def async_publish(
        self, topic: str, payload: dict[str, Any], retain: bool = False
    ) -> None:
        """Publish a JSON payload."""
        await self.async_publish_raw(
            topic, json.dumps(payload, separators=(",", ":")), retain
        )

    async def async_publish_raw(
        self, topic: str, payload: str, retain: bool = False
    ) -> None:
        """Publish a payload that is already encoded."""
        await mqtt.async_publish(self.hass, topic, payload, qos=1, retain=retain)

    async def async_publish_bytes(self, topic: str, payload: bytes) -> None:
        """Publish a binary payload (not retained)."""
        await mqtt.async_publish(self.hass, topic, payload, qos=1, retain=False)

    async def async_request(
        self, topic: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Publish a signed command with a fresh request_id and wait for its `policy/result`.

        Raises a translated HomeAssistantError on timeout or when the bridge refuses.
        """

        async def publish(command: dict[str, Any]) -> None:
            await self.signer.async_publish(
                topic, json.dumps(command, separators=(",", ":")).encode()
            )

        result = await self._pending.async_request(publish, payload, REQUEST_TIMEOUT)
        self.signer.async_check_result(result)
        if not result.get("ok"):
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="bridge_refused",
                translation_placeholders={
                    "error": str(result.get("error") or "unknown")
                },
            )
        if isinstance(policy := result.get("policy"), dict):
            self._async_apply_result_policy(Policy.from_payload(policy))
        return result

    async def async_set_policy(self, **changes: Any) -> None:
        """Change the bridge's policy and wait until the bridge confirms it.

        The owner's policy is re-applied first if the bridge lost it.
        """
        await self.keeper.async_set_policy(changes)

    async def async_purge_history(self) -> None:
        """Ask the bridge to drop retained audio and recent audit entries."""
        await self.async_request(self.topic("bridge", "history", "purge"), {})

    # ------------------------------------------------------------------ voice

    @callback
    def async_count_blocked_agent(self) -> None:
        """Count one cloud conversation agent refused under the local-only policy."""
        self.blocked_cloud_agents += 1
        self._async_update(None)

    @callback
    def async_satellite_updated(self, satellite_id: str) -> None:
        """Tell a satellite's entities that the hub changed it from outside."""
        self._async_update(satellite_id)


def table_full_issue_id(entry_id: str) -> str:
    """Return the repair issue id for a bridge that refused a satellite (its table is full)."""
    return f"{ISSUE_TOO_MANY_SATELLITES}_{entry_id}"


def protocol_issue_id(entry_id: str) -> str:
    """Return the repair issue id for a bridge speaking an unsupported protocol version."""
    return f"{ISSUE_UNSUPPORTED_PROTOCOL}_{entry_id}"


def _versions() -> str:
    return ", ".join(str(v) for v in sorted(SUPPORTED_PROTOCOL_VERSIONS))


def _add[T](callbacks: list[T], item: T) -> CALLBACK_TYPE:
    callbacks.append(item)

    @callback
    def remove() -> None:
        callbacks.remove(item)

    return remove
