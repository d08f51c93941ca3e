"""The owner's privacy policy: a pure, immutable value with strict parsing. No I/O here.

The policy is changed only through :meth:`Policy.apply` (the partial-update command of
``<prefix>/bridge/policy/set``, see docs/protocol.md "Policy") and :meth:`Policy.expire`. Both
return a new policy; a command that breaks any rule raises :class:`PolicyError` and changes
nothing (all fields are validated before any is applied). A policy carries its `revision` (one
more for every change) and its `epoch` (which life of the policy this is: a new one is made,
by the store, whenever the bridge has to start from the defaults), so a reset can never look
like an old revision.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from ..engines import Locality
from ..protocol.hearth import SATELLITE_ID, SATELLITE_ID_RULE

#: A satellite id, as in docs/protocol.md: 1-64 characters from [A-Za-z0-9_.:@-].
SATELLITE_ID_RE = SATELLITE_ID  # the one Hearth satellite id rule (bridge.protocol.hearth)
#: Longest mute accepted from a command (one year); longer means "until unmuted": omit duration.
MAX_MUTE_SECONDS = 366 * 24 * 3600.0
#: Most microphone entries one policy may hold.
MAX_MICROPHONES = 1000
#: An epoch: 1-64 characters from [A-Za-z0-9_-] (the bridge makes 16 hex digits).
EPOCH_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

_COMMAND_FIELDS = frozenset(
    {"request_id", "local_only", "privacy_mode", "retention", "publish_transcripts", "microphones"}
)
_STATE_FIELDS = frozenset(
    {"local_only", "privacy_mode", "retention", "publish_transcripts", "microphones", "revision"}
)
#: Optional in a stored policy: files saved before epochs existed have none.
_OPTIONAL_STATE_FIELDS = frozenset({"epoch"})


class Retention(enum.StrEnum):
    """What the bridge may keep of an utterance's audio after it is handled."""

    NONE = "none"  # nothing
    MEMORY = "memory"  # the last few utterances, in memory only, never on disk


class PolicyError(ValueError):
    """A policy command or stored policy broke a rule; the message names the field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class MicrophoneMute:
    """One satellite's microphone mute; `until` (epoch seconds) ends it, None = until unmuted."""

    muted: bool
    until: float | None = None

    def active(self, now: float) -> bool:
        """Whether this mute is in force at `now`."""
        return self.muted and (self.until is None or now < self.until)

    def to_json(self) -> dict[str, object]:
        """The ``{"muted", "until"}`` object used in ``policy/state``."""
        return {"muted": self.muted, "until": self.until}


def _freeze(microphones: Mapping[str, MicrophoneMute]) -> Mapping[str, MicrophoneMute]:
    return MappingProxyType(dict(sorted(microphones.items())))


