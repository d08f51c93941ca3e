"""A content-free audit of what the bridge did with each utterance.

An entry says which engines handled an utterance, where they were, how many bytes left the
bridge's processes and what was refused — never what was said (no text) and never the audio.
The fields are fixed and validated, so there is no place to put content by accident.

Published retained on ``<prefix>/bridge/audit`` as :meth:`AuditLog.to_json`:
``{"counters": {...}, "recent": [entry, ...]}`` (recent entries oldest first).
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..engines import Locality
from .locality import ADDRESS_CLASSES

_LOGGER = logging.getLogger(__name__)

ENGINE_KINDS = frozenset({"stt", "tts", "wake", "vad", "intent"})
COUNTER_NAMES = (
    "utterances",
    "blocked_cloud_requests",
    "bytes_off_lan",
    "bytes_to_lan",
    "dropped_muted_frames",
    "errors",
    "refused_commands",
)
#: Identifiers (engine names, reasons, ids) are short tokens: no room for sentences.
_TOKEN_RE = re.compile(r"[A-Za-z0-9_.:/@+-]{0,64}")


def _token(value: object, name: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or not _TOKEN_RE.fullmatch(value) or (not empty and not value):
        raise ValueError(f"{name}: expected a short identifier (<= 64 of [A-Za-z0-9_.:/@+-])")
    return value


@dataclass(frozen=True)
class EngineUse:
    """One engine that handled (part of) an utterance."""

    kind: str  # stt | tts | wake | vad | intent
    name: str
    locality: Locality

    def __post_init__(self) -> None:
        if self.kind not in ENGINE_KINDS:
            raise ValueError(f"kind: expected one of {sorted(ENGINE_KINDS)}, got {self.kind!r}")
        _token(self.name, "name", empty=False)
        object.__setattr__(self, "locality", Locality(self.locality))

    def to_json(self) -> dict[str, object]:
        """``{"kind", "name", "locality"}``."""
        return {"kind": self.kind, "name": self.name, "locality": str(self.locality)}


@dataclass(frozen=True)
class AuditEntry:
    """What happened to one utterance, without its content.

    `address_class` is the most exposed place any of its bytes went (``"none"`` when nothing
    left the process); `blocked` lists short reasons such as ``"stt:local_only"``.
    """

    time: float
    satellite: str
    session_id: str
    engines: tuple[EngineUse, ...] = ()
    bytes_off_process: int = 0
    address_class: str = "none"
    blocked: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if isinstance(self.time, bool) or not isinstance(self.time, (int, float)):
            raise ValueError("time: expected epoch seconds")
        _token(self.satellite, "satellite")
        _token(self.session_id, "session_id")
        engines = tuple(self.engines)
        if not all(isinstance(e, EngineUse) for e in engines):
            raise ValueError("engines: expected EngineUse items")
        object.__setattr__(self, "engines", engines)
        n = self.bytes_off_process
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError("bytes_off_process: expected an integer >= 0")
        if self.address_class not in ADDRESS_CLASSES:
            raise ValueError(f"address_class: expected one of {ADDRESS_CLASSES}")
        if n > 0 and self.address_class == "none":
            raise ValueError('address_class: bytes left the process, so it cannot be "none"')
        blocked = tuple(_token(r, "blocked", empty=False) for r in self.blocked)
        object.__setattr__(self, "blocked", blocked)

    def to_json(self) -> dict[str, object]:
        """The entry as published in ``recent``."""
        return {
            "time": self.time,
            "satellite": self.satellite,
            "session_id": self.session_id,
            "engines": [e.to_json() for e in self.engines],
            "bytes_off_process": self.bytes_off_process,
            "address_class": self.address_class,
            "blocked": list(self.blocked),
        }


class AuditLog:
    """Counters since install plus the last `max_recent` entries (in memory)."""

    def __init__(self, max_recent: int = 50) -> None:
        self._recent: deque[AuditEntry] = deque(maxlen=max_recent)
        self._counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        self._blocked: dict[tuple[str, str], int] = {}

    @property
    def counters(self) -> dict[str, int]:
        """A copy of the counters."""
        return dict(self._counters)

    @property
    def recent(self) -> tuple[AuditEntry, ...]:
        """The recent entries, oldest first."""
        return tuple(self._recent)

    def record(self, entry: AuditEntry) -> None:
        """Add one utterance's entry and count its bytes by where they went.

        Blocked requests are counted by :meth:`count_blocked` where they happen, not here.
        """
        self._recent.append(entry)
        self._counters["utterances"] += 1
        if entry.address_class == "public":
            self._counters["bytes_off_lan"] += entry.bytes_off_process
        elif entry.address_class in ("lan", "loopback"):
            self._counters["bytes_to_lan"] += entry.bytes_off_process

    def count_blocked(self, engine: str, reason: str) -> None:
        """Count one request that was refused (e.g. a CLOUD engine under local-only)."""
        self._counters["blocked_cloud_requests"] += 1
        key = (engine, reason)
        self._blocked[key] = self._blocked.get(key, 0) + 1

    def blocked_by(self) -> dict[tuple[str, str], int]:
        """Blocked requests since start, by (engine, reason) (not persisted)."""
        return dict(self._blocked)

    def note_muted_frame(self, count: int = 1) -> None:
        """Count audio frames dropped because their microphone was muted."""
        self._counters["dropped_muted_frames"] += count

    def note_refused_command(self) -> None:
        """A policy, purge or settings command that did not prove it came from Home Assistant."""
        self._counters["refused_commands"] += 1

    def note_error(self, count: int = 1) -> None:
        """Count an error."""
        self._counters["errors"] += count

    def purge(self) -> int:
        """Forget the recent entries (history purge); counters stay. Returns how many."""
        dropped = len(self._recent)
        self._recent.clear()
        return dropped

    def to_json(self) -> dict[str, object]:
        """The ``<prefix>/bridge/audit`` payload: ``{"counters", "recent"}``."""
        return {"counters": self.counters, "recent": [e.to_json() for e in self._recent]}

    def counters_to_json(self) -> dict[str, int]:
        """The counters, for :class:`bridge.privacy.store.AuditStore`."""
        return self.counters

    def restore_counters(self, data: Mapping[str, object] | Iterable[tuple[str, object]]) -> None:
        """Restore saved counters; unknown names and bad values are ignored (logged)."""
        items = data.items() if isinstance(data, Mapping) else data
        for name, value in items:
            if name not in self._counters:
                _LOGGER.debug("Ignoring unknown audit counter %r", name)
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                _LOGGER.warning("Ignoring saved audit counter %s=%r", name, value)
                continue
            self._counters[name] = value
