"""Privacy control: the policy in force, the commands that change it, and what a change does.

The policy (local-only, privacy mode, retention, transcripts, per-microphone mutes) is saved
before it takes effect or is confirmed, so a crash can never leave Home Assistant believing in a
policy the bridge does not hold. A mute is told to the satellite (Hearth `command`, Hermes
`mute_input` and hotword toggles), ends any session it interrupts, and frames from a muted
microphone are dropped and counted where they arrive. A policy that had to start from the
defaults because the saved one was missing or unusable is a reset: it has a new epoch (in
`policy/state`), is logged, and is reported once on `bridge/error` as `policy_reset` when the
bridge first connects, so Home Assistant and the owner can tell it from a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Protocol

from ..privacy.audit import AuditLog
from ..privacy.policy import Policy, PolicyError, Retention
from ..privacy.retention import UtteranceRetention
from ..privacy.store import PolicyStart, PolicyStore
from ..protocol.hearth import ProtocolError, parse_json_object
from ..protocol.messages import Command, Json, PolicyResult
from ..satellite import Protocol as SatelliteProtocol
from ..satellite import Satellite
from ..tasks import spawn
from .hermes import HermesAdapter
from .outbox import Outbox
from .results import Reporter

_LOGGER = logging.getLogger("bridge")


class PolicyState:
    """The policy in force and where it is kept; calling it returns the policy (for the gate)."""

    def __init__(self, store: PolicyStore) -> None:
        self.store = store
        self.policy: Policy
        self.start: PolicyStart
        self.policy, self.start = store.open()
        if self.start.reset:
            _LOGGER.warning("Policy reset: %s; started from the defaults (local only, keep nothing, no "
                            "microphone muted) as epoch %s", self.start.reason, self.policy.epoch)
        else:
            _LOGGER.info("Policy epoch %s, revision %d (%s)", self.policy.epoch, self.policy.revision,
                         self.start.kind)

    def reset_message(self) -> str | None:
        """What `bridge/error` says about a reset at start (None: there was none)."""
        if not self.start.reset:
            return None
        return (f"the saved policy was lost ({self.start.reason}); the bridge started from the defaults "
                f"(local only, keep nothing, no microphone muted) as epoch {self.policy.epoch}, "
                "revision 0; Home Assistant re-applies the policy it holds")

    def __call__(self) -> Policy:
        return self.policy

    def replace(self, updated: Policy) -> None:
        """Saves, then puts `updated` in force (a policy that cannot be saved never takes effect)."""
        self.store.save(updated)
        self.policy = updated


class ControlHost(Protocol):
    @property
    def satellites(self) -> Mapping[str, Satellite]: ...
    def state_changed(self, sat: Satellite) -> None: ...


class PrivacyControl:
    """Applies policy commands, expiries and history purges, and what a change means."""

    def __init__(self, state: PolicyState, outbox: Outbox, reporter: Reporter, audit: AuditLog,
                 hermes: HermesAdapter, host: ControlHost) -> None:
        self.state = state
        self.outbox = outbox
        self.topics = outbox.topics
        self.reporter = reporter
        self.audit = audit
        self.hermes = hermes
        self.host = host
        self.retention = UtteranceRetention(state)
        self.dropped_muted = 0
        self._reset_reported = False

    @property
    def policy(self) -> Policy:
        return self.state.policy

    def is_muted(self, sat_id: str) -> bool:
        return self.policy.is_muted(sat_id, time.time())

    def retention_enabled(self) -> bool:
        return self.policy.retention is Retention.MEMORY

    def drop_muted(self, sat: Satellite) -> None:
        """A frame from a muted microphone: dropped, counted, and the satellite reminded (1/s)."""
        self.dropped_muted += 1
        self.audit.note_muted_frame()
        self.outbox.stats_dirty = True
        if self.reporter.errors.report("muted", "frames from a muted satellite dropped", sat.id):
            self.tell_muted(sat, True)

    def tell_muted(self, sat: Satellite, muted: bool) -> None:
        if sat.protocol is SatelliteProtocol.HEARTH:
            self.outbox.send(self.topics.satellite(sat.id, "command"), Command("mute" if muted else "unmute"))
        else:
            self.hermes.tell_muted(sat, muted)
        self.host.state_changed(sat)

    def republish(self) -> None:
        """After (re)connecting: the retained `policy/state`, and on the first connection after a
        reset, the `policy_reset` error (counted; its epoch stays in `policy/state`)."""
        self.outbox.send(self.topics.policy_state, self.policy.to_json(), retain=True)
        message = self.state.reset_message()
        if message is not None and not self._reset_reported:
            self._reset_reported = True
            self.reporter.report_error("policy_reset", message, None, None, self.topics.policy_state)

    def on_command(self, payload: bytes) -> None:
        """`<prefix>/bridge/policy/set`: applied, saved, then confirmed on `policy/result`."""
        request_id: Json = None
        try:
            data = parse_json_object(payload, "policy command")
            request_id = data.get("request_id")
            before = self.policy
            self.set_policy(before.apply(data, time.time()), before)
        except (ProtocolError, PolicyError) as err:
            message = str(err)
            self.reporter.report_error("bad_policy_command", message, None, None, self.topics.policy_set)
            self._result(request_id, False, message)
            return
        except OSError as err:
            self._result(request_id, False, f"could not save the policy: {err}")
            return
        self._result(request_id, True, None)

    def _result(self, request_id: Json, ok: bool, error: str | None, purged: int | None = None) -> None:
        self.outbox.send(self.topics.policy_result, PolicyResult(request_id, ok, error, self.policy.to_json(), purged))

    def set_policy(self, updated: Policy, before: Policy) -> None:
        if updated == before:
            return
        self.state.replace(updated)  # persisted before it takes effect or is confirmed
        self.retention.enforce()
        self.outbox.send(self.topics.policy_state, updated.to_json(), retain=True)
        now = time.time()
        for sat in self.host.satellites.values():
            was, now_muted = before.is_muted(sat.id, now), updated.is_muted(sat.id, now)
            if was != now_muted:
                self.tell_muted(sat, now_muted)
                if now_muted and sat.session is not None:
                    spawn(sat.abort("muted", "microphone muted"), name="satellite-abort",
                          report=self.reporter.report_error)

    def expire(self, now: float) -> None:
        """Timed mutes and modes that ran out (called every second)."""
        expired = self.policy.expire(now)
        if expired != self.policy:
            try:
                self.set_policy(expired, self.policy)
            except OSError as err:
                _LOGGER.error("Could not save the policy: %s", err)

    def on_purge(self, payload: bytes) -> None:
        """`<prefix>/bridge/history/purge`: forget retained audio and the audit history."""
        request_id: Json = None
        try:
            data = parse_json_object(payload, "purge command")
            request_id = data.get("request_id")
        except ProtocolError as err:
            self.reporter.report_error(err.code, err.message, None, None, self.topics.history_purge)
            self._result(request_id, False, err.message)  # refused: nothing is purged
            return
        self.retention.purge()
        removed = self.audit.purge()
        self.outbox.send(self.topics.audit, self.audit.to_json(), retain=True)
        self._result(request_id, True, None, purged=removed)
