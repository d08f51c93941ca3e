"""Whether to act on what was heard: one function, one frozen settings object, three outcomes.

:func:`decide` is the only place that decides. It takes a :class:`Hearing` (what the grammar
heard, how sure the decoder was, what the intent resolved to, the nearest rival meanings and, when
it ran, what the open-vocabulary ear heard) and returns a :class:`Verdict`: act, ask, or refuse,
always with a reason code and a sentence saying why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from .intents import refusal

type IntentJson = Mapping[str, object]
"""An intent in its wire form (:meth:`bridge.engines.IntentResult.to_json`)."""


class Outcome(StrEnum):
    """What to do with one utterance."""

    ACT = "act"
    ASK = "ask"
    REFUSE = "refuse"


type QuestionKind = Literal["did_you_mean", "which", "confirm"]
"""``did_you_mean``: "Turn on the kitchen light?" (one choice) or "The kitchen light or the kitchen
lamp?" (two or three that differ in one slot); ``which``: a name that fits several entities
("Which one: the kitchen light or the bedroom light?"); ``confirm``: a sensitive or house-wide
action heard clearly, asked before acting whatever the confidence."""


@dataclass(frozen=True)
class VerdictSettings:
    """The thresholds of the verdict, in one place."""

    sensitive_min: float = 0.6
    """Decoder confidence below which a sensitive action (unlock, open a garage door, disarm) is
    never acted on without asking."""
    broad_min: float = 0.55
    """Decoder confidence below which an action on unnamed devices is never acted on without asking."""


@dataclass(frozen=True)
class Hearing:
    """Everything the verdict is decided from."""

    text: str
    confidence: float
    intent: IntentJson | None
    rejected_reason: str | None = None
    """The decoder's own rejection code (e.g. ``score``), or None."""
    open_text: str | None = None
    """What the open-vocabulary ear heard, or None when it did not run."""
    alternatives: tuple[IntentJson, ...] = ()
    """Rival meanings, nearest first (the close-call review's)."""


@dataclass(frozen=True)
class Verdict:
    """The decision on one utterance."""

    outcome: Outcome
    reason: str
    """A code: ``sure`` for act; otherwise e.g. ``close_call``, ``number_unsure``, ``sensitive``,
    ``broad_unsure``, ``open_ear_disagrees``, ``ambiguous_name``, ``score``, ``no_intent``."""
    why: str
    """One sentence for logs and errors (never written to disk with the words in it)."""
    choices: tuple[IntentJson, ...] = ()
    """For ASK: the meanings to offer, best first (one for a yes/no question, two or three for
    "A or B?")."""
    question: QuestionKind | None = None


MAX_CHOICES = 3
"""A question offers at most this many meanings; a name that fits more entities is refused."""


def one_per_entity(intent: IntentJson) -> tuple[IntentJson, ...]:
    """A named target that fits several entities, as one meaning per entity (the choices of a
    "which" question, in the order the intent lists them); () when the name fits at most one."""
    slots = intent.get("slots")
    name = slots.get("name") if isinstance(slots, Mapping) else None
    if not isinstance(name, Mapping) or name.get("value") == "all":
        return ()
    ids = name.get("entity_ids")
    if not isinstance(ids, (list, tuple)) or len(ids) < 2:
        return ()
    assert isinstance(slots, Mapping)
    return tuple({**intent, "slots": {**slots, "name": {**name, "entity_ids": [entity_id]}}} for entity_id in ids)


def decide(hearing: Hearing, settings: VerdictSettings = VerdictSettings()) -> Verdict:
    """Act, ask or refuse, with the reason.

    Provisional body: the rules of :func:`.intents.refusal`; an unsure hearing of a real intent is
    asked about instead of refused."""
    if hearing.intent is None:
        return Verdict(Outcome.REFUSE, hearing.rejected_reason or "no_intent",
                       "nothing that the home can do was heard")
    refused = refusal(hearing.intent, hearing.confidence, settings.sensitive_min, settings.broad_min)
    if refused is None:
        split = one_per_entity(hearing.intent)
        if len(split) > MAX_CHOICES:
            return Verdict(Outcome.REFUSE, "ambiguous_name", f"the name fits {len(split)} entities")
        if split:
            return Verdict(Outcome.ASK, "ambiguous_name", f"the name fits {len(split)} entities",
                           choices=split, question="which")
        return Verdict(Outcome.ACT, "sure", "heard clearly")
    code, why = refused
    return Verdict(Outcome.ASK, code, why, choices=(hearing.intent, *hearing.alternatives[:2]),
                   question="did_you_mean")
