"""The owner's privacy policy, kept by Home Assistant so that a bridge that lost it gets it back.

The bridge's policy has a `revision` (one more per change) and an `epoch` (a new one whenever the
bridge had to start from its defaults because its saved policy was missing or unusable). The
keeper stores, per config entry, the last policy the bridge confirmed
(`.storage/hearth.<entry id>.policy`). A `policy/state` of another epoch, or of a lower revision,
means the bridge's policy was reset: the entities show what the bridge now holds (never a mute it
does not hold), the keeper re-applies the stored policy with one `policy/set` (the bridge-wide
settings and the mutes still in force; it never unmutes) and raises a repair issue saying what it
re-applied. Until the bridge confirms it, the stored policy is kept, what the microphones the owner
muted hear is ignored, and a change the owner makes is sent together with the re-apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import Store

from .const import (
    DOMAIN,
    ISSUE_POLICY_RESET,
    ISSUE_POLICY_RESET_PENDING,
    RETENTION_OPTIONS,
    SATELLITE_ID,
)
from .models import Policy

if TYPE_CHECKING:
    from . import HearthConfigEntry
    from .hub import HearthHub

_LOGGER = logging.getLogger(__name__)

STORAGE_VERSION = 1
# A bridge that resets again while a re-apply is under way is re-applied to again, this often.
MAX_ATTEMPTS = 3


def storage_key(entry_id: str) -> str:
    """Return the storage key of a config entry's kept policy."""
    return f"{DOMAIN}.{entry_id}.policy"


def reset_issue_id(entry_id: str) -> str:
    """Return the id of the notice that a bridge's policy was reset and re-applied."""
    return f"{ISSUE_POLICY_RESET}_{entry_id}"


def pending_issue_id(entry_id: str) -> str:
    """Return the id of the issue raised while a reset policy is not re-applied yet."""
    return f"{ISSUE_POLICY_RESET_PENDING}_{entry_id}"


def reapply_command(owner: Policy, now: float) -> dict[str, Any]:
    """Return the `policy/set` command (without request_id) that gives the bridge `owner` back.

    The bridge-wide settings as they were; each mute still in force (a timed one for the time it
    has left); no unmute (what the bridge mutes stays muted). A retention the bridge would refuse
    becomes `none` and a satellite id it would refuse is left out, so the command is accepted.
    """
    command: dict[str, Any] = {
        "local_only": owner.local_only,
        "privacy_mode": owner.privacy_mode,
        "retention": owner.retention
        if owner.retention in RETENTION_OPTIONS
        else "none",
        "publish_transcripts": owner.publish_transcripts,
    }
    microphones: dict[str, dict[str, Any]] = {}
    for satellite, until in sorted(owner.mutes_until(now).items()):
        if not SATELLITE_ID.fullmatch(satellite):
            continue
        mute: dict[str, Any] = {"muted": True}
        if until is not None:
            mute["duration"] = max(1, math.ceil(until - now))
        microphones[satellite] = mute
    if microphones:
        command["microphones"] = microphones
    return command


