"""One answer per wake: when several satellites hear the same wake word, the best-heard one wins.

A wake (a Hearth satellite's own wake event, or the bridge's wake word detection on an
always-streaming Hearth or Hermes satellite) is a :class:`Claim`. A satellite with no competitor
online (no area shared and no neighbour configured: docs/protocol.md, "Arbitration") starts its
session at once. Otherwise the first claim opens a group and a window of `arbitration.window`
seconds (at most 150 ms) in which the claims of its competitors join; the window closes early
when every competitor has claimed. Then the best-heard claim wins: the highest `speech_db` (the
wake word's level above the satellite's noise floor; claims within :data:`TIE_DB` of the best
tie), then the highest `wake_probability`, then the earliest. The others lose, and so does a
competitor whose wake comes after the decision but within `arbitration.late` seconds of the
group's first wake (the same utterance, heard late).

The arbiter only decides. :class:`WakeRouter` carries its decisions out for the bridge: it holds
each contender's audio meanwhile (the winner's is fed to its session, so no word is lost) and
tells the losers (`stand_down` for a Hearth satellite that streams per wake; nothing at all for
the others, so none of them beeps).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from ..protocol.messages import JsonObject
from ..satellite import Protocol as SatelliteProtocol
from ..satellite import Satellite, SessionSource
from ..settings import Settings

_LOGGER = logging.getLogger("bridge")

#: speech_db values this close to the best count as a tie (decided by wake_probability).
TIE_DB = 0.5


@dataclass(slots=True)
class Claim:
    """One satellite's wake, with what it heard."""

    sat: Satellite
    source: SessionSource
    wake_word: str | None = None
    session_id: str | None = None
    stream_id: int | None = None
    wake_probability: float | None = None
    speech_db: float | None = None
    at: float = 0.0  #: when the bridge got it (monotonic seconds)
    order: int = 0  #: arrival order (the last tie-break)

    @property
    def score(self) -> tuple[float, float, int]:
        db = self.speech_db if self.speech_db is not None and math.isfinite(self.speech_db) else -math.inf
        probability = self.wake_probability if self.wake_probability is not None else -1.0
        return db, probability, -self.order


@dataclass(slots=True)
class Group:
    """The claims of competing satellites on one utterance."""

    first_at: float
    expected: set[str]  #: every satellite id that competes with a claim in the group
    claims: list[Claim] = field(default_factory=list)
    winner: Claim | None = None
    timer: asyncio.TimerHandle | None = None

    def claimed(self, sat_id: str) -> bool:
        return any(claim.sat.id == sat_id for claim in self.claims)


def best(claims: Collection[Claim]) -> Claim:
    """The best-heard claim: loudest above its floor (ties within TIE_DB), likeliest, earliest."""
    top = max(claim.score[0] for claim in claims)
    near = [claim for claim in claims if claim.score[0] >= top - TIE_DB] if math.isfinite(top) else list(claims)
    return max(near, key=lambda claim: (claim.score[1], claim.score[2]))


