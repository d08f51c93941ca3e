"""Config flow for Hearth: MQTT and add-on discovery, manual prefix, pairing, reconfigure,
re-pairing (reauth), per-satellite options.

Pairing: the bridge's privacy and settings commands are signed with a key the bridge made
(pairing.py). The add-on hands it over through Supervisor's discovery; otherwise the owner
pastes what `hearth-bridge pair` prints, checked against the key id in the bridge's status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import voluptuous as vol

from homeassistant.components import mqtt
from homeassistant.components.assist_pipeline import async_get_pipelines
from homeassistant.components.mqtt import ReceiveMessage
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlowWithReload,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.selector import (
    ConversationAgentSelector,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo

from .const import (
    CONF_AGENT_ID,
    CONF_BRIDGE_ID,
    CONF_PAIRING_KEY,
    CONF_PIPELINE,
    CONF_POLITE,
    CONF_PREFIX,
    CONF_SATELLITE,
    CONF_SATELLITES,
    CONF_SHOW_TRANSCRIPTS,
    DEFAULT_PREFIX,
    DISCOVERY_TIMEOUT,
    DOMAIN,
    HEARTH_PIPELINE,
)
from .models import BridgeStatus, parse_json
from .pairing import key_id, normalize_key

STATUS_SUFFIX = "/bridge/status"


def valid_prefix(prefix: str) -> bool:
    """Return whether a topic prefix is usable: no wildcards, no empty levels."""
    return (
        bool(prefix)
        and "+" not in prefix
        and "#" not in prefix
        and all(prefix.split("/"))
    )


async def async_find_bridge(hass: HomeAssistant, prefix: str) -> BridgeStatus | None:
    """Wait briefly for the bridge's retained status under a prefix."""
    found: asyncio.Future[BridgeStatus] = hass.loop.create_future()

    @callback
    def received(msg: ReceiveMessage) -> None:
        data = parse_json(msg.payload)
        if data is not None and data.get("bridge_id") and not found.done():
            found.set_result(BridgeStatus.from_payload(data))

    unsubscribe = await mqtt.async_subscribe(hass, f"{prefix}{STATUS_SUFFIX}", received)
    try:
        async with asyncio.timeout(DISCOVERY_TIMEOUT):
            return await found
    except TimeoutError:
        return None
    finally:
        unsubscribe()


def _prefix_schema(default: str) -> vol.Schema:
    return vol.Schema({vol.Required(CONF_PREFIX, default=default): TextSelector()})


def _key_schema() -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_PAIRING_KEY): TextSelector(
                TextSelectorConfig(type=TextSelectorType.PASSWORD)
            )
        }
    )


def check_key(text: str, status: BridgeStatus | None) -> tuple[str | None, str | None]:
    """Return (the key as 64 hex digits, None) or (None, an error key).

    A key in the wrong form is `invalid_key`; one whose id is not the one the bridge advertises
    in its status is `wrong_key` (a bridge that advertises none cannot be checked here: its
    first refused command asks again).
    """
    try:
        key = normalize_key(text)
    except ValueError:
        return None, "invalid_key"
    if status is not None and status.key_id and key_id(bytes.fromhex(key)) != status.key_id:
        return None, "wrong_key"
    return key, None


class HearthConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a Hearth bridge, and pair with it (the key its privacy commands are signed with)."""

    VERSION = 1

    def __init__(self) -> None:
        """Initialize."""
        self._prefix = DEFAULT_PREFIX
        self._bridge_id = ""
        self._status: BridgeStatus | None = None
        self._key = ""

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> HearthOptionsFlow:
        """Return the options flow."""
        return HearthOptionsFlow()

    async def async_step_mqtt(
        self, discovery_info: MqttServiceInfo
    ) -> ConfigFlowResult:
        """Handle a bridge that announced itself on `<prefix>/bridge/status`."""
        data = parse_json(discovery_info.payload)
        if (
            data is None
            or not data.get("bridge_id")
            or not discovery_info.topic.endswith(STATUS_SUFFIX)
        ):
            return self.async_abort(reason="invalid_discovery_info")
        status = BridgeStatus.from_payload(data)
        assert status.bridge_id is not None
        await self.async_set_unique_id(status.bridge_id)
        self._abort_if_unique_id_configured()
        if not status.online:
            return self.async_abort(reason="bridge_offline")
        self._prefix = discovery_info.topic.removesuffix(STATUS_SUFFIX)
        self._bridge_id = status.bridge_id
        self._status = status
        self.context["title_placeholders"] = {"bridge_id": status.bridge_id}
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Confirm adding a discovered bridge, with its pairing key."""
        return self._async_key_step(
            "discovery_confirm",
            user_input,
            {"bridge_id": self._bridge_id, "prefix": self._prefix},
        )

    async def async_step_hassio(
        self, discovery_info: HassioServiceInfo
    ) -> ConfigFlowResult:
        """Handle the Hearth add-on, which hands over its bridge's pairing key."""
        config = discovery_info.config
        bridge_id, prefix = config.get("bridge_id"), config.get("prefix")
        try:
            key = normalize_key(str(config.get("key", "")))
        except ValueError:
            return self.async_abort(reason="invalid_discovery_info")
        if not isinstance(bridge_id, str) or not bridge_id:
            return self.async_abort(reason="invalid_discovery_info")
        if not isinstance(prefix, str) or not valid_prefix(prefix):
            return self.async_abort(reason="invalid_discovery_info")
        # A flow for the same bridge found over MQTT may be open: this one needs no pasting.
        await self.async_set_unique_id(bridge_id, raise_on_progress=False)
        # A configured bridge whose add-on made a new key: the entry takes it (and reloads).
        self._abort_if_unique_id_configured(
            updates={CONF_PREFIX: prefix, CONF_PAIRING_KEY: key}
        )
        self._prefix, self._bridge_id, self._key = prefix, bridge_id, key
        self.context["title_placeholders"] = {"bridge_id": bridge_id}
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Confirm adding the add-on's bridge."""
        if user_input is not None:
            return self._async_create()
        self._set_confirm_only()
        return self.async_show_form(
            step_id="hassio_confirm",
            description_placeholders={
                "bridge_id": self._bridge_id,
                "prefix": self._prefix,
            },
        )

    async def _async_validate(
        self, prefix: str
    ) -> tuple[BridgeStatus | None, str | None]:
        """Find the bridge under a prefix; return it or an error key."""
        if not valid_prefix(prefix):
            return None, "invalid_prefix"
        if not await mqtt.async_wait_for_mqtt_client(self.hass):
            return None, "mqtt_not_configured"
        if (status := await async_find_bridge(self.hass, prefix)) is None:
            return None, "no_bridge"
        return status, None

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add a bridge by its topic prefix."""
        errors: dict[str, str] = {}
        if user_input is not None:
            prefix = user_input[CONF_PREFIX].strip().strip("/")
            status, error = await self._async_validate(prefix)
            if status is not None and status.bridge_id:
                # A discovery flow for the same bridge may be open: this one wins.
                await self.async_set_unique_id(
                    status.bridge_id, raise_on_progress=False
                )
                self._abort_if_unique_id_configured()
                self._prefix = prefix
                self._bridge_id = status.bridge_id
                self._status = status
                return await self.async_step_pair()
            errors["base"] = error or "no_bridge"
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                _prefix_schema(DEFAULT_PREFIX), user_input
            ),
            errors=errors,
        )

    async def async_step_pair(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the bridge's pairing key (`hearth-bridge pair` prints it)."""
        return self._async_key_step("pair", user_input, {"bridge_id": self._bridge_id})

    def _async_key_step(
        self,
        step_id: str,
        user_input: dict[str, Any] | None,
        placeholders: dict[str, str],
    ) -> ConfigFlowResult:
        """A step that asks for the pairing key and creates the entry once it fits the bridge."""
        errors: dict[str, str] = {}
        if user_input is not None:
            key, error = check_key(user_input[CONF_PAIRING_KEY], self._status)
            if key is not None:
                self._key = key
                return self._async_create()
            errors["base"] = error or "invalid_key"
        return self.async_show_form(
            step_id=step_id,
            data_schema=_key_schema(),
            description_placeholders=placeholders,
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the topic prefix of a configured bridge, and its pairing key."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            prefix = user_input[CONF_PREFIX].strip().strip("/")
            status, error = await self._async_validate(prefix)
            if status is not None and status.bridge_id:
                await self.async_set_unique_id(
                    status.bridge_id, raise_on_progress=False
                )
                self._abort_if_unique_id_mismatch(reason="wrong_bridge")
                key, error = check_key(user_input[CONF_PAIRING_KEY], status)
                if key is not None:
                    return self.async_update_reload_and_abort(
                        entry,
                        data_updates={CONF_PREFIX: prefix, CONF_PAIRING_KEY: key},
                    )
            errors["base"] = error or "no_bridge"
        schema = _prefix_schema(entry.data[CONF_PREFIX]).extend(
            _key_schema().schema
        )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                schema,
                {CONF_PREFIX: user_input[CONF_PREFIX]} if user_input else None,
            ),
            errors=errors,
        )

    async def async_step_reauth(
        self, entry_data: Mapping[str, Any]
    ) -> ConfigFlowResult:
        """Pair again: the bridge refuses this entry's key, or the entry has none."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the bridge's current pairing key."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            # The key the bridge advertises, if it answers; else the key's form alone is checked.
            status = await async_find_bridge(self.hass, entry.data[CONF_PREFIX])
            key, error = check_key(user_input[CONF_PAIRING_KEY], status)
            if key is not None:
                return self.async_update_reload_and_abort(
                    entry, data_updates={CONF_PAIRING_KEY: key}
                )
            errors["base"] = error or "invalid_key"
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=_key_schema(),
            description_placeholders={"bridge_id": entry.unique_id or entry.title},
            errors=errors,
        )

    @callback
    def _async_create(self) -> ConfigFlowResult:
        return self.async_create_entry(
            title=f"Hearth bridge {self._bridge_id}",
            data={
                CONF_PREFIX: self._prefix,
                CONF_BRIDGE_ID: self._bridge_id,
                CONF_PAIRING_KEY: self._key,
            },
        )


class HearthOptionsFlow(OptionsFlowWithReload):
    """Bridge-wide voice command choices, and per-satellite ones (agent, transcripts).

    Saving reloads the entry, which republishes the vocabulary with the new options.
    """

    def __init__(self) -> None:
        """Initialize."""
        self._satellite = ""

    @callback
    def _satellites(self) -> dict[str, str]:
        """Return the entry's satellites: id -> device name."""
        start = f"{self.config_entry.unique_id}-"
        satellites: dict[str, str] = {}
        for device in dr.async_entries_for_config_entry(
            dr.async_get(self.hass), self.config_entry.entry_id
        ):
            for domain, identifier in device.identifiers:
                if domain == DOMAIN and identifier.startswith(start):
                    satellite_id = identifier[len(start) :]
                    satellites[satellite_id] = (
                        device.name_by_user or device.name or satellite_id
                    )
        return satellites

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose between the bridge's voice commands and a satellite's settings."""
        return self.async_show_menu(
            step_id="init", menu_options=["commands", "satellites"]
        )

    async def async_step_commands(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Bridge-wide: whether commands may be phrased politely (vocabulary `polite`)."""
        if user_input is not None:
            return self.async_create_entry(
                data={
                    **self.config_entry.options,
                    CONF_POLITE: bool(user_input[CONF_POLITE]),
                }
            )
        return self.async_show_form(
            step_id="commands",
            data_schema=vol.Schema(
                {
                    vol.Required(
                        CONF_POLITE,
                        default=bool(self.config_entry.options.get(CONF_POLITE, False)),
                    ): bool
                }
            ),
        )

    async def async_step_satellites(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose a satellite."""
        satellites = self._satellites()
        if not satellites:
            return self.async_abort(reason="no_satellites")
        if user_input is not None:
            self._satellite = user_input[CONF_SATELLITE]
            return await self.async_step_satellite()
        return self.async_show_form(
            step_id="satellites",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_SATELLITE): SelectSelector(
                        SelectSelectorConfig(
                            options=[
                                SelectOptionDict(value=satellite_id, label=name)
                                for satellite_id, name in sorted(satellites.items())
                            ]
                        )
                    )
                }
            ),
        )

    async def async_step_satellite(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose the satellite's conversation agent and transcript display."""
        all_options = dict(self.config_entry.options.get(CONF_SATELLITES, {}))
        current = all_options.get(self._satellite, {})
        if user_input is not None:
            all_options[self._satellite] = {
                CONF_PIPELINE: user_input.get(CONF_PIPELINE) or HEARTH_PIPELINE,
                CONF_AGENT_ID: user_input.get(CONF_AGENT_ID) or None,
                CONF_SHOW_TRANSCRIPTS: user_input[CONF_SHOW_TRANSCRIPTS],
            }
            return self.async_create_entry(
                data={**self.config_entry.options, CONF_SATELLITES: all_options}
            )
        pipelines = [
            SelectOptionDict(value=HEARTH_PIPELINE, label="Hearth"),
            *(
                SelectOptionDict(value=pipeline.id, label=pipeline.name)
                for pipeline in async_get_pipelines(self.hass)
            ),
        ]
        schema = vol.Schema(
            {
                vol.Required(CONF_PIPELINE, default=HEARTH_PIPELINE): SelectSelector(
                    SelectSelectorConfig(options=pipelines)
                ),
                vol.Optional(CONF_AGENT_ID): ConversationAgentSelector(),
                vol.Required(CONF_SHOW_TRANSCRIPTS, default=True): bool,
            }
        )
        return self.async_show_form(
            step_id="satellite",
            data_schema=self.add_suggested_values_to_schema(schema, current),
            description_placeholders={"satellite": self._satellite},
        )