def merge_command(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Return `base` with an owner's `changes` on top (microphones merged per satellite)."""
    merged = {
        **base,
        **{key: value for key, value in changes.items() if key != "microphones"},
    }
    if "microphones" in changes:
        merged["microphones"] = {
            **base.get("microphones", {}),
            **changes["microphones"],
        }
    return merged


class PolicyKeeper:
    """Keeps the owner's policy for one bridge, sees a reset, and re-applies the policy."""

    def __init__(
        self, hass: HomeAssistant, entry: HearthConfigEntry, hub: HearthHub
    ) -> None:
        """Initialize."""
        self.hass = hass
        self.entry = entry
        self.hub = hub
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, storage_key(entry.entry_id)
        )
        self.owner: Policy | None = None
        """The owner's policy: the last one the bridge confirmed before any reset."""
        self.reset: Policy | None = None
        """The bridge's policy that showed a reset, while the owner's is not re-applied."""
        self.last_error: str | None = None
        """Why the last re-apply failed (None: it did not)."""
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._withheld_logged: set[str] = set()

    async def async_load(self) -> None:
        """Load the kept policy (before the bridge's retained state arrives)."""
        data = await self._store.async_load()
        if isinstance(data, dict) and isinstance(stored := data.get("policy"), dict):
            self.owner = Policy.from_payload(stored)
        self.entry.async_on_unload(self._async_delete_pending_issue)

    # ------------------------------------------------------------------ what the bridge says

    def continues(self, policy: Policy) -> bool:
        """Whether `policy` follows the owner's (the same epoch, the revision not gone back)."""
        owner = self.owner
        if owner is None:
            return True
        if policy.epoch != owner.epoch and owner.epoch is not None:
            return False
        # The same epoch, or a bridge that has begun sending one: only the revision can tell.
        return policy.revision >= owner.revision

    @callback
    def async_bridge_state(self, policy: Policy) -> None:
        """Handle a `policy/state`: keep it as the owner's, or see that the bridge lost the policy."""
        if self.reset is None and self.continues(policy):
            self._async_keep(policy)
            return
        if self.reset is None:
            _LOGGER.warning(
                "Hearth bridge %s lost its privacy policy (epoch %s revision %s, was %s"
                " revision %s); re-applying the policy set in Home Assistant",
                self.hub.bridge_id,
                policy.epoch,
                policy.revision,
                self.owner.epoch if self.owner else None,
                self.owner.revision if self.owner else None,
            )
        self.reset = policy
        self.async_reapply_soon()

    @callback
    def async_bridge_result(self, policy: Policy) -> None:
        """Handle a policy confirmed in a `policy/result`: kept if it follows the owner's."""
        if self.reset is None and self.continues(policy):
            self._async_keep(policy)

    @callback
    def _async_keep(self, policy: Policy) -> None:
        if policy == self.owner:
            return
        self.owner = policy
        self._store.async_delay_save(self._data, 0.5)

    def _data(self) -> dict[str, Any]:
        return {"policy": self.owner.to_payload() if self.owner else None}

    def withheld(self, satellite_id: str) -> bool:
        """Return whether to ignore what a satellite hears.

        So while the bridge's policy was reset, the owner's is not re-applied yet, and it keeps
        this satellite from being heard.
        """
        if self.reset is None or self.owner is None:
            return False
        return self.owner.silences(satellite_id, time.time())

    @callback
    def async_withheld(self, satellite_id: str, what: str) -> bool:
        """:meth:`withheld`, logged once per satellite and reset (`what` names the message)."""
        if not self.withheld(satellite_id):
            return False
        if satellite_id not in self._withheld_logged:
            self._withheld_logged.add(satellite_id)
            _LOGGER.warning(
                "Ignoring a %s from Hearth satellite %s (and what follows until the policy is"
                " re-applied): the bridge lost its policy, and the one set in Home Assistant"
                " mutes it",
                what,
                satellite_id,
            )
        return True

    # ------------------------------------------------------------------ re-applying

    @callback
    def async_reapply_soon(self) -> None:
        """Re-apply the owner's policy in the background if it is due (and not under way)."""
        if self.reset is None or (self._task is not None and not self._task.done()):
            return
        if not self.hub.available:
            self._async_pending_issue(self.last_error or "the bridge is offline")
            return
        self._task = self.entry.async_create_background_task(
            self.hass, self._async_reapply_in_background(), f"{DOMAIN} policy re-apply"
        )

    async def _async_reapply_in_background(self) -> None:
        async with self._lock:
            with contextlib.suppress(HomeAssistantError):  # raised as a repair issue
                await self._async_reapply(None)

    async def async_set_policy(self, changes: dict[str, Any]) -> None:
        """Apply an owner's change; while the owner's policy is not re-applied, send it too."""
        async with self._lock:
            if self.reset is None:
                await self.hub.async_request(
                    self.hub.topic("bridge", "policy", "set"), changes
                )
            else:
                await self._async_reapply(changes)

    async def _async_reapply(self, changes: dict[str, Any] | None) -> None:
        """Send the owner's policy (and `changes`) until the bridge confirms it in its epoch.

        Runs under the lock. Raises HomeAssistantError (after raising the pending issue) when the
        bridge does not confirm.
        """
        topic = self.hub.topic("bridge", "policy", "set")
        for _attempt in range(MAX_ATTEMPTS):
            if self.reset is None:
                if changes is not None:  # re-applied meanwhile: the change alone
                    await self.hub.async_request(topic, changes)
                return
            target = self.hub.policy
            command = reapply_command(self.owner, time.time()) if self.owner else {}
            if changes is not None:
                command = merge_command(command, changes)
            try:
                result = await self.hub.async_request(topic, command)
            except HomeAssistantError as err:
                self.last_error = str(err)
                self._async_pending_issue(self.last_error)
                raise
            payload = result.get("policy")
            confirmed = (
                Policy.from_payload(payload)
                if isinstance(payload, dict)
                else self.hub.policy
            )
            if confirmed is None or target is None or confirmed.epoch != target.epoch:
                continue  # the bridge reset again meanwhile: once more
            changes = None
            self.reset = None
            self.last_error = None
            self._withheld_logged.clear()
            self._async_keep(confirmed)
            self._async_reapplied_issue(command)
            _LOGGER.warning(
                "Hearth bridge %s confirmed the re-applied privacy policy (epoch %s revision %s)",
                self.hub.bridge_id,
                confirmed.epoch,
                confirmed.revision,
            )
            if self.hub.policy is not None and not self.continues(self.hub.policy):
                self.reset = self.hub.policy  # reset again after the answer: once more
                continue
            return
        self.last_error = "the bridge kept losing its policy"
        self._async_pending_issue(self.last_error)
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="policy_not_reapplied",
            translation_placeholders={"bridge": self.hub.bridge_id},
        )

    # ------------------------------------------------------------------ repair issues

    def _placeholders(self, command: dict[str, Any]) -> dict[str, str]:
        muted = sorted(command.get("microphones", {}))
        return {
            "bridge": self.hub.bridge_id,
            "local_only": _on_off(command.get("local_only")),
            "privacy_mode": _on_off(command.get("privacy_mode")),
            "retention": str(command.get("retention", "none")),
            "publish_transcripts": _on_off(command.get("publish_transcripts")),
            "muted": ", ".join(muted) if muted else "none",
        }

    @callback
    def _async_pending_issue(self, error: str) -> None:
        command = reapply_command(self.owner, time.time()) if self.owner else {}
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            pending_issue_id(self.entry.entry_id),
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_POLICY_RESET_PENDING,
            translation_placeholders={**self._placeholders(command), "error": error},
        )

    @callback
    def _async_reapplied_issue(self, command: dict[str, Any]) -> None:
        self._async_delete_pending_issue()
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            reset_issue_id(self.entry.entry_id),
            is_fixable=True,
            is_persistent=True,
            severity=ir.IssueSeverity.WARNING,
            translation_key=ISSUE_POLICY_RESET,
            translation_placeholders=self._placeholders(command),
        )

    @callback
    def _async_delete_pending_issue(self) -> None:
        ir.async_delete_issue(self.hass, DOMAIN, pending_issue_id(self.entry.entry_id))


async def async_remove_kept_policy(hass: HomeAssistant, entry_id: str) -> None:
    """Forget a removed bridge's kept policy and its notices."""
    await Store[dict[str, Any]](
        hass, STORAGE_VERSION, storage_key(entry_id)
    ).async_remove()
    ir.async_delete_issue(hass, DOMAIN, reset_issue_id(entry_id))
    ir.async_delete_issue(hass, DOMAIN, pending_issue_id(entry_id))


def _on_off(value: Any) -> str:
    return "on" if value else "off"
