"""Privacy control: the policy in force, the commands that change it, and what a change does.

The policy (local-only, privacy mode, retention, transcripts, per-microphone mutes) is saved
before it takes effect or is confirmed, so a crash can never leave Home Assistant believing in a
policy the bridge does not hold, with one exception that favours privacy: a change that makes the
house only more private (`bridge.privacy.policy.loosened` finds nothing) takes effect at once even
when the data folder is full or read-only; `policy/result` then says `"saved": false`, a
`policy_not_saved` error is published, and the save is retried every second until it succeeds. A
change that loosens anything is refused while it cannot be saved. A mute is told to the satellite
(Hearth `command`, Hermes `mute_input` and hotword toggles), ends any session it interrupts,
withdraws a command already forwarded to Home Assistant, and frames from a muted microphone are
dropped and counted where they arrive; a result decoded after a mute is discarded
(`ResultPublisher`). A policy that had to start from the
defaults because the saved one was missing or unusable is a reset: it has a new epoch (in
`policy/state`), is logged, and is reported once on `bridge/error` as `policy_reset` when the
bridge first connects, so Home Assistant and the owner can tell it from a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from ..privacy.audit import AuditLog
from ..privacy.policy import Policy, PolicyError, Retention, loosened
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
        #: whether the policy in force is on disk (False: in force in memory only, save retried)
        self.saved = self.start.saved
        #: why the last save failed (None: it did not)
        self.save_error: str | None = None if self.saved else "could not be saved at start"
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

    def replace(self, updated: Policy, *, at_once: bool = False) -> None:
        """Saves, then puts `updated` in force. A policy that cannot be saved never takes effect
        (OSError) unless `at_once` (the change makes the house only more private): then it is in
        force in memory, `saved` is False and :meth:`retry_save` saves it later."""
        try:
            self.store.save(updated)
        except OSError as err:
            if not at_once:
                raise
            if self.saved:  # logged once per failure, not on every retry
                _LOGGER.error("Could not save the policy (%s); revision %d, which only makes the house more "
                              "private, is in force in memory and the save is retried every second",
                              err.strerror or err, updated.revision)
            self.policy, self.saved, self.save_error = updated, False, err.strerror or str(err)
            return
        self.policy, self.saved, self.save_error = updated, True, None

    def retry_save(self) -> bool:
        """Saves the policy in force if it is held in memory only; True when it just got saved."""
        if self.saved:
            return False
        try:
            self.store.save(self.policy)
        except OSError as err:
            self.save_error = err.strerror or str(err)
            return False
        self.saved, self.save_error = True, None
        _LOGGER.info("Policy revision %d saved (it was in force in memory only)", self.policy.revision)
        return True


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
        #: a satellite just muted with no session open: withdraw what it already handed on (set by the bridge)
        self.withdraw: Callable[[Satellite], None] = lambda _sat: None

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
        before = updated = self.policy
        try:
            data = parse_json_object(payload, "policy command")
            request_id = data.get("request_id")
            updated = before.apply(data, time.time())
            self.set_policy(updated, before)
        except (ProtocolError, PolicyError) as err:
            message = str(err)
            self.reporter.report_error("bad_policy_command", message, None, None, self.topics.policy_set)
            self._result(request_id, False, message)
            return
        except OSError as err:
            why = err.strerror or str(err)
            message = (f"could not save the policy ({why}); a change that makes the house less private "
                       f"({', '.join(loosened(before, updated, time.time()))}) takes effect only once it is "
                       "saved: refused, the policy in force is unchanged")
            self.reporter.report_error("policy_not_saved", message, None, None, self.topics.policy_set)
            self._result(request_id, False, message)
            return
        self._result(request_id, True, None, saved=self.state.saved)
        if not self.state.saved:
            self.reporter.report_error(
                "policy_not_saved", f"the policy in force (revision {self.policy.revision}) could not be saved "
                f"({self.state.save_error}); it holds in memory and the bridge retries the save every second",
                None, None, self.topics.policy_set)

    def _result(self, request_id: Json, ok: bool, error: str | None, purged: int | None = None,
                saved: bool | None = None) -> None:
        self.outbox.send(self.topics.policy_result,
                         PolicyResult(request_id, ok, error, self.policy.to_json(), purged, saved))

    def set_policy(self, updated: Policy, before: Policy) -> None:
        if updated == before:
            return
        # persisted before it takes effect or is confirmed, unless it only makes the house more private
        self.state.replace(updated, at_once=not loosened(before, updated, time.time()))
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
                elif now_muted:
                    self.withdraw(sat)  # before the mute is confirmed

    def expire(self, now: float) -> None:
        """Timed mutes and modes that ran out, and the retried save (called every second)."""
        if self.state.retry_save():
            self.outbox.stats_dirty = True
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
