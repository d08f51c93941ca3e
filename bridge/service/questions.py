"""Saying a question: a meaning (an intent in its wire form) as a command sentence, and the
question the satellite asks about one, two or three of them. Pure: no I/O, no state.

- :func:`command_text` is what the intent does, as a sentence Home Assistant's conversation agent
  understands ("turn on the kitchen light", "unlock the front door", "set the kitchen light to
  50 percent", "turn on the lamp in the bedroom" for one of several lamps): it is spoken in the
  question and, once the answer is yes, it is the command Home Assistant acts on.
- :func:`question_text` says the question: "Turn on the kitchen light?" for one meaning, "Turn on
  the kitchen light or the kitchen lamp?" for meanings that differ in one place, and (:func:`which_text`)
  "Turn on the lamp: the one in the bedroom or the one in the office?" for a name that fits
  several entities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..recognition.vocabulary import Vocabulary

type IntentJson = Mapping[str, object]


def _slots(intent: IntentJson) -> Mapping[str, Mapping[str, object]]:
    slots = intent.get("slots")
    if not isinstance(slots, Mapping):
        return {}
    return {k: v for k, v in slots.items() if isinstance(k, str) and isinstance(v, Mapping)}


def entity_ids(intent: IntentJson) -> tuple[str, ...]:
    """The entities the intent's name resolves to (none for an area-wide action)."""
    ids = _slots(intent).get("name", {}).get("entity_ids")
    return tuple(e for e in ids if isinstance(e, str)) if isinstance(ids, (list, tuple)) else ()


def _area_name(vocab: Vocabulary | None, area_id: object) -> str | None:
    if vocab is None or not isinstance(area_id, str):
        return None
    area = vocab.area_by_id(area_id)
    return area.name.lower() if area is not None else None


def entity_area(vocab: Vocabulary | None, entity_id: str) -> str | None:
    """The name of the area an entity stands in (lower case), or None."""
    if vocab is None:
        return None
    for entity in vocab.entities:
        if entity.id == entity_id:
            return _area_name(vocab, entity.area)
    return None


def _word(slot: Mapping[str, object] | None) -> str | None:
    """A slot as it is said: its value's text when it is a name, else what was heard."""
    if slot is None:
        return None
    value, text = slot.get("value"), slot.get("text")
    if isinstance(value, str) and value and value != "all":
        return value.lower()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}"
    return text.lower() if isinstance(text, str) and text else None


def target(intent: IntentJson, vocab: Vocabulary | None, with_area: bool = False) -> str | None:
    """What the intent acts on: "the kitchen light", "the lights in the kitchen", "the lamp in the
    bedroom" (`with_area`: the named entity's own area, to tell it from others of its name)."""
    slots = _slots(intent)
    name = _word(slots.get("name"))
    area = _word(slots.get("area"))
    if slots.get("area") is not None:
        area = _area_name(vocab, slots["area"].get("value")) or area
    floor = _word(slots.get("floor"))
    if name is not None:
        ids = entity_ids(intent)
        if with_area and len(ids) == 1:
            area = entity_area(vocab, ids[0]) or area
        return f"the {name}" + (f" in the {area}" if area else "")
    domain = _word(slots.get("domain"))
    what = f"the {domain}s" if domain and not domain.endswith("s") else f"the {domain}" if domain else "everything"
    if area:
        return f"{what} in the {area}"
    if floor:
        return f"{what} on the {floor}"
    return None


def _domains(intent: IntentJson) -> set[str]:
    return {e.split(".", 1)[0] for e in entity_ids(intent)}


def action(intent: IntentJson) -> str | None:
    """The verb of the intent: "turn on", "unlock", "open", "set", ...; None for one not phrased."""
    name = intent.get("name")
    domains = _domains(intent)
    slots = _slots(intent)
    device_class = _word(slots.get("device_class"))
    opens = "cover" in domains or device_class in ("garage", "gate", "door", "garage_door", "blind", "curtain")
    if name == "HassTurnOn":
        return "lock" if "lock" in domains else "open" if opens else "turn on"
    if name == "HassTurnOff":
        return "unlock" if "lock" in domains else "close" if opens else "turn off"
    if name in ("HassLightSet", "HassSetPosition", "HassClimateSetTemperature"):
        return "set"
    return None


def command_text(intent: IntentJson, vocab: Vocabulary | None, with_area: bool = False) -> str | None:
    """The intent as a command sentence, or None when it cannot be phrased."""
    verb, what = action(intent), target(intent, vocab, with_area)
    slots = _slots(intent)
    if verb is None:
        return None
    if intent.get("name") == "HassClimateSetTemperature":
        degrees = _word(slots.get("temperature"))
        if degrees is None:
            return None
        area = _area_name(vocab, slots.get("area", {}).get("value"))
        return f"set the temperature{f' in the {area}' if area else ''} to {degrees} degrees"
    if what is None:
        return None
    if verb != "set":
        return f"{verb} {what}"
    for key, unit in (("brightness", " percent"), ("position", " percent"), ("color", "")):
        value = _word(slots.get(key))
        if value is not None:
            return f"set {what} to {value}{unit}"
    return None


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def question_text(sentences: Sequence[str]) -> str:
    """The question about one to three meanings, each already a command sentence: "Turn on the
    kitchen light?", "Turn on the kitchen light or the kitchen lamp?"."""
    if len(sentences) == 1:
        return sentences[0][0].upper() + sentences[0][1:] + "?"
    split = [s.split() for s in sentences]
    common = 0
    while all(len(words) > common + 1 and words[common] == split[0][common] for words in split):
        common += 1
    # back off to the last "the" so that whole names are offered: "turn on | the kitchen light"
    prefix = split[0][:common]
    if "the" in prefix:
        common = len(prefix) - prefix[::-1].index("the") - 1
    head = " ".join(split[0][:common])
    rests = [" ".join(words[common:]) for words in split]
    text = (head + " " if head else "") + _join(rests)
    return text[0].upper() + text[1:] + "?"


def which_text(command: str, areas: Sequence[str]) -> str:
    """Which of several entities of one name: "Turn on the lamp: the one in the bedroom or the
    one in the office?"."""
    return command[0].upper() + command[1:] + ": " + _join([f"the one in the {area}" for area in areas]) + "?"
