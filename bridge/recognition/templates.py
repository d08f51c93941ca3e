"""Template selection: which of Home Assistant's intent templates (and the home's own
sentences) go into the grammar, and within which context.

The intents in :data:`SUPPORTED_INTENTS` from home-assistant-intents plus the vocabulary's own
``sentences``. A template block whose implied domain/device class (its ``requires_context`` or
``slots``) matches no entity of the home is *dead*; a template whose every expansion needs an
empty list (no names of that domain, a wildcard list) is dead too. Templates that sound like
commands they are not (:data:`CONFUSABLE_PHRASES`), start with a name, or act without a verb
(:data:`STRICT_ON_OFF`) are left out. Each kept template is expanded (:mod:`.expansion`) into one
NFA; dead and left-out templates are counted per reason. hassil reads its template data from
the home-assistant-intents package (:func:`load_intents`); nothing else is read.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field

from hassil import Intents
from hassil.expression import Sentence
from hassil.intents import IntentData
from hassil.parse_expression import parse_sentence

from .automaton import Nfa
from .expansion import BlockContext, Home, TemplateBuilder
from .vocabulary import Vocabulary


SUPPORTED_INTENTS: frozenset[str] = frozenset({
    "HassTurnOn", "HassTurnOff", "HassLightSet", "HassGetState",
    "HassClimateGetTemperature", "HassClimateSetTemperature", "HassSetPosition",
    "HassMediaPause", "HassMediaUnpause", "HassMediaNext", "HassMediaPrevious",
    "HassSetVolume", "HassMediaPlayerMute", "HassMediaPlayerUnmute",
    "HassStartTimer", "HassCancelTimer", "HassCancelAllTimers", "HassTimerStatus",
    "HassPauseTimer", "HassUnpauseTimer", "HassIncreaseTimer", "HassDecreaseTimer",
    "HassGetCurrentTime", "HassGetCurrentDate", "HassNevermind", "HassFanSetSpeed",
    "HassVacuumStart", "HassVacuumReturnToBase", "HassLawnMowerStartMowing", "HassLawnMowerDock",
})
"""Intents compiled into the grammar; others (wildcard-heavy: shopping lists, broadcast,
media search, weather by zone) are counted as ``intent_not_supported``."""

_ON_OFF = ("light", "switch", "fan", "input_boolean", "media_player", "cover", "valve", "lock",
           "scene", "script", "climate", "humidifier", "automation")
INTENT_DOMAINS: dict[str, tuple[str, ...]] = {
    "HassTurnOn": _ON_OFF,
    "HassTurnOff": _ON_OFF,
    "HassLightSet": ("light",),
    "HassClimateGetTemperature": ("climate",),
    "HassClimateSetTemperature": ("climate",),
    "HassSetPosition": ("cover", "valve"),
    "HassMediaPause": ("media_player",),
    "HassMediaUnpause": ("media_player",),
    "HassMediaNext": ("media_player",),
    "HassMediaPrevious": ("media_player",),
    "HassSetVolume": ("media_player",),
    "HassMediaPlayerMute": ("media_player",),
    "HassMediaPlayerUnmute": ("media_player",),
    "HassFanSetSpeed": ("fan",),
    "HassVacuumStart": ("vacuum",),
    "HassVacuumReturnToBase": ("vacuum",),
    "HassLawnMowerStartMowing": ("lawn_mower",),
    "HassLawnMowerDock": ("lawn_mower",),
}
"""Domains an intent acts on when only an area or floor was named."""

CUSTOM_INTENT = "HearthSentence"
"""Intent name for the vocabulary's own ``sentences`` (slot ``sentence``: the sentence)."""
CUSTOM_METADATA = "hearth_custom_sentence"

SKIP_PREFIXES: tuple[str, ...] = ("please", "can you", "could you", "would you")
"""Politeness any command may start with (Home Assistant's English skip words, which hassil
ignores when it matches the text)."""
SKIP_SUFFIXES: tuple[str, ...] = ("please",)
"""...and end with. Both only when the vocabulary asks for them (``"polite": true``): measured,
they cost about 5 % of plain commands (docs/recognition.md)."""
STRICT_ON_OFF = True
"""Require the verb in templates of intents that act (on/off, brightness, colour, position,
temperature, fan speed, volume): "[<turn>] <name> on" becomes "<turn> <name> on" and verbless
forms ("<area> <light> off", "<area> [to] {color}") are dropped. Measured: "turn off the reading
lamp" was otherwise decoded as "the office the reading lamp on" or "the office green" — wrong
actions, which are worse than "I did not understand"."""
_STRICT_INTENTS = frozenset({"HassTurnOn", "HassTurnOff", "HassLightSet", "HassSetPosition",
                             "HassClimateSetTemperature", "HassFanSetSpeed", "HassSetVolume"})
_NAME_STARTS = ("<area", "<name", "<floor", "{name", "{area", "[<area", "[<name")
"""Templates of any intent that start with a name or area ("<area> play the last again") are
dropped too: "turn off the …" decoded as "the office …" otherwise."""
_VERBS = ("<turn>", "activate", "<set>", "<numeric_value_set>", "set", "<open>", "<close>")
_VERBLESS_STARTS = ("<area", "<name", "<floor", "<light", "[<all>]", "[(<all>|<the>)]", "[all]",
                    "[<the>]", "{", "<the>")


