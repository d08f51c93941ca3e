"""FSG emission: the minimized word graph and its list sub-graphs become pocketsphinx FSG text
and a pronunciation dictionary.

Each list (names, areas, numbers) is copied once per *(list, next state)* pair and entered from
every state that uses it, which keeps the language exact while 300 names appear once or a few
times instead of once per template. Transition probabilities make every list entry equally
likely. Then states whose transitions are all words are eliminated by merging words into
multi-word tokens (``turn_on``, at most :data:`MERGE_WORDS` words), which pocketsphinx searches
with fewer states; their pronunciations are the products of the words' variants.
"""

from __future__ import annotations

from collections import defaultdict

from .automaton import NT, Dfa, entry_counts
from .pronounce import Pronouncer

_Arc = tuple[int, int, str | None, float]


def emit(top: Dfa, sub: dict[str, Dfa], pronouncer: Pronouncer
         ) -> tuple[str, dict[str, tuple[str, ...]], dict[str, int]]:
    """Flatten the top graph and list sub-graphs into FSG text and a pronunciation dictionary.

    Probabilities are those of the graph *with* list sub-graphs as separate states: a state's
    choices share its probability equally (a path's probability falls with the choices it
    makes), and choosing a list symbol then shares that choice among the list's first words so
    that every entry of the list is equally likely (an arc's share is the number of entries
    through it; sharing equally per state made an entry that is the prefix of others, "forty"
    of "forty one" ... "forty nine", ten times less likely than one that is not, "fourteen").
    """
    def share(n: int) -> float:
        return 1.0 / max(n, 1)

    entries = {symbol: entry_counts(dfa) for symbol, dfa in sub.items()}

    def list_share(symbol: str, state: int, dst: int | None) -> float:
        """Probability of leaving list state `state` by the arc to `dst` (None: ending there)."""
        paths = entries[symbol]
        return (1 if dst is None else paths[dst]) / paths[state]

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
            if label.startswith(NT):
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
        weighted, n_states, final = eliminate_states(weighted, n_states, final)

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
                dictionary[token] = compound_pronunciations(token, pronouncer)
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


def compound_pronunciations(token: str, pronouncer: Pronouncer) -> tuple[str, ...]:
    """Pronunciations of a (possibly multi-word) token (:meth:`Pronouncer.token`)."""
    return pronouncer.token(token.split(JOIN), MAX_COMPOUND_VARIANTS)


def eliminate_states(trans: list[_Arc], n_states: int, final: int
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
