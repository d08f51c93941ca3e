"""Whether to act on what was heard: one function, one frozen settings object, three outcomes.

:func:`decide` is the only place that decides. It takes a :class:`Hearing` (what the grammar
heard, how sure the decoder was, what the intent resolved to, what the close-call review found,
the nearest rival meanings and, when it ran, how far the open-vocabulary ear agreed) and returns a
:class:`Verdict`: act, ask, or refuse, always with a reason code and a sentence saying why. The
rules, in order, are the table in docs/recognition.md ("The verdict").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from .intents import HARMLESS_INTENTS

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

OPPOSITES: Mapping[str, str] = {
    "HassTurnOn": "HassTurnOff", "HassTurnOff": "HassTurnOn",
    "HassMediaPause": "HassMediaUnpause", "HassMediaUnpause": "HassMediaPause",
    "HassPauseTimer": "HassUnpauseTimer", "HassUnpauseTimer": "HassPauseTimer",
}
"""Intents that differ from another in one word of opposite meaning (on/off, open/close,
lock/unlock: Home Assistant's HassTurnOn/HassTurnOff; pause/resume)."""

ASKED_UNSURE = frozenset({"close_call", "number_unsure"})
"""Close-call review codes (:mod:`.closecall`) that are asked about: a real command between two
readings. The others (``unlikely_value``, ``question_unsure``) are refused: chatter ends there."""


@dataclass(frozen=True)
class VerdictSettings:
    """The thresholds of the verdict, in one place (the close-call review reads its own here too).

    The config keys ``recognition.sensitive_confidence`` and ``recognition.broad_confidence`` map
    onto :attr:`sensitive_min` and :attr:`broad_min`."""

    sensitive_min: float = 0.6
    """Decoder confidence below which a sensitive action (unlock, open a garage door, disarm) is
    asked about as unsure (``sensitive_unsure``) rather than confirmed."""
    broad_min: float = 0.55
    """Decoder confidence below which an action on unnamed devices is asked about, never acted on.

    Chatter that the grammar bends into a command mostly becomes an action on a whole area, floor
    or the home ("i think we should order pizza tonight" -> "light in the room up"): those
    templates are short and generic, and no name has to fit. Measured offline (docs/recognition.md,
    "Broad actions"): 17 of 32 non-commands that were acted on, and 5 of 29 wrong meanings, had
    confidence below 0.55, against 5 of 917 right commands."""
    house_wide_min: float = 0.8
    """Decoder confidence an action on a whole floor or the whole home needs to be acted on
    without asking (``confirm``)."""
    opposite_min: float = 0.55
    """Decoder confidence below which an intent with an opposite (:data:`OPPOSITES`) is asked
    about: "off" heard as "on" is the worst kind of wrong action."""
    confirm_sensitive: bool = True
    """Ask before every sensitive action, however clearly heard."""
    harmless_min: float = 0.4
    """Decoder confidence enough to act on a harmless intent (never mind, the time, the date)
    that the decoder's score rejected: a false accept costs only a spoken answer."""
    open_min: float = 0.25
    """Agreement of the open-vocabulary ear on the meaning's words (:mod:`.openear`, 0-1) below
    which the grammar's hearing is refused as chatter bent into a command
    (``open_ear_disagrees``). Below every right command of the tuning set (lowest 0.34): the open
    ear mangles names too often for the words alone to tell chatter from commands."""
    open_fit_gap_max: float = 0.01
    """How much better the open ear's sentence may fit the audio than the grammar's before the
    hearing is refused as chatter (``open_ear_disagrees``): the two paths' scores over the same
    frames, up to where the grammar's last word begins, per frame of the grammar's words
    (pocketsphinx log units / 1000; ``bridge.stt.worker.fit_difference``). A command fits its
    grammar sentence better than the open ear's mangled guess; chatter the grammar bent fits the
    open ear's near word-for-word sentence better. Tuning set (300 samples): above 0.01 were 6
    of 153 right commands, 8 of 30 wrong meanings and all 4 non-commands the rest would have
    acted on."""
    open_fit_gap_ask: float = 0.008
    """... and above this, asked about (``open_ear_unsure``): 5 more right commands and 4 more
    wrong meanings of that set."""
    # the close-call review's (bridge.recognition.closecall), chosen on tuning voices only
    margin_per_frame: float = 0.0025
    """A reading of another meaning within this much of the best one, per frame of the slot's
    words (pocketsphinx log units / 1000), is a close call."""
    number_min_confidence: float = 0.58
    """Decoder confidence a command with a number needs ... unless every other reading is at
    least :attr:`number_clear_margin` per frame behind."""
    number_clear_margin: float = 0.008
    """A number this far ahead of its closest rival is clearly heard whatever the confidence."""
    unlikely_min_confidence: float = 0.7
    """Decoder confidence a value nobody asks for (a 93-hour timer) needs."""
    max_timer_seconds: int = 4 * 3600
    """Timers longer than this are unlikely."""
    question_min_confidence: float = 0.55
    """Decoder confidence a question about the home needs."""


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
    unsure: str | None = None
    """The close-call review's code (``close_call``, ``number_unsure``, ``unlikely_value``,
    ``question_unsure``), or None; an intent's own ``unsure`` key counts too."""
    open_agreement: float | None = None
    """How far the open ear heard the words that carry the meaning (0-1; None: it did not run)."""
    open_fit_gap: float | None = None
    """How much better the open ear's sentence fits the audio than the grammar's, per frame of the
    whole utterance (pocketsphinx log units / 1000; negative: the grammar's fits better)."""
    open_opposite: bool = False
    """The open ear heard the opposite action word ("off" for "on") and not the grammar's."""
    open_broad_missing: bool = False
    """The grammar heard a broad word ("all", "every", "house") that the open ear did not."""
    detail: str = field(default="", compare=False)
    """The close-call review's or open ear's explanation, for the log."""


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


def _flag(intent: IntentJson, name: str) -> object:
    return intent.get(name)


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


def _slots(intent: IntentJson) -> Mapping[str, object]:
    slots = intent.get("slots")
    return slots if isinstance(slots, Mapping) else {}


def scope(intent: IntentJson) -> str | None:
    """For a broad action: ``home`` (no area or floor: "turn off all the lights"), ``floor``, or
    ``area`` (a room, said or the satellite's); None for an action on named devices."""
    if not _flag(intent, "broad"):
        return None
    slots = _slots(intent)
    if "floor" in slots:
        return "floor"
    return "area" if "area" in slots else "home"


def opposite(intent: IntentJson) -> IntentJson | None:
    """The same command with the opposite action (on ↔ off, pause ↔ resume), or None."""
    name = intent.get("name")
    other = OPPOSITES.get(name) if isinstance(name, str) else None
    return None if other is None else {**intent, "name": other}


def _meaning(intent: IntentJson) -> str:
    """What an intent does: its name and, per slot, the entities it reaches or else its value."""
    slots = {key: (slot.get("entity_ids") or slot.get("value")) if isinstance(slot, Mapping) else slot
             for key, slot in _slots(intent).items()}
    return repr((intent.get("name"), sorted((key, repr(value)) for key, value in slots.items())))


def _one_slot_apart(intent: IntentJson, other: IntentJson) -> bool:
    """The same slots, and either another action on the same targets or the same action with one
    slot's value changed."""
    mine, theirs = _slots(intent), _slots(other)
    if set(mine) != set(theirs):
        return False
    changed = sum(_meaning({"slots": {k: mine[k]}}) != _meaning({"slots": {k: theirs[k]}}) for k in mine)
    return changed == (0 if intent.get("name") != other.get("name") else 1)


def _ask(reason: str, why: str, hearing: Hearing, intent: IntentJson,
         question: QuestionKind = "did_you_mean", rivals: tuple[IntentJson, ...] = ()) -> Verdict:
    # "The kitchen light or the kitchen lamp?": a rival reading is offered only when it is the
    # same action differing in one slot; any other is a reason to ask, not a choice to offer.
    choices = [intent, *rivals, *(alt for alt in hearing.alternatives if _one_slot_apart(intent, alt))]
    unique: list[IntentJson] = []
    seen: set[str] = set()
    for choice in choices:
        key = _meaning(choice)
        if key not in seen:  # a rival reading that means the same is not another choice
            seen.add(key)
            unique.append(choice)
    return Verdict(Outcome.ASK, reason, why, choices=tuple(unique[:3]), question=question)


def decide(hearing: Hearing, settings: VerdictSettings = VerdictSettings()) -> Verdict:
    """Act, ask or refuse, with the reason (docs/recognition.md, "The verdict")."""
    s, conf, intent = settings, hearing.confidence, hearing.intent
    if intent is None:
        return Verdict(Outcome.REFUSE, hearing.rejected_reason or "no_intent",
                       "nothing that the home can do was heard")
    name = intent.get("name")
    harmless = name in HARMLESS_INTENTS
    if hearing.rejected_reason is not None:
        if harmless and hearing.rejected_reason == "score" and conf >= s.harmless_min:
            return Verdict(Outcome.ACT, "harmless", f"a harmless intent heard with confidence "
                           f"{conf:.2f} >= {s.harmless_min}")
        return Verdict(Outcome.REFUSE, hearing.rejected_reason,
                       f"the decoder rejected it ({hearing.rejected_reason}, confidence {conf:.2f})")
    if harmless:
        return Verdict(Outcome.ACT, "sure", "a harmless intent")
    if hearing.open_agreement is not None and hearing.open_agreement < s.open_min:
        return Verdict(Outcome.REFUSE, "open_ear_disagrees",
                       f"the open ear heard other words (agreement {hearing.open_agreement:.2f} "
                       f"< {s.open_min})")
    if hearing.open_fit_gap is not None and hearing.open_fit_gap > s.open_fit_gap_max:
        return Verdict(Outcome.REFUSE, "open_ear_disagrees",
                       f"the open ear's sentence fits the audio better (gap {hearing.open_fit_gap:.4f} "
                       f"> {s.open_fit_gap_max})")
    unsure = hearing.unsure or intent.get("unsure")
    if isinstance(unsure, str) and unsure:
        why = f"{unsure.replace('_', ' ')}, heard with confidence {conf:.2f}"
        if unsure not in ASKED_UNSURE:
            return Verdict(Outcome.REFUSE, unsure, why)
        return _ask(unsure, why, hearing, intent)
    if hearing.open_fit_gap is not None and hearing.open_fit_gap > s.open_fit_gap_ask:
        return _ask("open_ear_unsure", f"the open ear's sentence fits the audio nearly as well (gap "
                    f"{hearing.open_fit_gap:.4f} > {s.open_fit_gap_ask})", hearing, intent)
    flip = opposite(intent)
    if flip is not None and hearing.open_opposite:
        return _ask("opposite_heard", "the open ear heard the opposite action", hearing, intent,
                    rivals=(flip,))
    wide = scope(intent)
    if wide is not None:
        if conf < s.broad_min:
            return _ask("broad_unsure", f"on devices none of which was named, heard with "
                        f"confidence {conf:.2f} < {s.broad_min}", hearing, intent)
        if hearing.open_broad_missing:
            return _ask("broad_unheard", "the open ear did not hear the broad word", hearing, intent)
        if wide in ("home", "floor") and conf < s.house_wide_min:
            return _ask(f"{wide}_wide", f"on a whole {wide}, heard with confidence {conf:.2f} "
                        f"< {s.house_wide_min}", hearing, intent, "confirm")
    if _flag(intent, "sensitive"):
        if conf < s.sensitive_min:
            return _ask("sensitive_unsure", f"on a sensitive device, heard with confidence "
                        f"{conf:.2f} < {s.sensitive_min}", hearing, intent)
        if s.confirm_sensitive:
            return _ask("sensitive", "a sensitive action: confirmed first", hearing, intent, "confirm")
    if flip is not None and conf < s.opposite_min:
        return _ask("opposite_unsure", f"an action with an opposite, heard with confidence "
                    f"{conf:.2f} < {s.opposite_min}", hearing, intent, rivals=(flip,))
    split = one_per_entity(intent)
    if len(split) > MAX_CHOICES:
        return Verdict(Outcome.REFUSE, "ambiguous_name", f"the name fits {len(split)} entities")
    if split:
        return Verdict(Outcome.ASK, "ambiguous_name", f"the name fits {len(split)} entities",
                       choices=split, question="which")
    return Verdict(Outcome.ACT, "sure", f"heard with confidence {conf:.2f}")
