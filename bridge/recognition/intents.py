"""Text → intent with hassil over home-assistant-intents and the home's names.

Names, aliases, areas and floors become hassil slot lists; each name carries its entity's
``domain`` (and ``device_class``) as context, so templates with ``requires_context`` match as in
Home Assistant. The spoken (normalised) form of a name is added next to the written one, so
``Bedroom 2`` also matches the decoder's ``bedroom two``.

Entity resolution (``SlotValue.entity_ids``): a ``name`` resolves to the entities called that
(restricted to the matched area if one was also said); an ``area`` or ``floor`` without a name
resolves to the entities in it, restricted by the ``domain``/``device_class`` slots of the
template, or else by the domains the intent acts on (:data:`INTENT_DOMAINS`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from hassil import Intents, recognize_best
from hassil.intents import Intent, SlotList, TextSlotList

from .templates import (
    CUSTOM_INTENT,
    CUSTOM_METADATA,
    INTENT_DOMAINS,
    custom_sentence_data,
    load_intents,
)
from .text import normalize_text
from .vocabulary import Entity, Vocabulary

_LOGGER = logging.getLogger(__name__)

SENSITIVE_COVER_CLASSES = frozenset({"garage", "gate", "door"})
_READ_ONLY = frozenset({"HassClimateGetTemperature"})
"""Intents of :data:`INTENT_DOMAINS` that only ask."""

HARMLESS_INTENTS = frozenset({"HassNevermind", "HassGetCurrentTime", "HassGetCurrentDate"})
"""Intents that change nothing and reveal nothing about the home (how sure the decoder must be
to act on one: ``VerdictSettings.harmless_min``)."""


MAX_INTENT_TEXT = 300
"""Characters of text (as written, and spoken out) that intent matching takes at most.