@dataclass(frozen=True)
class Policy:
    """The confirmed privacy policy. Defaults are the safe ones: local only, keep nothing."""

    local_only: bool = True
    privacy_mode: bool = False
    retention: Retention = Retention.NONE
    publish_transcripts: bool = True
    microphones: Mapping[str, MicrophoneMute] = field(
        default_factory=lambda: MappingProxyType({})
    )
    revision: int = 0
    #: Which life of the policy this is ("" until the store gives it one); kept by every change.
    epoch: str = ""

    def __post_init__(self) -> None:
        # Always hold a read-only copy so a caller's dict cannot change a "frozen" policy.
        object.__setattr__(self, "microphones", _freeze(self.microphones))

    def __hash__(self) -> int:
        return hash(
            (
                self.local_only,
                self.privacy_mode,
                self.retention,
                self.publish_transcripts,
                tuple(self.microphones.items()),
                self.revision,
                self.epoch,
            )
        )

    # -- queries -------------------------------------------------------------------------

    def is_muted(self, satellite: str, now: float) -> bool:
        """True when privacy mode is on or `satellite` has a mute that has not expired."""
        if self.privacy_mode:
            return True
        mute = self.microphones.get(satellite)
        return mute is not None and mute.active(now)

    def allows(self, locality: Locality) -> bool:
        """Whether data may go to an engine of this locality (local-only forbids CLOUD)."""
        if locality == Locality.CLOUD:
            return not self.local_only
        return locality in (Locality.IN_PROCESS, Locality.LAN)

    def next_expiry(self) -> float | None:
        """The earliest `until` among the mutes, or None if no mute expires by itself."""
        times = [m.until for m in self.microphones.values() if m.muted and m.until is not None]
        return min(times) if times else None

    # -- changes -------------------------------------------------------------------------

    def expire(self, now: float) -> Policy:
        """Drop mutes whose time has come; the revision grows only if something changed."""
        kept = {sat: m for sat, m in self.microphones.items() if m.active(now)}
        if len(kept) == len(self.microphones):
            return self
        return replace(self, microphones=kept, revision=self.revision + 1)

    def apply(self, command: object, now: float) -> Policy:
        """Apply a ``policy/set`` partial update at time `now` and return the new policy.

        Every field is validated before anything changes; on any error :class:`PolicyError`
        is raised and this policy stays as it was. Unknown fields are errors (a misspelt
        ``"local_only"`` must not pass silently). ``request_id`` is ignored here. A mute
        with ``duration`` > 0 ends at ``now + duration``; ``{"muted": false}`` removes the
        entry. Expired mutes are dropped, and the revision grows by one for every accepted
        command.
        """
        if not isinstance(command, Mapping):
            raise PolicyError("command", f"expected a JSON object, got {_kind(command)}")
        for key in command:
            if not isinstance(key, str) or key not in _COMMAND_FIELDS:
                allowed = ", ".join(sorted(_COMMAND_FIELDS))
                raise PolicyError(str(key), f"unknown field; expected one of {allowed}")
        def flag(name: str, current: bool) -> bool:
            return _bool(command[name], name) if name in command else current

        local_only = flag("local_only", self.local_only)
        privacy_mode = flag("privacy_mode", self.privacy_mode)
        publish_transcripts = flag("publish_transcripts", self.publish_transcripts)
        retention = (
            _retention(command["retention"], "retention") if "retention" in command else self.retention
        )
        microphones = {sat: m for sat, m in self.microphones.items() if m.active(now)}
        if "microphones" in command:
            for sat, mute in _microphone_updates(command["microphones"], now):
                if mute is None:
                    microphones.pop(sat, None)
                else:
                    microphones[sat] = mute
            if len(microphones) > MAX_MICROPHONES:
                raise PolicyError("microphones", f"at most {MAX_MICROPHONES} entries")
        return replace(
            self,
            local_only=local_only,
            privacy_mode=privacy_mode,
            publish_transcripts=publish_transcripts,
            retention=retention,
            microphones=microphones,
            revision=self.revision + 1,
        )

    # -- JSON ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, object]:
        """The ``policy/state`` payload (also the stored form)."""
        return {
            "epoch": self.epoch,
            "local_only": self.local_only,
            "privacy_mode": self.privacy_mode,
            "retention": str(self.retention),
            "publish_transcripts": self.publish_transcripts,
            "microphones": {sat: m.to_json() for sat, m in self.microphones.items()},
            "revision": self.revision,
        }

    @classmethod
    def from_json(cls, data: object) -> Policy:
        """Parse :meth:`to_json` output strictly: every field present, right types, no extras.

        Only ``epoch`` may be missing (a file saved before epochs existed): the policy then has
        none (""), and the store gives it one.
        """
        if not isinstance(data, Mapping):
            raise PolicyError("policy", f"expected a JSON object, got {_kind(data)}")
        missing = sorted(_STATE_FIELDS - set(data))
        if missing:
            raise PolicyError(missing[0], "missing")
        extra = sorted(str(k) for k in data if k not in _STATE_FIELDS | _OPTIONAL_STATE_FIELDS)
        if extra:
            raise PolicyError(extra[0], "unknown field")
        revision = data["revision"]
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
            raise PolicyError("revision", f"expected an integer >= 0, got {revision!r}")
        epoch = data.get("epoch", "")
        if not isinstance(epoch, str) or (epoch and not EPOCH_RE.fullmatch(epoch)):
            raise PolicyError("epoch", "expected 1-64 characters from [A-Za-z0-9_-]")
        mics = data["microphones"]
        if not isinstance(mics, Mapping):
            raise PolicyError("microphones", f"expected a JSON object, got {_kind(mics)}")
        if len(mics) > MAX_MICROPHONES:
            raise PolicyError("microphones", f"at most {MAX_MICROPHONES} entries")
        microphones: dict[str, MicrophoneMute] = {}
        for sat, entry in mics.items():
            where = f"microphones.{sat}"
            _satellite_id(sat, where)
            if not isinstance(entry, Mapping) or set(entry) != {"muted", "until"}:
                raise PolicyError(where, 'expected {"muted": bool, "until": number | null}')
            until = entry["until"]
            if until is not None:
                until = _number(until, f"{where}.until")
            microphones[sat] = MicrophoneMute(_bool(entry["muted"], f"{where}.muted"), until)
        return cls(
            local_only=_bool(data["local_only"], "local_only"),
            privacy_mode=_bool(data["privacy_mode"], "privacy_mode"),
            retention=_retention(data["retention"], "retention"),
            publish_transcripts=_bool(data["publish_transcripts"], "publish_transcripts"),
            microphones=microphones,
            revision=revision,
            epoch=epoch,
        )