class Arbiter:
    """Groups competing claims and decides each group once."""

    def __init__(self, window: float, late: float, competitors: Callable[[Satellite], set[str]],
                 start: Callable[[Claim], None], stand_down: Callable[[Claim], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.late = late
        self._competitors = competitors
        self._start = start
        self._stand_down = stand_down
        self._clock = clock
        self._groups: list[Group] = []
        self._order = 0
        self.decided = 0  #: groups decided (with at least one competitor)
        self.stood_down = 0  #: claims that lost
        self.alone = 0  #: claims started at once (no competitor online)

    def claim(self, claim: Claim) -> None:
        now = self._clock()
        claim.at = now
        self._order += 1
        claim.order = self._order
        self._groups = [g for g in self._groups if g.winner is None or now - g.first_at <= self.late]
        rivals = self._competitors(claim.sat)
        group = next((g for g in self._groups
                      if claim.sat.id in g.expected or any(c.sat.id in rivals for c in g.claims)), None)
        if group is not None and group.winner is not None:
            if group.winner.sat is not claim.sat and not group.claimed(claim.sat.id):
                group.claims.append(claim)
                self._lose(claim)
                return
            group = None  # the winner's own later wake: a new utterance
        if group is None:
            if not rivals:
                self.alone += 1
                self._start(claim)
                return
            group = Group(first_at=now, expected={claim.sat.id, *rivals})
            self._groups.append(group)
            group.timer = asyncio.get_running_loop().call_later(self.window, self._decide, group)
        elif group.claimed(claim.sat.id):
            self._lose(claim)  # a second wake of the same satellite in one window: the first counts
            return
        group.claims.append(claim)
        group.expected |= rivals | {claim.sat.id}
        if all(group.claimed(sat_id) for sat_id in group.expected):
            self._decide(group)  # everyone who could wake did: no need to wait out the window

    def _decide(self, group: Group) -> None:
        if group.winner is not None:
            return
        if group.timer is not None:
            group.timer.cancel()
            group.timer = None
        winner = best(group.claims)
        group.winner = winner
        self.decided += 1
        self._start(winner)
        for claim in group.claims:
            if claim is not winner:
                self._lose(claim)

    def _lose(self, claim: Claim) -> None:
        self.stood_down += 1
        self._stand_down(claim)

    def pending(self, sat: Satellite) -> bool:
        """Whether the satellite has a claim waiting for its group's decision."""
        return any(g.winner is None and g.claimed(sat.id) for g in self._groups)

    def close(self) -> None:
        for group in self._groups:
            if group.timer is not None:
                group.timer.cancel()
        self._groups = []


class WakeRouter:
    """Where a wake goes: a wake word (the satellite's own or the bridge's) through arbitration,
    anything else (a button, a Hermes client's startListening) straight to its session."""

    def __init__(self, satellites: Mapping[str, Satellite], settings: Settings, is_muted: Callable[[str], bool],
                 stand_down: Callable[[Satellite, str | None], None]) -> None:
        self._satellites = satellites
        self._settings = settings
        self._is_muted = is_muted
        self._stand_down = stand_down  #: tells a Hearth satellite that streams per wake it lost
        self.arbiter = Arbiter(settings.arbitration.window, settings.arbitration.late, self.competitors,
                               self._won, self._lost)

    def wake(self, sat: Satellite, wake_word: str | None, source: SessionSource, session_id: str | None = None,
             stream_id: int | None = None, wake_probability: float | None = None,
             speech_db: float | None = None) -> None:
        arbitrated = source in (SessionSource.SATELLITE, SessionSource.BRIDGE)
        if arbitrated and sat.held is not None:
            return  # a second wake while its first one is being decided: the first one counts
        if not arbitrated or sat.session is not None or sat.pending_start is not None:
            sat.request_session(source, wake_word, session_id=session_id, stream_id=stream_id)
            return
        sat.hold()  # from here on its audio waits for the decision
        self.arbiter.claim(Claim(sat, source, wake_word, session_id or uuid.uuid4().hex, stream_id,
                                 wake_probability, speech_db))

    def heard(self, sat: Satellite, probability: float | None, speech_db: float | None) -> None:
        """The bridge heard the wake word on an always-streaming satellite."""
        self.wake(sat, sat.wake_word, SessionSource.BRIDGE, wake_probability=probability, speech_db=speech_db)

    def competitors(self, sat: Satellite) -> set[str]:
        """The online satellites whose wakes compete with this one's: the same area, or
        neighbours in the configuration (either way round)."""
        area = sat.area
        neighbours = self._settings.satellite(sat.id).neighbours
        rivals: set[str] = set()
        for other in self._satellites.values():
            if other is sat or not other.online:
                continue
            if ((area is not None and other.area == area) or other.id in neighbours
                    or sat.id in self._settings.satellite(other.id).neighbours):
                rivals.add(other.id)
        return rivals

    def _won(self, claim: Claim) -> None:
        sat = claim.sat
        if self._satellites.get(sat.id) is not sat or self._is_muted(sat.id):
            sat.release(keep=False)
            return
        sat.request_session(claim.source, claim.wake_word, session_id=claim.session_id, stream_id=claim.stream_id)
        sat.release(keep=True)

    def _lost(self, claim: Claim) -> None:
        """A loser: its audio is dropped; a Hearth satellite streaming per wake is told to stand
        down. Nothing else is published (no wake, no Hermes hotword detection: nothing beeps)."""
        sat = claim.sat
        sat.release(keep=False, stream_id=claim.stream_id)
        sat.counters["stood_down"] += 1
        _LOGGER.debug("Satellite %s stands down (another satellite heard the wake word better)", sat.id)
        if sat.protocol is SatelliteProtocol.HEARTH and claim.source is SessionSource.SATELLITE:
            self._stand_down(sat, claim.session_id)

    def stats(self) -> JsonObject:
        return {"decided": self.arbiter.decided, "stood_down": self.arbiter.stood_down, "alone": self.arbiter.alone}

    def close(self) -> None:
        self.arbiter.close()
