"""Compile Home Assistant's intent templates and the home's names into a pocketsphinx FSG.

Pipeline (all pure; see ``docs/recognition.md`` for measurements):

1. **Select** templates: the intents in :data:`SUPPORTED_INTENTS` from home-assistant-intents plus
   the vocabulary's own ``sentences``. A template block whose implied domain/device class (its
   ``requires_context`` or ``slots``) matches no entity of the home is *dead*; a template whose
   every expansion needs an empty list (no names of that domain, a wildcard list) is dead too.
   Dead and unsupported templates are counted per reason in ``stats`` and logged once.
2. **Word graph**: each template becomes an automaton over words and *list symbols*
   (``$name|domain=light``, ``$area``, ``$range:0:100:1`` ...). hassil's template pieces join
   into words exactly as hassil reads them (``fan[s]`` → fan | fans); every word goes through
   :func:`.text.normalize_words`.
3. **Determinize and minimize** the union of all templates (subset construction, then merging
   equivalent states of the acyclic automaton), so shared prefixes *and* suffixes are built once.
4. **Expand list symbols** as shared sub-graphs: each list is itself a minimized word graph, and
   one copy of it is made per *(list, next state)* pair, entered by null transitions from every
   state that uses it. This keeps the language exact while 300 names appear once or a few times
   instead of once per template.
5. **Emit** pocketsphinx FSG text and a pronunciation dictionary for every word.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hassil import Intents
from hassil.expression import (
    Alternative,
    Expression,
    ListReference,
    Permutation,
    RuleReference,
    Sentence,
    Sequence,
    TextChunk,
)
from hassil.intents import IntentData, RangeSlotList, TextSlotList, WildcardSlotList
from hassil.parse_expression import parse_sentence

from .pronounce import Pronouncer
from .text import decimal_words, normalize_words
from .vocabulary import Entity, Vocabulary

_LOGGER = logging.getLogger(__name__)

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


WEIGHTING = "uniform"
"""FSG transition probabilities: "uniform" = 1/out-degree of the state (a path's probability
falls with the choices it makes), "flat" = 1.0 everywhere."""
LIST_WEIGHTING = "entries"
"""Inside a list (names, areas, numbers): "entries" = every entry of the list is equally likely
(an arc's share is the number of entries through it), "arcs" = each state's arcs share equally,
which made an entry that is the prefix of others ("forty" of "forty one" ... "forty nine") ten
times less likely than one that is not ("fourteen")."""

_SPACE = "\x00"  # word boundary marker inside the character-level automaton
_NT = "$"  # list symbols start with this; real words never do (normalisation strips it)


@dataclass(frozen=True)
class CompiledGrammar:
    """A compiled grammar: picklable, sent to decoder worker processes."""

    hash: str
    language: str
    fsg: str
    dictionary: dict[str, tuple[str, ...]]
    stats: dict[str, object] = field(default_factory=dict)


# --------------------------------------------------------------------------- automata


class _Nfa:
    """An epsilon-NFA over string labels (states are ints)."""

    def __init__(self) -> None:
        self.arcs: list[list[tuple[str | None, int]]] = []
        self.finals: set[int] = set()

    def new(self) -> int:
        self.arcs.append([])
        return len(self.arcs) - 1

    def add(self, src: int, label: str | None, dst: int) -> None:
        self.arcs[src].append((label, dst))


@dataclass
class _Dfa:
    """A deterministic acyclic automaton: state 0 is the start."""

    arcs: list[dict[str, int]]
    finals: set[int]

    @property
    def n_arcs(self) -> int:
        return sum(len(a) for a in self.arcs)


def _closure(nfa: _Nfa, states: Iterable[int]) -> frozenset[int]:
    seen = set(states)
    stack = list(seen)
    while stack:
        for label, dst in nfa.arcs[stack.pop()]:
            if label is None and dst not in seen:
                seen.add(dst)
                stack.append(dst)
    return frozenset(seen)


def _determinize(nfa: _Nfa, start: int) -> _Dfa:
    first = _closure(nfa, [start])
    index: dict[frozenset[int], int] = {first: 0}
    arcs: list[dict[str, int]] = [{}]
    finals: set[int] = set()
    todo = [first]
    while todo:
        subset = todo.pop()
        sid = index[subset]
        if subset & nfa.finals:
            finals.add(sid)
        moves: dict[str, set[int]] = defaultdict(set)
        for state in subset:
            for label, dst in nfa.arcs[state]:
                if label is not None:
                    moves[label].add(dst)
        for label, dsts in moves.items():
            target = _closure(nfa, dsts)
            if target not in index:
                index[target] = len(arcs)
                arcs.append({})
                todo.append(target)
            arcs[sid][label] = index[target]
    return _Dfa(arcs, finals)


def _minimize(dfa: _Dfa) -> _Dfa:
    """Minimize an acyclic DFA by merging states with equal signatures, leaves first."""
    order: list[int] = []
    seen: set[int] = set()
    stack: list[tuple[int, Iterator[int]]] = [(0, iter(dfa.arcs[0].values()))]
    seen.add(0)
    while stack:  # iterative post-order DFS
        state, children = stack[-1]
        for child in children:
            if child not in seen:
                seen.add(child)
                stack.append((child, iter(dfa.arcs[child].values())))
                break
        else:
            stack.pop()
            order.append(state)
    canon: dict[int, int] = {}
    signatures: dict[tuple[Any, ...], int] = {}
    new_arcs: list[dict[str, int]] = []
    new_finals: set[int] = set()
    for state in order:  # children before parents
        # states that cannot reach a final state are dropped
        out = {lab: canon[dst] for lab, dst in dfa.arcs[state].items() if canon.get(dst, -1) >= 0}
        final = state in dfa.finals
        if not out and not final:
            canon[state] = -1
            continue
        sig = (final, tuple(sorted(out.items())))
        if sig not in signatures:
            signatures[sig] = len(new_arcs)
            new_arcs.append(out)
            if final:
                new_finals.add(signatures[sig])
        canon[state] = signatures[sig]
    root = canon.get(0, -1)
    if root < 0:
        return _Dfa([{}], set())
    # renumber so the start is 0 (breadth first for readable output)
    remap = {root: 0}
    queue = [root]
    for state in queue:
        for dst in new_arcs[state].values():
            if dst not in remap:
                remap[dst] = len(remap)
                queue.append(dst)
    arcs: list[dict[str, int]] = [{} for _ in remap]
    for old, new in remap.items():
        arcs[new] = {lab: remap[dst] for lab, dst in new_arcs[old].items()}
    return _Dfa(arcs, {remap[s] for s in new_finals if s in remap})


# --------------------------------------------------------------------------- templates -> NFA


@dataclass
class _Home:
    """Views of the vocabulary the compiler needs."""

    vocab: Vocabulary
    pronouncer: Pronouncer
    unpronounceable: dict[str, str] = field(default_factory=dict)  # name -> word

    def entities(self, domains: frozenset[str] | None, classes: frozenset[str] | None,
                 exclude: frozenset[str] = frozenset()) -> list[Entity]:
        return [e for e in self.vocab.entities
                if (domains is None or e.domain in domains)
                and (classes is None or e.device_class in classes)
                and e.domain not in exclude]

    def spoken(self, text: str) -> list[str] | None:
        """Normalised words of a name, or None (and recorded) if a word is unpronounceable."""
        words = normalize_words(text)
        for word in words:
            if self.pronouncer.pronounce(word) is None:
                self.unpronounceable[text] = word
                return None
        return words or None


def _as_set(value: object) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(str(v) for v in value)
    return None


@dataclass(frozen=True)
class _BlockContext:
    """What one template block means for list lookups."""

    data: IntentData | None
    name_domains: frozenset[str] | None  # from requires_context (hassil filters names by it)
    name_classes: frozenset[str] | None
    name_exclude: frozenset[str]
    implied_domains: frozenset[str] | None  # from requires_context or slots
    implied_classes: frozenset[str] | None


class _TemplateBuilder:
    """Turns hassil expressions into a character-level NFA with list symbols."""

    def __init__(self, intents: Intents, home: _Home) -> None:
        self.intents = intents
        self.home = home
        self.lists: dict[str, list[list[str]]] = {}  # list symbol -> spoken values
        self.dead_reasons: list[str] = []

    # lists ---------------------------------------------------------------
    def list_symbol(self, ref: ListReference, ctx: _BlockContext) -> str | None:
        name = ref.list_name
        slot_list = None
        if ctx.data is not None:
            slot_list = ctx.data.slot_lists.get(name)
        if slot_list is None:
            slot_list = self.intents.slot_lists.get(name)
        if name in ("name", "area", "floor") and slot_list is None:
            return self._home_list(name, ctx)
        if isinstance(slot_list, WildcardSlotList) or (
                ctx.data is not None and name in ctx.data.wildcard_list_names):
            self.dead_reasons.append(f"wildcard:{name}")
            return None
        if isinstance(slot_list, RangeSlotList):
            frac = slot_list.fraction_type.value if slot_list.fraction_type else ""
            symbol = f"{_NT}range:{slot_list.start}:{slot_list.stop}:{slot_list.step}:{frac}"
            if symbol not in self.lists:
                self.lists[symbol] = [decimal_words(float(n)) for n in slot_list.get_numbers()]
            return symbol
        if isinstance(slot_list, TextSlotList):
            symbol = f"{_NT}list:{name}"
            if symbol not in self.lists:
                values: list[list[str]] = []
                for value in slot_list.values:
                    values.extend(self.expand_words(value.text_in))
                self.lists[symbol] = values
            return symbol if self.lists[symbol] else None
        self.dead_reasons.append(f"unknown_list:{name}")
        return None

    def _home_list(self, name: str, ctx: _BlockContext) -> str | None:
        home = self.home
        if name == "name":
            ents = home.entities(ctx.name_domains, ctx.name_classes, ctx.name_exclude)
            key = (f"{_NT}name|d={','.join(sorted(ctx.name_domains or ['*']))}"
                   f"|c={','.join(sorted(ctx.name_classes or ['*']))}"
                   f"|x={','.join(sorted(ctx.name_exclude))}")
            texts = [t for e in ents for t in (e.name, *e.aliases)]
        else:
            # areas / floors that hold at least one entity the block can mean
            ents = home.entities(ctx.implied_domains, ctx.implied_classes)
            area_ids = {e.area for e in ents if e.area}
            if ctx.implied_domains is None and ctx.implied_classes is None:
                area_ids = {a.id for a in home.vocab.areas}
            key = (f"{_NT}{name}|d={','.join(sorted(ctx.implied_domains or ['*']))}"
                   f"|c={','.join(sorted(ctx.implied_classes or ['*']))}")
            if name == "area":
                texts = [t for a in home.vocab.areas if a.id in area_ids
                         for t in (a.name, *a.aliases)]
            else:
                floor_ids = {a.floor for a in home.vocab.areas if a.id in area_ids and a.floor}
                texts = [t for f in home.vocab.floors if f.id in floor_ids
                         for t in (f.name, *f.aliases)]
        if key not in self.lists:
            values = [w for w in (home.spoken(t) for t in texts) if w]
            self.lists[key] = values
        if not self.lists[key]:
            what = ",".join(sorted(ctx.name_domains or ctx.implied_domains or ["any"]))
            self.dead_reasons.append(f"empty_list:{name}[{what}]")
            return None
        return key

    # expressions -------------------------------------------------------
    def build(self, nfa: _Nfa, expr: Expression, state: int, ctx: _BlockContext,
              depth: int = 0) -> int | None:
        """Add `expr` after `state`; return the end state, or None if it can never match."""
        if depth > 50:
            raise ValueError("template rule recursion too deep")
        if isinstance(expr, TextChunk):
            for piece in re.split(r"(\s+)", expr.text):
                if not piece:
                    continue
                nxt = nfa.new()
                nfa.add(state, _SPACE if piece.isspace() else piece, nxt)
                state = nxt
            return state
        if isinstance(expr, Permutation):
            alt = Alternative(items=[Sequence(items=[*p]) for p in
                                     itertools.permutations(expr.items)])
            return self.build(nfa, alt, state, ctx, depth + 1)
        if isinstance(expr, Alternative):
            end = nfa.new()
            alive = False
            for item in expr.items:
                start = nfa.new()
                nfa.add(state, None, start)
                item_end = self.build(nfa, item, start, ctx, depth + 1)
                if item_end is not None:
                    nfa.add(item_end, None, end)
                    alive = True
            if expr.is_optional:
                nfa.add(state, None, end)
                alive = True
            return end if alive else None
        if isinstance(expr, Sequence):
            current: int = state
            for item in expr.items:
                item_end = self.build(nfa, item, current, ctx, depth + 1)
                if item_end is None:
                    return None
                current = item_end
            return current
        if isinstance(expr, ListReference):
            symbol = self.list_symbol(expr, ctx)
            if symbol is None:
                return None
            a, b, c = nfa.new(), nfa.new(), nfa.new()
            nfa.add(state, _SPACE, a)
            nfa.add(a, symbol, b)
            nfa.add(b, _SPACE, c)
            return c
        if isinstance(expr, RuleReference):
            rule: Sentence | None = None
            if ctx.data is not None:
                rule = ctx.data.expansion_rules.get(expr.rule_name)
            if rule is None:
                rule = self.intents.expansion_rules.get(expr.rule_name)
            if rule is None:
                self.dead_reasons.append(f"unknown_rule:{expr.rule_name}")
                return None
            return self.build(nfa, rule.expression, state, ctx, depth + 1)
        self.dead_reasons.append(f"unsupported_expression:{type(expr).__name__}")
        return None

    def expand_words(self, expr: Expression) -> list[list[str]]:
        """All word sequences of a small list-value expression (no list references)."""
        nfa = _Nfa()
        start = nfa.new()
        ctx = _BlockContext(None, None, None, frozenset(), None, None)
        end = self.build(nfa, expr, start, ctx)
        if end is None:
            return []
        nfa.finals.add(end)
        words_nfa, wstart = _join_words(nfa, start, self.home)
        dfa = _determinize(words_nfa, wstart)
        out: list[list[str]] = []

        def walk(state: int, path: list[str]) -> None:
            if state in dfa.finals and path:
                out.append(path)
            for lab, dst in dfa.arcs[state].items():
                walk(dst, [*path, lab])

        walk(0, [])
        return out


def _join_words(cnfa: _Nfa, start: int, home: _Home) -> tuple[_Nfa, int]:
    """Character-piece NFA → word NFA (pieces between boundaries join into one word)."""
    out = _Nfa()
    index: dict[tuple[int, str], int] = {}
    final = out.new()
    out.finals.add(final)
    todo: list[tuple[int, str]] = []

    def node(state: int, partial: str) -> int:
        key = (state, partial)
        if key not in index:
            index[key] = out.new()
            todo.append(key)
        return index[key]

    def emit(src: int, partial: str, dst: int) -> None:
        words = normalize_words(partial) if partial else []
        for word in words:
            if home.pronouncer.pronounce(word) is None:
                home.unpronounceable[partial] = word
                return  # this path cannot be spoken
        state = src
        for i, word in enumerate(words):
            nxt = dst if i == len(words) - 1 else out.new()
            out.add(state, word, nxt)
            state = nxt
        if not words:
            out.add(src, None, dst)

    first = node(start, "")
    while todo:
        state, partial = todo.pop()
        src = index[(state, partial)]
        if state in cnfa.finals:
            emit(src, partial, final)
        for label, dst in cnfa.arcs[state]:
            if label is None:
                out.add(src, None, node(dst, partial))
            elif label == _SPACE:
                emit(src, partial, node(dst, ""))
            elif label.startswith(_NT):
                mid = out.new()
                emit(src, partial, mid)
                out.add(mid, label, node(dst, ""))
            else:
                out.add(src, None, node(dst, partial + label))
    return out, first


# --------------------------------------------------------------------------- compile


def _block_context(data: IntentData, intent_name: str | None = None) -> _BlockContext:
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
    return _BlockContext(data, name_domains, name_classes,
                         _as_set(exc.get("domain")) or frozenset(),
                         implied_domains, implied_classes)


def _block_dead_reason(ctx: _BlockContext, home: _Home) -> str | None:
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


def compile_grammar(vocab: Vocabulary) -> CompiledGrammar:
    """Compile the templates the home can mean plus its names into a :class:`CompiledGrammar`.

    Pure apart from reading the packaged template data and pronunciation dictionary.
    """
    started = time.process_time()
    wall = time.perf_counter()
    intents = load_intents(vocab.language)
    home = _Home(vocab, Pronouncer())
    builder = _TemplateBuilder(intents, home)
    nfa = _Nfa()
    root = nfa.new()
    used = 0
    used_by_intent: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    needs_area = 0

    def add_sentence(sentence: Sentence, ctx: _BlockContext) -> str | None:
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

    words_nfa, wstart = _join_words(nfa, root, home)
    top = _minimize(_determinize(words_nfa, wstart))
    if STRICT_ON_OFF:
        top = _minimize(_forbid_name_first(top))
    if vocab.polite:
        top = _minimize(_add_skip_words(top, SKIP_PREFIXES, SKIP_SUFFIXES))
    top_states, top_arcs = len(top.arcs), top.n_arcs

    # list symbols as minimized sub-graphs
    sub: dict[str, _Dfa] = {}
    for symbol, values in builder.lists.items():
        lnfa = _Nfa()
        lstart = lnfa.new()
        for words in values:
            state = lstart
            for word in words:
                nxt = lnfa.new()
                lnfa.add(state, word, nxt)
                state = nxt
            lnfa.finals.add(state)
        sub[symbol] = _minimize(_determinize(lnfa, lstart))

    fsg, dictionary, size = _emit(top, sub, home)
    spoken = {w for token in dictionary for w in token.split(JOIN)}
    unpronounceable = sorted(home.unpronounceable)
    reasons = dict(sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0])))
    stats: dict[str, object] = {
        "states": size["states"],
        "transitions": size["transitions"],
        "null_transitions": size["null_transitions"],
        "words": len(spoken),
        "tokens": len(dictionary),
        "states_before_merging": size["states_before_merging"],
        "top_states": top_states,
        "top_transitions": top_arcs,
        "list_copies": size["list_copies"],
        "templates_used": used,
        "templates_used_by_intent": dict(sorted(used_by_intent.items())),
        "templates_needing_satellite_area": needs_area,
        "templates_skipped": sum(skipped.values()),
        "templates_skipped_reasons": reasons,
        "unpronounceable": unpronounceable,
        "pronunciation_methods": dict(Counter(home.pronouncer.methods[w] for w in spoken)),
        "invented_pronunciations": {w: m for w, m in sorted(home.pronouncer.methods.items())
                                    if m != "dictionary" and w in spoken},
        "compile_seconds": round(time.perf_counter() - wall, 3),
        "compile_cpu_seconds": round(time.process_time() - started, 3),
    }
    _LOGGER.info(
        "Grammar %s: %d templates used, %d skipped (%s); %d states, %d transitions, %d words; "
        "unpronounceable names: %s; %.2f s",
        vocab.hash(), used, stats["templates_skipped"],
        ", ".join(f"{k}={v}" for k, v in reasons.items()) or "none",
        stats["states"], stats["transitions"], stats["words"],
        ", ".join(unpronounceable) or "none", stats["compile_seconds"])
    return CompiledGrammar(hash=vocab.hash(), language=vocab.language, fsg=fsg,
                           dictionary=dictionary, stats=stats)


_Arc = tuple[int, int, str | None, float]


_ARTICLES = frozenset({"the", "my", "our"})


def _add_skip_words(dfa: _Dfa, prefixes: tuple[str, ...], suffixes: tuple[str, ...]) -> _Dfa:
    """Let every sentence start with one of `prefixes` and end with one of `suffixes`.

    The prefix phrases lead from a new start state into the old one (whose arcs the new start
    also has); the suffix phrases lead from every final state into one new final state. A phrase
    whose first word a state already continues with is left out there (the result stays
    deterministic, and the template's own reading wins).
    """
    arcs: list[dict[str, int]] = [{} for _ in range(len(dfa.arcs) + 1)]  # 0: the new start; old i -> i + 1
    for i, out in enumerate(dfa.arcs):
        arcs[i + 1] = {label: dst + 1 for label, dst in out.items()}
    finals = {f + 1 for f in dfa.finals}
    arcs[0] = dict(arcs[1])

    def add_phrases(sources: Iterable[int], phrases: tuple[str, ...], target: int) -> None:
        shared: dict[tuple[str, ...], int] = {}  # word prefix of a phrase -> its state
        for src in sources:
            for phrase in phrases:
                words = phrase.split()
                if words[0] in arcs[src]:
                    continue
                state = src
                for k, word in enumerate(words):
                    if k == len(words) - 1:
                        arcs[state][word] = target
                        break
                    key = tuple(words[: k + 1])
                    if key not in shared:
                        shared[key] = len(arcs)
                        arcs.append({})
                    arcs[state][word] = shared[key]
                    state = shared[key]

    add_phrases([0], prefixes, 1)
    if suffixes:
        end = len(arcs)
        arcs.append({})
        add_phrases(sorted(finals), suffixes, end)
        finals.add(end)
    return _Dfa(arcs, finals)


def _forbid_name_first(dfa: _Dfa) -> _Dfa:
    """Drop every sentence that starts with a name, area or floor (after an optional article).

    Catches what :data:`_NAME_STARTS` cannot see in template text (permutations such as
    "(replay;[in] <area>)"). Product of the DFA with a 3-state filter: start, after a first
    article, free.
    """
    def blocked(label: str) -> bool:
        return label.startswith((f"{_NT}name", f"{_NT}area", f"{_NT}floor"))

    index: dict[tuple[int, int], int] = {(0, 0): 0}
    arcs: list[dict[str, int]] = [{}]
    finals: set[int] = set()
    todo = [(0, 0)]
    while todo:
        state, phase = todo.pop()
        sid = index[(state, phase)]
        if state in dfa.finals and phase == 2:
            finals.add(sid)
        for label, dst in dfa.arcs[state].items():
            if phase < 2 and blocked(label):
                continue
            nxt_phase = 1 if phase == 0 and label in _ARTICLES else 2
            key = (dst, nxt_phase)
            if key not in index:
                index[key] = len(arcs)
                arcs.append({})
                todo.append(key)
            arcs[sid][label] = index[key]
    return _Dfa(arcs, finals)


def _entry_counts(dfa: _Dfa) -> list[int]:
    """Per state of an acyclic list graph: how many entries (word sequences) start there.

    Recursion depth is the longest entry in words (names are at most 100 characters)."""
    counts: dict[int, int] = {}

    def count(state: int) -> int:
        if state not in counts:
            counts[state] = (state in dfa.finals) + sum(
                count(dst) for dst in dfa.arcs[state].values())
        return counts[state]

    return [max(count(state), 1) for state in range(len(dfa.arcs))]


def _emit(top: _Dfa, sub: dict[str, _Dfa], home: _Home
          ) -> tuple[str, dict[str, tuple[str, ...]], dict[str, int]]:
    """Flatten the top graph and list sub-graphs into FSG text.

    Probabilities ("uniform" weighting) are those of the graph *with* list sub-graphs as
    separate states: a state's choices share its probability equally, and choosing a list
    symbol then shares that choice among the list's first words.
    """
    flat = WEIGHTING == "flat"

    def share(n: int) -> float:
        return 1.0 if flat else 1.0 / max(n, 1)

    entries = {symbol: _entry_counts(dfa) for symbol, dfa in sub.items()}

    def list_share(symbol: str, state: int, dst: int | None) -> float:
        """Probability of leaving list state `state` by the arc to `dst` (None: ending there)."""
        if flat:
            return 1.0
        if LIST_WEIGHTING == "entries":
            paths = entries[symbol]
            return (1 if dst is None else paths[dst]) / paths[state]
        dfa = sub[symbol]
        return share(len(dfa.arcs[state]) + (state in dfa.finals))

    weighted: list[_Arc] = []
    n_states = len(top.arcs)
    copies: dict[tuple[str, int], dict[int, int]] = {}  # (symbol, target) -> state map

    def copy_of(symbol: str, target: int) -> dict[int, int]:
        """States of the copy of `symbol`'s graph that ends in `target`.

        The copy's start state is not created: its arcs are added to every state that uses
        the copy. A final state without arcs *is* `target`; only a final state that also
        continues (a name that is a prefix of another) needs a null transition.
        """
        nonlocal n_states
        key = (symbol, target)
        if key in copies:
            return copies[key]
        dfa = sub[symbol]
        mapping: dict[int, int] = {}
        for state in range(1, len(dfa.arcs)):
            if state in dfa.finals and not dfa.arcs[state]:
                mapping[state] = target
            else:
                mapping[state] = n_states
                n_states += 1
        for state in range(1, len(dfa.arcs)):
            for word, dst in dfa.arcs[state].items():
                weighted.append((mapping[state], mapping[dst], word, list_share(symbol, state, dst)))
            if state in dfa.finals and dfa.arcs[state]:
                weighted.append((mapping[state], target, None, list_share(symbol, state, None)))
        copies[key] = mapping
        return mapping

    for state, arcs in enumerate(top.arcs):
        choices = len(arcs) + (state in top.finals and bool(arcs))
        for label, dst in arcs.items():
            if label.startswith(_NT):
                mapping = copy_of(label, dst)
                first = sub[label].arcs[0]
                for word, nxt in first.items():
                    weighted.append((state, mapping[nxt], word,
                                     share(choices) * list_share(label, 0, nxt)))
            else:
                weighted.append((state, dst, label, share(choices)))

    # a single final state: the leaf final if there is one, null transitions from the others
    leaf_finals = [s for s in top.finals if not top.arcs[s]]
    if len(leaf_finals) == 1:
        final = leaf_finals[0]
    else:
        final = n_states
        n_states += 1
        for s in leaf_finals:
            weighted.append((s, final, None, 1.0))
    for s in top.finals:
        if top.arcs[s]:
            weighted.append((s, final, None, share(len(top.arcs[s]) + 1)))

    states_before = n_states
    if MERGE_WORDS > 1:
        weighted, n_states, final = _eliminate_states(weighted, n_states, final)

    dictionary: dict[str, tuple[str, ...]] = {}
    lines = ["FSG_BEGIN hearth", f"NUM_STATES {n_states}", "START_STATE 0",
             f"FINAL_STATE {final}"]
    nulls = 0
    for src, dst, token, prob in weighted:
        if token is None:
            nulls += 1
            lines.append(f"TRANSITION {src} {dst} {prob:.6g}")
        else:
            if token not in dictionary:
                dictionary[token] = _compound_pronunciations(token, home.pronouncer)
            lines.append(f"TRANSITION {src} {dst} {prob:.6g} {token}")
    lines.append("FSG_END")
    size = {"states": n_states, "transitions": len(weighted), "null_transitions": nulls,
            "list_copies": len(copies), "states_before_merging": states_before}
    return "\n".join(lines) + "\n", dictionary, size


MERGE_WORDS = 3
"""Longest multi-word token made by state elimination (1 = off)."""
MERGE_MAX_PRODUCT = 12
MAX_COMPOUND_VARIANTS = 8
JOIN = "_"  # joins words of a multi-word token; normalisation never leaves "_" in a word


def _compound_pronunciations(token: str, pronouncer: Pronouncer) -> tuple[str, ...]:
    """Pronunciations of a (possibly multi-word) token: products of its words' variants."""
    parts: list[tuple[str, ...]] = []
    for word in token.split(JOIN):
        prons = pronouncer.pronounce(word)
        assert prons is not None, word  # unpronounceable words never reach the graph
        parts.append(prons)
    return tuple(" ".join(combo) for combo in
                 itertools.islice(itertools.product(*parts), MAX_COMPOUND_VARIANTS))


def _eliminate_states(trans: list[_Arc], n_states: int, final: int
                      ) -> tuple[list[_Arc], int, int]:
    """Remove states by merging words into multi-word tokens.

    pocketsphinx's FSG search does work for every state (times every context phone) in every
    frame, whatever is active, so fewer states is directly less CPU. A state ``s`` whose
    incoming and outgoing transitions are all words is removed by replacing each pair
    ``p -a-> s -b-> t`` with ``p -"a_b"-> t`` when that adds few transitions (in × out ≤
    :data:`MERGE_MAX_PRODUCT`) and tokens stay short (≤ :data:`MERGE_WORDS` words). The
    language and each sentence's probability are unchanged (a merged token carries the
    product of its transitions' probabilities); the decoder splits tokens back into words.
    """
    incoming: dict[int, list[tuple[int, str | None, float]]] = defaultdict(list)
    outgoing: dict[int, list[tuple[int, str | None, float]]] = defaultdict(list)
    for src, dst, word, prob in trans:
        outgoing[src].append((dst, word, prob))
        incoming[dst].append((src, word, prob))

    def length(word: str | None) -> int:
        return 99 if word is None else word.count(JOIN) + 1

    changed = True
    removed: set[int] = set()
    while changed:
        changed = False
        for s in range(1, n_states):
            if s == final or s in removed:
                continue
            ins, outs = incoming[s], outgoing[s]
            if not ins or not outs or len(ins) * len(outs) > MERGE_MAX_PRODUCT:
                continue
            if any(src == s for src, _, _ in ins):
                continue
            if (max(length(w) for _, w, _ in ins) + max(length(w) for _, w, _ in outs)
                    > MERGE_WORDS):
                continue
            for src, _a, _p in ins:
                outgoing[src] = [arc for arc in outgoing[src] if arc[0] != s]
            for dst, _b, _q in outs:
                incoming[dst] = [arc for arc in incoming[dst] if arc[0] != s]
            for src, a, p in ins:
                for dst, b, q in outs:
                    outgoing[src].append((dst, f"{a}{JOIN}{b}", p * q))
                    incoming[dst].append((src, f"{a}{JOIN}{b}", p * q))
            incoming[s], outgoing[s] = [], []
            removed.add(s)
            changed = True
    # renumber the states that are left
    alive = [s for s in range(n_states) if s not in removed]
    index = {s: i for i, s in enumerate(alive)}
    new = [(index[src], index[dst], word, prob) for src in alive
           for dst, word, prob in outgoing[src]]
    return new, len(alive), index[final]
