"""A garbage model for the grammar search: a loop over frequent English words.

The grammar search always ends in *some* sentence of the grammar, so other speech has to be
bent into a command and is rejected only if it fits badly (the per-frame acoustic score). A
loop of ordinary English words beside the grammar gives such speech a better place to go:
when the best path runs through the loop, the utterance is rejected ("garbage"), whatever its
acoustic score. The loop is entered from the grammar's start with a small probability
(``DecoderSettings.garbage_enter``), so commands, which the grammar predicts far better, stay on
the grammar's side.

The words are the most frequent words of the general English language model that ships with
pocketsphinx (``en-us.lm.bin``, unigram probabilities), stored with their pronunciations from
the bundled dictionary in ``bridge/data/frequent_words.txt`` (read by :mod:`bridge.resources`,
made by ``python -m bridge.tools.frequent_words``), so that the decoder workers load neither the
language model nor the 130,000-word dictionary. This module only parses and uses that list.
"""

from __future__ import annotations

from collections.abc import Mapping

from .pronounce import MAX_PRONUNCIATIONS, NON_RHOTIC_MIN_PHONES, accent_forms

FrequentWords = Mapping[str, tuple[str, ...]]
"""word -> pronunciations, most frequent word first."""

ACCENT_VARIANTS = False
"""Give loop words the grammar's accent variants too (:func:`bridge.recognition.pronounce.
accent_forms`), so accented chatter is not pushed into the grammar's side by them."""

PREFIX = "garbage__"
"""Dictionary names of loop words (never a word of a grammar: normalisation drops "_")."""


def parse_frequent_words(text: str) -> dict[str, tuple[str, ...]]:
    """The stored list's text -> word -> pronunciations, most frequent word first (one line
    each: word, tab-separated pronunciations; ``#`` comments)."""
    out: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            word, *prons = line.split("\t")
            out[word] = tuple(prons)
    return out


def loop_words(stored: FrequentWords, count: int,
               exclude: frozenset[str] = frozenset()) -> list[str]:
    """The `count` most frequent words of `stored` that are not in `exclude`."""
    return [w for w in stored if w not in exclude][:count]


def add_garbage_loop(fsg: str, enter: float, words: list[str]) -> str:
    """`fsg` (pocketsphinx FSG text) with a loop over `words` beside it.

    A null transition of probability `enter` leads from the start state to a new state; there
    each word loops back with equal probability, and a null transition of probability 0.5 leaves
    for the final state. Loop words are named ``garbage__<word>`` (:data:`PREFIX`); the caller
    adds them to the dictionary (:func:`dictionary_lines`).
    """
    if enter <= 0.0 or not words:
        return fsg
    lines = fsg.splitlines()
    n_states = int(next(x for x in lines if x.startswith("NUM_STATES")).split()[1])
    start = int(next(x for x in lines if x.startswith("START_STATE")).split()[1])
    final = int(next(x for x in lines if x.startswith("FINAL_STATE")).split()[1])
    loop = n_states
    share = 0.5 / len(words)
    extra = [f"TRANSITION {start} {loop} {enter:.6g}"]
    extra += [f"TRANSITION {loop} {loop} {share:.6g} {PREFIX}{word}" for word in words]
    extra.append(f"TRANSITION {loop} {final} 0.5")
    out: list[str] = []
    for line in lines:
        if line.startswith("NUM_STATES"):
            line = f"NUM_STATES {n_states + 1}"
        if line == "FSG_END":
            out.extend(extra)
        out.append(line)
    return "\n".join(out) + "\n"


def pronunciations(stored: FrequentWords, word: str, accents: bool = False) -> tuple[str, ...]:
    """A loop word's pronunciations: the stored ones, with `accents` also the word in each
    accent profile (new forms only, as long as the word's first one or 3 phones; at most
    :data:`~bridge.recognition.pronounce.MAX_PRONUNCIATIONS`)."""
    prons = stored[word]
    if not accents or not prons:
        return prons
    shortest = min(NON_RHOTIC_MIN_PHONES, len(prons[0].split()))
    extra = [v for v in dict.fromkeys(accent_forms(word, prons[0]).values())
             if v not in prons and len(v.split()) >= shortest]
    return (*prons, *extra)[:MAX_PRONUNCIATIONS]


def dictionary_lines(stored: FrequentWords, words: list[str],
                     accents: bool | None = None) -> list[str]:
    """Dictionary lines (pocketsphinx format) for the loop words, every pronunciation
    (`accents`: add accent variants; None: :data:`ACCENT_VARIANTS`)."""
    with_accents = ACCENT_VARIANTS if accents is None else accents
    lines: list[str] = []
    for word in words:
        for i, pron in enumerate(pronunciations(stored, word, with_accents)):
            name = f"{PREFIX}{word}" if i == 0 else f"{PREFIX}{word}({i + 1})"
            lines.append(f"{name} {pron}")
    return lines


def is_garbage(hypstr: str) -> bool:
    """True if a decoder hypothesis went through the loop."""
    return PREFIX in hypstr