def loosened(before: Policy, after: Policy, now: float) -> list[str]:
    """The parts of the change from `before` to `after` that make the house less private, by
    field name (empty: the change is as private or more). Less private: local-only or privacy
    mode turned off, retention turned on, transcripts published again, a microphone unmuted or
    its mute shortened (a mute "until unmuted" made timed, or ending sooner) at `now`.

    The privacy control puts a change with nothing loosened in force at once, even when it
    cannot be saved; anything loosened waits until the change is saved (docs/security.md).
    """
    found = [name for name, was, now_is in (
        ("local_only", before.local_only, after.local_only),
        ("privacy_mode", before.privacy_mode, after.privacy_mode),
        ("publish_transcripts", not before.publish_transcripts, not after.publish_transcripts),
        ("retention", before.retention is Retention.NONE, after.retention is Retention.NONE),
    ) if was and not now_is]
    for sat in sorted(set(before.microphones) | set(after.microphones)):
        was_mute, mute = before.microphones.get(sat), after.microphones.get(sat)
        if was_mute is None or not was_mute.active(now):
            continue
        if mute is None or not mute.active(now) or (
                mute.until is not None and (was_mute.until is None or mute.until < was_mute.until)):
            found.append(f"microphones.{sat}")
    return found


# -- validation helpers --------------------------------------------------------------------


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(name, f"expected true or false, got {_kind(value)}")
    return value


def _retention(value: object, name: str) -> Retention:
    if isinstance(value, str):
        try:
            return Retention(value)
        except ValueError:
            pass
    choices = " or ".join(f'"{r.value}"' for r in Retention)
    raise PolicyError(name, f"expected {choices}, got {value!r}")


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) > 1e300 or not math.isfinite(value):
        raise PolicyError(name, f"expected a finite number, got {_kind(value)}")
    return float(value)


def _satellite_id(sat: object, where: str) -> str:
    if not isinstance(sat, str) or not SATELLITE_ID_RE.fullmatch(sat):
        raise PolicyError(where, f"satellite id must be {SATELLITE_ID_RULE}")
    return sat


def _microphone_updates(
    value: object, now: float
) -> Iterator[tuple[str, MicrophoneMute | None]]:
    """Validate the whole ``microphones`` object first, then yield (satellite, mute or None)."""
    if not isinstance(value, Mapping):
        raise PolicyError("microphones", f"expected a JSON object, got {_kind(value)}")
    if len(value) > MAX_MICROPHONES:
        raise PolicyError("microphones", f"at most {MAX_MICROPHONES} entries")
    updates: list[tuple[str, MicrophoneMute | None]] = []
    for sat, entry in value.items():
        where = f"microphones.{sat}"
        _satellite_id(sat, where)
        if not isinstance(entry, Mapping):
            raise PolicyError(
                where, f'expected {{"muted": bool, "duration"?: seconds}}, got {_kind(entry)}'
            )
        unknown = sorted(str(k) for k in entry if k not in ("muted", "duration"))
        if unknown:
            raise PolicyError(
                f"{where}.{unknown[0]}", 'unknown field; expected "muted" or "duration"'
            )
        if "muted" not in entry:
            raise PolicyError(f"{where}.muted", "missing")
        muted = _bool(entry["muted"], f"{where}.muted")
        duration = entry.get("duration")
        if duration is None:
            updates.append((sat, MicrophoneMute(True) if muted else None))
            continue
        if not muted:
            raise PolicyError(f"{where}.duration", "only allowed with \"muted\": true")
        seconds = _number(duration, f"{where}.duration")
        if not 0 < seconds <= MAX_MUTE_SECONDS:
            raise PolicyError(
                f"{where}.duration",
                f"expected seconds > 0 and <= {MAX_MUTE_SECONDS:.0f}"
                " (omit it to mute until unmuted)",
            )
        updates.append((sat, MicrophoneMute(True, now + seconds)))
    return iter(updates)
