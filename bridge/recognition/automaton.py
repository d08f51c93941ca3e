"""Automaton algebra for the grammar compiler: word automata and what is done to them.

An epsilon-NFA (:class:`Nfa`) over string labels is made deterministic (:func:`determinize`,
subset construction) and minimal (:func:`minimize`, merging equivalent states of the acyclic
automaton leaves first), so shared prefixes *and* suffixes of templates are built once. Labels
are words or *list symbols* (starting with :data:`NT`: ``$name|d=light...``, ``$area``, ranges),
which :mod:`.fsg` later expands into shared sub-graphs. On the deterministic graph: politeness
words around every sentence (:func:`add_skip_words`), no sentence that starts with a name
(:func:`forbid_name_first`), and the entry counts that weight a list's arcs
(:func:`entry_counts`). No I/O, no pocketsphinx.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

SPACE = "\x00"  # word boundary marker inside the character-level automaton
NT = "$"  # list symbols start with this; real words never do (normalisation strips it)


class Nfa:
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
class Dfa:
    """A deterministic acyclic automaton: state 0 is the start."""

    arcs: list[dict[str, int]]
    finals: set[int]

    @property
    def n_arcs(self) -> int:
        return sum(len(a) for a in self.arcs)


def closure(nfa: Nfa, states: Iterable[int]) -> frozenset[int]:
    seen = set(states)
    stack = list(seen)
    while stack:
        for label, dst in nfa.arcs[stack.pop()]:
            if label is None and dst not in seen:
                seen.add(dst)
                stack.append(dst)
    return frozenset(seen)


def determinize(nfa: Nfa, start: int) -> Dfa:
    first = closure(nfa, [start])
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
            target = closure(nfa, dsts)
            if target not in index:
                index[target] = len(arcs)
                arcs.append({})
                todo.append(target)
            arcs[sid][label] = index[target]
    return Dfa(arcs, finals)


def minimize(dfa: Dfa) -> Dfa:
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
    signatures: dict[tuple[bool, tuple[tuple[str, int], ...]], int] = {}
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
        return Dfa([{}], set())
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
    return Dfa(arcs, {remap[s] for s in new_finals if s in remap})

def word_graph(values: Sequence[Sequence[str]]) -> Dfa:
    """The minimized automaton of a list's entries (each a word sequence)."""
    nfa = Nfa()
    start = nfa.new()
    for words in values:
        state = start
        for word in words:
            nxt = nfa.new()
            nfa.add(state, word, nxt)
            state = nxt
        nfa.finals.add(state)
    return minimize(determinize(nfa, start))



_ARTICLES = frozenset({"the", "my", "our"})


def add_skip_words(dfa: Dfa, prefixes: tuple[str, ...], suffixes: tuple[str, ...]) -> Dfa:
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
    return Dfa(arcs, finals)


def forbid_name_first(dfa: Dfa) -> Dfa:
    """Drop every sentence that starts with a name, area or floor (after an optional article).

    Catches what :data:`_NAME_STARTS` cannot see in template text (permutations such as
    "(replay;[in] <area>)"). Product of the DFA with a 3-state filter: start, after a first
    article, free.
    """
    def blocked(label: str) -> bool:
        return label.startswith((f"{NT}name", f"{NT}area", f"{NT}floor"))

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
    return Dfa(arcs, finals)


def entry_counts(dfa: Dfa) -> list[int]:
    """Per state of an acyclic list graph: how many entries (word sequences) start there.

    Recursion depth is the longest entry in words (names are at most 100 characters)."""
    counts: dict[int, int] = {}

    def count(state: int) -> int:
        if state not in counts:
            counts[state] = (state in dfa.finals) + sum(
                count(dst) for dst in dfa.arcs[state].values())
        return counts[state]

    return [max(count(state), 1) for state in range(len(dfa.arcs))]
