"""Template expansion: hassil template expressions become automata over words and list symbols.

:class:`TemplateBuilder` turns one template (within its block's :class:`BlockContext`: which
domains and device classes its names and areas may have) into a character-piece NFA: text
chunks, alternatives, optionals, permutations, expansion rules, and list references as *list
symbols* (``$name|d=light|c=*|x=``, ``$area|...``, ``$range:0:100:1:``, ``$list:color``) whose
spoken values it collects. A reference that can never match (an empty or wildcard list, an
unknown rule) makes the template dead, with a reason. :func:`join_words` then joins pieces into
words exactly as hassil reads them (``fan[s]`` -> fan | fans), normalised by :mod:`.text`, and
drops paths with a word that cannot be pronounced. No I/O.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

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

from .automaton import NT, SPACE, Nfa, determinize
from .pronounce import Pronouncer
from .text import decimal_words, normalize_words
from .vocabulary import Entity, Vocabulary


@dataclass
class Home:
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


@dataclass(frozen=True)
class BlockContext:
    """What one template block means for list lookups."""

    data: IntentData | None
    name_domains: frozenset[str] | None  # from requires_context (hassil filters names by it)
    name_classes: frozenset[str] | None
    name_exclude: frozenset[str]
    implied_domains: frozenset[str] | None  # from requires_context or slots
    implied_classes: frozenset[str] | None


class TemplateBuilder:
    """Turns hassil expressions into a character-level NFA with list symbols."""

    def __init__(self, intents: Intents, home: Home) -> None:
        self.intents = intents
        self.home = home
        self.lists: dict[str, list[list[str]]] = {}  # list symbol -> spoken values
        self.dead_reasons: list[str] = []

    # lists ---------------------------------------------------------------
    def list_symbol(self, ref: ListReference, ctx: BlockContext) -> str | None:
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
            symbol = f"{NT}range:{slot_list.start}:{slot_list.stop}:{slot_list.step}:{frac}"
            if symbol not in self.lists:
                self.lists[symbol] = [decimal_words(float(n)) for n in slot_list.get_numbers()]
            return symbol
        if isinstance(slot_list, TextSlotList):
            symbol = f"{NT}list:{name}"
            if symbol not in self.lists:
                values: list[list[str]] = []
                for value in slot_list.values:
                    values.extend(self.expand_words(value.text_in))
                self.lists[symbol] = values
            return symbol if self.lists[symbol] else None
        self.dead_reasons.append(f"unknown_list:{name}")
        return None

    def _home_list(self, name: str, ctx: BlockContext) -> str | None:
        home = self.home
        if name == "name":
            ents = home.entities(ctx.name_domains, ctx.name_classes, ctx.name_exclude)
            key = (f"{NT}name|d={','.join(sorted(ctx.name_domains or ['*']))}"
                   f"|c={','.join(sorted(ctx.name_classes or ['*']))}"
                   f"|x={','.join(sorted(ctx.name_exclude))}")
            texts = [t for e in ents for t in (e.name, *e.aliases)]
        else:
            # areas / floors that hold at least one entity the block can mean
            ents = home.entities(ctx.implied_domains, ctx.implied_classes)
            area_ids = {e.area for e in ents if e.area}
            if ctx.implied_domains is None and ctx.implied_classes is None:
                area_ids = {a.id for a in home.vocab.areas}
            key = (f"{NT}{name}|d={','.join(sorted(ctx.implied_domains or ['*']))}"
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
    def build(self, nfa: Nfa, expr: Expression, state: int, ctx: BlockContext,
              depth: int = 0) -> int | None:
        """Add `expr` after `state`; return the end state, or None if it can never match."""
        if depth > 50:
            raise ValueError("template rule recursion too deep")
        if isinstance(expr, TextChunk):
            for piece in re.split(r"(\s+)", expr.text):
                if not piece:
                    continue
                nxt = nfa.new()
                nfa.add(state, SPACE if piece.isspace() else piece, nxt)
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
            nfa.add(state, SPACE, a)
            nfa.add(a, symbol, b)
            nfa.add(b, SPACE, c)
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
        nfa = Nfa()
        start = nfa.new()
        ctx = BlockContext(None, None, None, frozenset(), None, None)
        end = self.build(nfa, expr, start, ctx)
        if end is None:
            return []
        nfa.finals.add(end)
        words_nfa, wstart = join_words(nfa, start, self.home)
        dfa = determinize(words_nfa, wstart)
        out: list[list[str]] = []

        def walk(state: int, path: list[str]) -> None:
            if state in dfa.finals and path:
                out.append(path)
            for lab, dst in dfa.arcs[state].items():
                walk(dst, [*path, lab])

        walk(0, [])
        return out


def join_words(cnfa: Nfa, start: int, home: Home) -> tuple[Nfa, int]:
    """Character-piece NFA → word NFA (pieces between boundaries join into one word)."""
    out = Nfa()
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
            elif label == SPACE:
                emit(src, partial, node(dst, ""))
            elif label.startswith(NT):
                mid = out.new()
                emit(src, partial, mid)
                out.add(mid, label, node(dst, ""))
            else:
                out.add(src, None, node(dst, partial + label))
    return out, first

