"""When a satellite is gone: the satellite table's expiry rules (pure, no I/O).

The bridge keeps every satellite it serves in one table bounded by `limits.max_satellites`.
Without expiry a table fills with satellites that went offline and with every Hermes site ever
heard, and then refuses new ones. This module remembers when each satellite was last heard
from (on an injectable clock) and says which are gone; `Bridge` removes them, clears their
retained state and closes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from ..satellite import Protocol as SatelliteProtocol
from ..satellite import Satellite

#: A Hearth satellite that has said it is offline (or whose last will the broker delivered) is
#: forgotten after this long. A reboot or a Wi-Fi drop is back well within ten minutes and keeps
#: its counters and last result; after that the bridge forgets it as a restart would (its own
#: retained `offline` status stays on the broker, and it rejoins when it announces itself).
OFFLINE_SATELLITE_EXPIRY = 600.0
#: A Hermes site has no online/offline: it is known only by its traffic. Its audio server streams
#: ~30 frames a second while its microphone is on, so five silent minutes mean it is gone (or
#: muted: its mute is kept in the policy by id, and it is served again when it streams again).
HERMES_SITE_EXPIRY = 300.0
#: A Hearth satellite that says it is online but has sent nothing at all (no status, event or
#: audio) for this long is treated as gone, as a broker treats a client past its keep-alive: a
#: status announced "online" without a last will (any broker login can make one up) must not
#: hold a place for ever. hearth-satellite re-announces its status every
#: `hearth_satellite.satellite.STATUS_REFRESH` seconds (5 minutes), well within this; a forgotten
#: satellite that speaks again is told `unknown_satellite` and announces itself again.
ONLINE_SILENCE_EXPIRY = 900.0
#: When the table is full and nothing is gone, the longest-silent satellite without a session
#: makes room for a new one, if it has been silent at least this long (a flood of new ids cannot
#: push out satellites that are talking).
EVICTABLE_SILENCE = 60.0


class LastSeen:
    """When each satellite in the table was last heard from, and which are gone."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._times: dict[str, float] = {}

    def seen(self, sat_id: str) -> None:
        self._times[sat_id] = self.clock()

    def forget(self, sat_id: str) -> None:
        self._times.pop(sat_id, None)

    def __len__(self) -> int:
        return len(self._times)

    def gone(self, satellites: Iterable[Satellite], busy: Callable[[Satellite], bool]) -> list[str]:
        """Ids of the satellites past their expiry; never one that is `busy` (a session, playback)."""
        now = self.clock()
        out: list[str] = []
        for sat in satellites:
            last = self._times.setdefault(sat.id, now)
            if sat.session is not None or sat.pending_start is not None or busy(sat):
                continue
            if sat.protocol is SatelliteProtocol.HERMES:
                expired = now - last >= HERMES_SITE_EXPIRY
            elif sat.online:
                expired = now - last >= ONLINE_SILENCE_EXPIRY
            else:
                expired = now - last >= OFFLINE_SATELLITE_EXPIRY
            if expired:
                out.append(sat.id)
        return out

    def longest_silent(self, satellites: Iterable[Satellite], busy: Callable[[Satellite], bool]) -> str | None:
        """The id of the satellite silent longest (at least EVICTABLE_SILENCE) that is not `busy`
        and has no session: the one that makes room in a full table. None when every one talks."""
        now = self.clock()
        oldest: tuple[float, str] | None = None
        for sat in satellites:
            if sat.session is not None or sat.pending_start is not None or busy(sat):
                continue
            last = self._times.setdefault(sat.id, now)
            if now - last >= EVICTABLE_SILENCE and (oldest is None or last < oldest[0]):
                oldest = (last, sat.id)
        return oldest[1] if oldest is not None else None