hassil's matching time grows with the square of the text's length (1,000 characters took 1.7 s,
3,000 characters 13 s), so this bounds the work any one message can cause. The longest command a
satellite can say is about 8 s (the endpointer's `max_utterance`) at 3-4 words a second of ~6
characters: some 200 characters; a Hermes NLU query is such a command's transcript. 300 leaves room
for long names (at most 100 characters each). Measured (docs/recognition.md, "Bounded intent
matching"): real commands match in 7-60 ms; the slowest 300 characters found ("what's the " over
and over) took 1.2 s."""


def intent_text_problem(text: str, limit: int = MAX_INTENT_TEXT) -> str | None:
    """Why `text` is too long for intent matching (its written form, or the spoken form numbers
    and symbols become, over `limit` characters), or None."""
    if len(text) > limit:
        return f"text of {len(text)} characters; intents are matched in at most {limit}"
    spoken = normalize_text(text)
    if len(spoken) > limit:
        return f"text of {len(spoken)} characters when spoken out; intents are matched in at most {limit}"
    return None


@dataclass(frozen=True)
class SlotValue:
    """One slot of a recognised intent."""

    value: object
    text: str
    entity_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class IntentMatch:
    """A recognised intent; ``slots`` keyed by slot name."""

    name: str
    slots: dict[str, SlotValue]
    text: str
    confidence: float = 1.0
    sensitive: bool = False
    """True for actions that open the home (unlock, open a garage door or gate, disarm): the
    verdict (:mod:`.verdict`) confirms them first."""
    broad: bool = False
    """True for actions on devices none of which was named: a whole area, floor, the home, or
    the satellite's area ("turn off the lights", "light up"). The verdict asks about them when
    unsure, and about a whole floor or home unless heard with high confidence."""
    unsure: str | None = None
    """Set by :mod:`.closecall` when the words that carry the meaning were not heard clearly
    enough (``close_call``, ``number_unsure``, ``unlikely_value``, ``question_unsure``): the
    verdict asks about it or refuses it, never acts on it."""

    @property
    def entity_ids(self) -> tuple[str, ...]:
        """All entity ids the slots resolve to (names first, then areas/floors), no repeats."""
        out: list[str] = []
        for key in ("name", "area", "floor", *self.slots):
            slot = self.slots.get(key)
            if slot is None:
                continue
            if key in ("area", "floor") and "name" in self.slots and self.slots["name"].entity_ids:
                continue  # the area only narrowed the name down
            for entity_id in slot.entity_ids:
                if entity_id not in out:
                    out.append(entity_id)
        return tuple(out)


def _forms(text: str) -> list[str]:
    spoken = normalize_text(text)
    return [text] if spoken == text.lower() else [text, spoken]


def _broad(match: IntentMatch) -> bool:
    """An action on the home's devices without a name that resolved to an entity."""
    if match.name not in INTENT_DOMAINS or match.name in _READ_ONLY:
        return False
    name = match.slots.get("name")
    return name is None or not name.entity_ids


@dataclass
class _Lists:
    names: TextSlotList
    areas: TextSlotList
    floors: TextSlotList
    by_id: dict[str, Entity] = field(default_factory=dict)


class IntentRecognizer:
    """hassil over the same templates the grammar was built from, plus the home's names."""

    def __init__(self, vocab: Vocabulary) -> None:
        """Build slot lists for the vocabulary (and its own sentences as ``HearthSentence``)."""
        self.vocab = vocab
        base = load_intents(vocab.language)
        intents: dict[str, Intent] = dict(base.intents)
        if vocab.sentences:
            intents[CUSTOM_INTENT] = Intent(
                name=CUSTOM_INTENT,
                data=[custom_sentence_data(s) for s in vocab.sentences])
        self._intents = Intents(language=base.language, intents=intents,
                                slot_lists=base.slot_lists,
                                expansion_rules=base.expansion_rules,
                                skip_words=base.skip_words, settings=base.settings)
        name_values: list[tuple[str, str, dict[str, str]]] = []
        for entity in vocab.entities:
            context: dict[str, str] = {"domain": entity.domain}
            if entity.device_class:
                context["device_class"] = entity.device_class
            for text in (entity.name, *entity.aliases):
                for form in _forms(text):
                    name_values.append((form, entity.id, context))
        area_values = [(form, area.id) for area in vocab.areas
                       for text in (area.name, *area.aliases) for form in _forms(text)]
        floor_values = [(form, floor.id) for floor in vocab.floors
                        for text in (floor.name, *floor.aliases) for form in _forms(text)]
        self._lists = _Lists(
            names=TextSlotList.from_tuples(name_values, allow_template=False, name="name"),
            areas=TextSlotList.from_tuples(area_values, allow_template=False, name="area"),
            floors=TextSlotList.from_tuples(floor_values, allow_template=False, name="floor"),
            by_id={e.id: e for e in vocab.entities})
        self._slot_lists: dict[str, SlotList] = {"name": self._lists.names, "area": self._lists.areas,
                            "floor": self._lists.floors}

    def recognize(self, text: str, *, area_id: str | None = None) -> IntentMatch | None:
        """The intent `text` expresses, or None.

        `area_id` (optional) is the satellite's area: it lets "turn on the lights" (templates
        that need the speaker's area) match and resolve to that area's entities.
        """
        spoken = normalize_text(text)
        if not spoken:
            return None
        context: dict[str, str] | None = None
        if area_id is not None and self.vocab.area_by_id(area_id) is not None:
            context = {"area": area_id}
        try:
            # as Home Assistant's default agent: custom sentences first, then results that
            # matched an entity name ("the kitchen light" as a name beats area + domain)
            result = recognize_best(spoken, self._intents, slot_lists=self._slot_lists,
                                    intent_context=context, best_metadata_key=CUSTOM_METADATA,
                                    best_slot_name="name")
        except Exception:
            _LOGGER.exception("hassil failed on %r", spoken)
            return None
        if result is None:
            return None
        intent_name = result.intent.name
        raw = {name: (ent.value, ent.text or "") for name, ent in result.entities.items()}
        match = IntentMatch(name=intent_name, slots=self._resolve(intent_name, raw), text=spoken)
        return dataclasses.replace(match, sensitive=self._sensitive(match), broad=_broad(match))

    def _sensitive(self, match: IntentMatch) -> bool:
        """Unlock, open a garage door/gate/door, or anything on an alarm panel."""
        entities = [self._lists.by_id[e] for e in match.entity_ids if e in self._lists.by_id]
        if any(e.domain == "alarm_control_panel" for e in entities):
            return True
        if match.name == "HassTurnOff" and any(e.domain == "lock" for e in entities):
            return True  # HassTurnOff on a lock = unlock
        if match.name in ("HassTurnOn", "HassSetPosition") and any(
                e.domain == "cover" and e.device_class in SENSITIVE_COVER_CLASSES for e in entities):
            return True
        dc = match.slots.get("device_class")
        return (match.name in ("HassTurnOn", "HassSetPosition") and dc is not None
                and str(dc.value) in SENSITIVE_COVER_CLASSES)

    # resolution ------------------------------------------------------------
    def _resolve(self, intent_name: str, raw: dict[str, tuple[object, str]]
                 ) -> dict[str, SlotValue]:
        domain = raw.get("domain", (None, ""))[0]
        device_class = raw.get("device_class", (None, ""))[0]
        domains: tuple[str, ...] | None
        if isinstance(domain, str):
            domains = (domain,)
        elif isinstance(domain, list):
            domains = tuple(str(d) for d in domain)
        else:
            domains = INTENT_DOMAINS.get(intent_name)
        classes: tuple[str, ...] | None = None
        if isinstance(device_class, str):
            classes = (device_class,)
        elif isinstance(device_class, list):
            classes = tuple(str(c) for c in device_class)

        area_ids: set[str] | None = None
        area_value = raw.get("area", (None, ""))[0]
        floor_value = raw.get("floor", (None, ""))[0]
        if isinstance(area_value, str) and self.vocab.area_by_id(area_value):
            area_ids = {area_value}
        elif isinstance(floor_value, str):
            area_ids = {a.id for a in self.vocab.areas if a.floor == floor_value}

        def in_scope(entity: Entity, check_domain: bool = True) -> bool:
            if check_domain and domains is not None and entity.domain not in domains:
                return False
            return classes is None or entity.device_class in classes

        slots: dict[str, SlotValue] = {}
        name_ids: tuple[str, ...] = ()
        name_value = raw.get("name", (None, ""))[0]
        if isinstance(name_value, str) and name_value in self._lists.by_id:
            named = self._lists.by_id[name_value]
            matches = [e for e in self.vocab.entities
                       if _same_name(e, named)]
            if area_ids is not None and any(e.area in area_ids for e in matches):
                matches = [e for e in matches if e.area in area_ids]
            name_ids = tuple(e.id for e in matches)
        for key, (value, text) in raw.items():
            ids: tuple[str, ...] = ()
            if key == "name" and name_ids:
                ids = name_ids
                value = self._lists.by_id[name_ids[0]].name
            elif key in ("area", "floor") and area_ids is not None:
                ids = tuple(e.id for e in self.vocab.entities
                            if e.area in area_ids and in_scope(e))
            slots[key] = SlotValue(value=value, text=text, entity_ids=ids)
        if (isinstance(name_value, str) and name_value == "all" and area_ids is not None
                and "area" in slots):
            # "turn on the fans in the bedroom": slots name=all, domain=fan
            slots["name"] = SlotValue(value="all", text="", entity_ids=slots["area"].entity_ids)
        return slots


def _same_name(a: Entity, b: Entity) -> bool:
    names_a = {normalize_text(t) for t in (a.name, *a.aliases)}
    return normalize_text(b.name) in names_a or a.id == b.id
