"""Voice commands: transcripts from the bridge become conversations, answers go back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from homeassistant.components import conversation
from homeassistant.components.assist_pipeline import Pipeline
from homeassistant.const import MATCH_ALL
from homeassistant.core import CALLBACK_TYPE, Context, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.loader import IntegrationNotFound, async_get_integration

from .const import (
    CONF_AGENT_ID,
    CONF_PIPELINE,
    CONF_SATELLITES,
    CONVERSATION_TIMEOUT,
    DOMAIN,
    HEARTH_PIPELINE,
)
from .locality import address_class, is_ip_literal
from .satellite_settings import chosen_pipeline, find_pipeline

if TYPE_CHECKING:
    from . import HearthConfigEntry
    from .hub import HearthHub

_LOGGER = logging.getLogger(__name__)

# Config entry data keys that name the server an agent talks to.
_ADDRESS_KEYS = ("url", "base_url", "host")


@dataclass(frozen=True, slots=True)
class AgentLocality:
    """Where a conversation agent runs, as far as Home Assistant can tell."""

    agent_id: str
    name: str
    domain: str | None
    iot_class: str | None
    reason: str | None
    """None when the agent is local; else why it counts as off the local network."""

    @property
    def local(self) -> bool:
        """Whether the agent may be used under the local-only policy."""
        return self.reason is None


def address_is_public(address: str) -> bool:
    """Return whether a configured URL or host is a literal public IP address.

    Host names are not resolved (that would itself be a network request); only literal
    addresses count, judged by the same table as the bridge's (`locality.address_class`:
    loopback, RFC 1918, link-local and unique-local are local; documentation, carrier-grade
    NAT and everything else are public).
    """
    if is_ip_literal(address):
        host: str | None = address
    elif "://" in address:
        host = urlsplit(address).hostname
    else:
        host = address.split(":", maxsplit=1)[0]
    if not host or not is_ip_literal(host):
        return False
    return address_class(host) == "public"


async def async_agent_locality(hass: HomeAssistant, agent_id: str) -> AgentLocality:
    """Find the integration behind a conversation agent and whether it is local."""
    return await async_engine_locality(hass, agent_id)


async def async_engine_locality(
    hass: HomeAssistant, agent_id: str, legacy_provider: bool = False
) -> AgentLocality:
    """Find the integration behind an engine (conversation agent, STT or TTS) and judge it.

    An engine is an entity (its platform names the integration), a config entry id (legacy
    conversation agents) or, with `legacy_provider`, a legacy STT/TTS provider whose name is
    its integration's domain.
    """
    if agent_id == conversation.HOME_ASSISTANT_AGENT:
        return AgentLocality(
            agent_id, "Home Assistant", conversation.DOMAIN, None, None
        )
    domain: str | None = None
    entry_data: dict[str, Any] = {}
    name = agent_id
    if legacy_provider and "." not in agent_id:
        domain = agent_id
    elif "." in agent_id:
        if (entity := er.async_get(hass).async_get(agent_id)) is not None:
            domain = entity.platform
            name = entity.name or entity.original_name or agent_id
            if entity.config_entry_id and (
                config_entry := hass.config_entries.async_get_entry(
                    entity.config_entry_id
                )
            ):
                entry_data = dict(config_entry.data)
        if (state := hass.states.get(agent_id)) is not None:
            name = state.name
    elif (config_entry := hass.config_entries.async_get_entry(agent_id)) is not None:
        domain = config_entry.domain
        name = config_entry.title or domain
        entry_data = dict(config_entry.data)
    if domain is None:
        return AgentLocality(agent_id, name, None, None, "unknown_integration")
    try:
        iot_class = (await async_get_integration(hass, domain)).iot_class
    except IntegrationNotFound:
        return AgentLocality(agent_id, name, domain, None, "unknown_integration")
    if iot_class is None or iot_class.startswith("cloud"):
        return AgentLocality(agent_id, name, domain, iot_class, "cloud_integration")
    for key in _ADDRESS_KEYS:
        if isinstance(value := entry_data.get(key), str) and address_is_public(value):
            return AgentLocality(agent_id, name, domain, iot_class, "public_address")
    return AgentLocality(agent_id, name, domain, iot_class, None)


def issue_id(entry: HearthConfigEntry, agent_id: str) -> str:
    """Return the repair issue id for one refused agent."""
    return f"cloud_agent_blocked_{entry.entry_id}_{agent_id}"


def pipeline_issue_id(entry: HearthConfigEntry, pipeline_id: str) -> str:
    """Return the repair issue id for one refused Assist pipeline."""
    return f"cloud_pipeline_blocked_{entry.entry_id}_{pipeline_id}"


async def async_pipeline_locality(
    hass: HomeAssistant, pipeline: Pipeline
) -> tuple[str, AgentLocality] | None:
    """Return the first engine of a pipeline that is not local, as (stage, locality)."""
    for stage, engine_id, legacy in (
        ("stt", pipeline.stt_engine, True),
        ("conversation", pipeline.conversation_engine, False),
        ("tts", pipeline.tts_engine, True),
    ):
        if not engine_id:
            continue
        locality = await async_engine_locality(hass, engine_id, legacy_provider=legacy)
        if not locality.local:
            return stage, locality
    return None


def _async_listen_pipeline_changes(
    hass: HomeAssistant, listener: Callable[..., Awaitable[None]]
) -> CALLBACK_TYPE | None:
    """Call `listener` when an Assist pipeline is created, changed or deleted.

    Home Assistant has no public API for this (`assist_pipeline` exports the pipelines, not
    their changes): the listener goes on the component's pipeline store, in `hass.data`, here
    only. None when the store is not there.
    """
    from homeassistant.components.assist_pipeline.pipeline import KEY_ASSIST_PIPELINE  # noqa: PLC0415

    if (assist := hass.data.get(KEY_ASSIST_PIPELINE)) is None:
        return None
    remove: CALLBACK_TYPE = assist.pipeline_store.async_add_listener(listener)
    return remove


class VoiceCommands:
    """Runs a satellite's transcripts through Home Assistant's conversation agents."""

    def __init__(
        self, hass: HomeAssistant, entry: HearthConfigEntry, hub: HearthHub
    ) -> None:
        """Initialize."""
        self.hass = hass
        self.entry = entry
        self.hub = hub
        self._issues: set[str] = set()
        self._modes: dict[str, str] = {}
        """The pipeline mode last published per satellite (`pipeline/set`)."""

    @callback
    def async_start(self) -> None:
        """Act on transcripts from now on; keep the bridge told which satellites stream."""
        self.hub.async_set_transcript_handler(self._async_transcript)
        self.entry.async_on_unload(self.hub.async_on_policy(self._async_policy_changed))
        self.entry.async_on_unload(self._async_delete_issues)
        self.entry.async_on_unload(
            self.hub.async_on_bridge_online(
                lambda: self._async_schedule_modes(force=True)
            )
        )
        self.entry.async_on_unload(
            self.hub.async_add_satellite_listener(
                lambda _sat: self._async_schedule_modes()
            )
        )
        if (
            remove := _async_listen_pipeline_changes(
                self.hass, self._async_pipelines_changed
            )
        ) is not None:
            self.entry.async_on_unload(remove)

    # ------------------------------------------------------------------ pipeline modes

    async def _async_pipelines_changed(self, *_args: Any) -> None:
        await self.async_update_modes()

    @callback
    def _async_schedule_modes(self, force: bool = False) -> None:
        self.entry.async_create_background_task(
            self.hass, self.async_update_modes(force), f"{DOMAIN} pipeline modes"
        )

    async def async_update_modes(self, force: bool = False) -> None:
        """Tell the bridge, per satellite, whether to stream to an Assist pipeline.

        `assist` only for a satellite whose chosen pipeline exists and is allowed under the
        confirmed policy (no confirmed policy yet: nobody streams); `hearth` otherwise, so a
        refused pipeline is refused before any audio is sent. Published retained, on changes:
        of the policy, of Assist pipelines, of the satellites; options changes reload the entry,
        and the bridge coming online (again) republishes them all.
        """
        options = self.entry.options.get(CONF_SATELLITES, {})
        for satellite_id in sorted(set(self.hub.satellites) | set(options)):
            mode = "hearth"
            if (
                self.pipeline_for(satellite_id) is not None
                and self.hub.policy is not None
                and await self.async_choose_pipeline(satellite_id, count=False)
                is not None
            ):
                mode = "assist"
            if not force and self._modes.get(satellite_id) == mode:
                continue
            self._modes[satellite_id] = mode
            await self.hub.async_publish(
                self.hub.topic("satellite", satellite_id, "pipeline", "set"),
                {"mode": mode},
                retain=True,
            )

    def mode_for(self, satellite_id: str) -> str:
        """Return the pipeline mode last published for a satellite."""
        return self._modes.get(satellite_id, "hearth")

    def pipeline_for(self, satellite_id: str) -> str | None:
        """Return the Assist pipeline chosen for a satellite (None: Hearth's own).

        On its Assist pipeline select, else in the options.
        """
        if (chosen := chosen_pipeline(self.hass, self.hub, satellite_id)) is not None:
            return chosen
        options = self.entry.options.get(CONF_SATELLITES, {}).get(satellite_id, {})
        pipeline_id = options.get(CONF_PIPELINE)
        if not pipeline_id or pipeline_id == HEARTH_PIPELINE:
            return None
        return str(pipeline_id)

    def agent_for(self, satellite_id: str) -> str | None:
        """Return the conversation agent the owner chose for a satellite (None: built-in)."""
        options = self.entry.options.get(CONF_SATELLITES, {}).get(satellite_id, {})
        agent_id = options.get(CONF_AGENT_ID)
        if not agent_id or agent_id == conversation.HOME_ASSISTANT_AGENT:
            return None
        return str(agent_id)

    @callback
    def _async_policy_changed(self) -> None:
        """Withdraw the repair issues once cloud agents are allowed again; re-judge streaming."""
        if self.hub.policy is not None and not self.hub.policy.local_only:
            self._async_delete_issues()
        self._async_schedule_modes()

    @callback
    def _async_delete_issues(self) -> None:
        for issue in self._issues:
            ir.async_delete_issue(self.hass, DOMAIN, issue)
        self._issues.clear()

    @callback
    def _async_transcript(self, satellite_id: str, data: dict[str, Any]) -> None:
        self.entry.async_create_background_task(
            self.hass,
            self.async_handle(satellite_id, data),
            f"{DOMAIN} voice command {satellite_id}",
        )

    async def async_choose_route(self, satellite_id: str) -> tuple[str | None, str]:
        """Return (conversation agent, language) for a satellite's next command.

        A chosen Assist pipeline answers with its conversation agent and language, unless
        Local-only processing refuses one of its engines; then (and by default) Hearth's own
        pipeline answers: the satellite's conversation agent in Home Assistant's language.
        """
        if (pipeline := await self.async_choose_pipeline(satellite_id)) is not None:
            language = pipeline.conversation_language
            if not language or language == MATCH_ALL:
                language = self.hass.config.language
            agent_id = pipeline.conversation_engine
            if agent_id == conversation.HOME_ASSISTANT_AGENT:
                return None, language
            return agent_id, language
        return await self.async_choose_agent(satellite_id), self.hass.config.language

    async def async_choose_pipeline(
        self, satellite_id: str, count: bool = True
    ) -> Pipeline | None:
        """Return the satellite's Assist pipeline if it may be used now, else None.

        A refusal raises the repair issue; `count` also counts it as a blocked request (not
        when only the streaming mode is being judged).
        """
        if (pipeline_id := self.pipeline_for(satellite_id)) is None:
            return None
        if (pipeline := find_pipeline(self.hass, pipeline_id=pipeline_id)) is None:
            _LOGGER.warning(
                "Assist pipeline %s of satellite %s no longer exists; using Hearth's own",
                pipeline_id,
                satellite_id,
            )
            return None
        policy = self.hub.policy
        if policy is None or not policy.local_only:
            return pipeline
        if (refused := await async_pipeline_locality(self.hass, pipeline)) is None:
            return pipeline
        stage, locality = refused
        issue = pipeline_issue_id(self.entry, pipeline.id)
        if count or issue not in self._issues:
            _LOGGER.warning(
                "Local-only processing refused Assist pipeline %s for satellite %s: its %s"
                " engine %s (%s) is %s; using Hearth's own pipeline",
                pipeline.name,
                satellite_id,
                stage,
                locality.agent_id,
                locality.domain,
                locality.reason,
            )
        if count:
            self.hub.async_count_blocked_agent()
        self._issues.add(issue)
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue,
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=f"pipeline_blocked_{locality.reason}",
            translation_placeholders={
                "pipeline": pipeline.name,
                "pipeline_id": pipeline.id,
                "stage": stage,
                "engine": locality.name,
                "engine_id": locality.agent_id,
                "integration": locality.domain or "?",
                "iot_class": locality.iot_class or "?",
                "satellite": satellite_id,
            },
        )
        return None

    async def async_choose_agent(self, satellite_id: str) -> str | None:
        """Return the agent to use now: the chosen one unless local-only forbids it."""
        agent_id = self.agent_for(satellite_id)
        policy = self.hub.policy
        if agent_id is None or policy is None or not policy.local_only:
            return agent_id
        locality = await async_agent_locality(self.hass, agent_id)
        if locality.local:
            return agent_id
        _LOGGER.warning(
            "Local-only processing refused conversation agent %s (%s: %s); using the built-in"
            " agent for satellite %s",
            agent_id,
            locality.domain,
            locality.reason,
            satellite_id,
        )
        self.hub.async_count_blocked_agent()
        issue = issue_id(self.entry, agent_id)
        self._issues.add(issue)
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue,
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=f"agent_blocked_{locality.reason}",
            translation_placeholders={
                "agent": locality.name,
                "agent_id": agent_id,
                "integration": locality.domain or "?",
                "iot_class": locality.iot_class or "?",
                "satellite": satellite_id,
            },
        )
        return None

    async def async_handle(self, satellite_id: str, data: dict[str, Any]) -> None:
        """Run one transcript through a conversation agent and publish the answer."""
        satellite = self.hub.satellites.get(satellite_id)
        if satellite is None:
            return
        agent_id, language = await self.async_choose_route(satellite_id)
        now = time.monotonic()
        conversation_id = (
            satellite.conversation_id
            if now - satellite.conversation_at < CONVERSATION_TIMEOUT
            else None
        )
        extra_system_prompt, satellite.extra_system_prompt = (
            satellite.extra_system_prompt,
            None,
        )
        result = await conversation.async_converse(
            self.hass,
            data["text"],
            conversation_id,
            Context(),
            language,
            agent_id=agent_id,
            device_id=self.hub.satellite_device_id(satellite_id),
            satellite_id=er.async_get(self.hass).async_get_entity_id(
                "assist_satellite",
                DOMAIN,
                f"{self.hub.satellite_unique_id(satellite_id)}-assist_satellite",
            ),
            extra_system_prompt=extra_system_prompt,
        )
        satellite.conversation_id = result.conversation_id
        satellite.conversation_at = time.monotonic()
        if satellite.last_utterance is not None:
            satellite.last_utterance.agent_id = (
                agent_id or conversation.HOME_ASSISTANT_AGENT
            )
            self.hub.async_satellite_updated(satellite_id)
        speech = result.response.speech.get("plain", {}).get("speech", "")
        await self.hub.async_publish(
            self.hub.topic("satellite", satellite_id, "response"),
            {
                "session_id": data.get("session_id"),
                "text": speech,
                "conversation_id": result.conversation_id,
                "continue": result.continue_conversation,
            },
        )