CONFUSABLE_PHRASES: tuple[tuple[str, str], ...] = (
    ("(do you know|tell me|", "(tell me|"),
    ("(do you know|tell me)", "tell me"),
    ("[do you know] ", ""),
)
"""Template alternatives removed because they sound like commands: "do you know" (a
HassGetState opening) is what "turn on the" decodes as with the en-us model (measured)."""


def strict_template(text: str) -> str | None:
    """The template with a leading optional verb made required, or None if it has no verb."""
    text = text.strip()
    if text.startswith("["):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "["
            depth -= ch == "]"
            if depth == 0:
                group = text[1:i]
                if any(verb in group for verb in _VERBS):
                    text = f"({group}){text[i + 1:]}"
                break
    if text.startswith(_VERBLESS_STARTS):
        return None
    return text


def _as_set(value: object) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(str(v) for v in value)
    return None


def _block_context(data: IntentData, intent_name: str | None = None) -> BlockContext:
    req = data.requires_context or {}
    exc = data.excludes_context or {}
    slots = data.slots or {}
    name_domains = _as_set(req.get("domain"))
    name_classes = _as_set(req.get("device_class"))
    implied_domains = name_domains or _as_set(slots.get("domain"))
    implied_classes = name_classes or _as_set(slots.get("device_class"))
    if implied_domains is None and intent_name in INTENT_DOMAINS and intent_name not in (
            "HassTurnOn", "HassTurnOff"):
        implied_domains = frozenset(INTENT_DOMAINS[intent_name])  # e.g. media intents
    return BlockContext(data, name_domains, name_classes,
                         _as_set(exc.get("domain")) or frozenset(),
                         implied_domains, implied_classes)


def _block_dead_reason(ctx: BlockContext, home: Home) -> str | None:
    if ctx.implied_domains is None and ctx.implied_classes is None:
        return None
    if home.entities(ctx.implied_domains, ctx.implied_classes):
        return None
    return (f"no_entity:{','.join(sorted(ctx.implied_domains or ['*']))}"
            f"/{','.join(sorted(ctx.implied_classes or ['*']))}")


@functools.cache
def load_intents(language: str = "en") -> Intents:
    """home-assistant-intents' templates for `language`, parsed by hassil (cached)."""
    import home_assistant_intents

    data = home_assistant_intents.get_intents(language)
    if data is None:
        raise ValueError(f"home-assistant-intents has no templates for {language!r}")
    return Intents.from_dict(data)


def custom_sentence_data(sentence: str) -> IntentData:
    """The hassil IntentData used for one of the vocabulary's own sentences."""
    return IntentData(sentence_texts=[sentence], slots={"sentence": sentence},
                      metadata={CUSTOM_METADATA: True})


@dataclass
class TemplateSet:
    """The selected templates as one character-piece NFA (every template from `root` to a final
    state), the builder holding their lists, and what was used and skipped."""

    nfa: Nfa
    root: int
    builder: TemplateBuilder
    used: int = 0
    used_by_intent: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    needs_area: int = 0


def select_templates(vocab: Vocabulary, intents: Intents, home: Home) -> TemplateSet:
    """Expand every template the home can mean into one NFA, counting the others per reason."""
    builder = TemplateBuilder(intents, home)
    nfa = Nfa()
    root = nfa.new()
    used = 0
    used_by_intent: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    needs_area = 0

    def add_sentence(sentence: Sentence, ctx: BlockContext) -> str | None:
        builder.dead_reasons.clear()
        start = nfa.new()
        end = builder.build(nfa, sentence.expression, start, ctx)
        if end is None:
            return builder.dead_reasons[0] if builder.dead_reasons else "empty"
        nfa.add(root, None, start)
        nfa.finals.add(end)
        return None

    for intent_name, intent in intents.intents.items():
        for data in intent.data:
            if intent_name not in SUPPORTED_INTENTS:
                skipped["intent_not_supported"] += len(data.sentence_texts)
                continue
            ctx = _block_context(data, intent_name)
            reason = _block_dead_reason(ctx, home)
            if reason is not None:
                skipped[reason] += len(data.sentence_texts)
                continue
            req_area = isinstance((data.requires_context or {}).get("area"), dict)
            for text in data.sentence_texts:
                for phrase, replacement in CONFUSABLE_PHRASES:
                    text = text.replace(phrase, replacement)
                if STRICT_ON_OFF and text.lstrip().startswith(_NAME_STARTS):
                    skipped["starts_with_name"] += 1
                    continue
                if STRICT_ON_OFF and intent_name in _STRICT_INTENTS:
                    strict = strict_template(text)
                    if strict is None:
                        skipped["verbless_action"] += 1
                        continue
                    text = strict
                sentence = parse_sentence(text, keep_text=True)
                reason = add_sentence(sentence, ctx)
                if reason is not None:
                    skipped[reason] += 1
                else:
                    used += 1
                    used_by_intent[intent_name] += 1
                    needs_area += int(req_area)

    for text in vocab.sentences:
        data = custom_sentence_data(text)
        try:
            sentence = parse_sentence(text, keep_text=True)
        except Exception:  # noqa: BLE001 - a user's template that hassil cannot parse
            skipped["custom_sentence_unparsable"] += 1
            continue
        reason = add_sentence(sentence, _block_context(data))
        if reason is not None:
            skipped[reason] += 1
        else:
            used += 1
            used_by_intent[CUSTOM_INTENT] += 1

    return TemplateSet(nfa, root, builder, used, used_by_intent, skipped, needs_area)
