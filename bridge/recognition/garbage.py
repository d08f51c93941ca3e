"""A garbage model for the grammar search: a loop over frequent English words.

The grammar search always ends in *some* sentence of the grammar, so other speech has to be
bent into a command and is rejected only if it fits badly (the per-frame acoustic score). A
loop of ordinary English words beside the grammar gives such speech a better place to go:
when the best path runs through the loop, the utterance is rejected ("garbage"), whatever its
acoustic score. The loop is entered from the grammar's start with a small probability
(:data:`bridge.recognition.decoder.GARBAGE_ENTER`), so commands, which the grammar predicts
far better, stay on the grammar's side.

The words are the most frequent words of the general English language model that ships with
pocketsphinx (``en-us.lm.bin``, unigram probabilities), stored with their pronunciations from
the bundled dictionary in ``bridge/data/frequent_words.txt``, so that the decoder workers load
neither the language model nor the 130,000-word dictionary. Regenerate that file with::

    .venv/bin/python -m bridge.recognition.garbage
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path

from .pronounce import cmudict

PREFIX = "garbage__"
"""Dictionary names of loop words (never a word of a grammar: normalisation drops "_")."""
WORDS_FILE = "frequent_words.txt"
STORED_WORDS = 1000


@functools.cache
def _stored() -> dict[str, tuple[str, ...]]:
    """word -> pronunciations, most frequent word first (one line each: word, tab-separated
    pronunciations)."""
    text = resources.files("bridge.data").joinpath(WORDS_FILE).read_text(encoding="utf-8")
    out: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            word, *prons = line.split("\t")
            out[word] = tuple(prons)
    return out


def frequent_words() -> tuple[str, ...]:
    """The stored frequent words, most frequent first."""
    return tuple(_stored())


def loop_words(count: int, exclude: frozenset[str] = frozenset()) -> list[str]:
    """The `count` most frequent words that are not in `exclude`."""
    return [w for w in _stored() if w not in exclude][:count]


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


def dictionary_lines(words: list[str]) -> list[str]:
    """Dictionary lines (pocketsphinx format) for the loop words, every pronunciation."""
    prons = _stored()
    lines: list[str] = []
    for word in words:
        for i, pron in enumerate(prons[word]):
            name = f"{PREFIX}{word}" if i == 0 else f"{PREFIX}{word}({i + 1})"
            lines.append(f"{name} {pron}")
    return lines


def is_garbage(hypstr: str) -> bool:
    """True if a decoder hypothesis went through the loop."""
    return PREFIX in hypstr


def rank_words(count: int = STORED_WORDS) -> list[str]:
    """The `count` most frequent words of pocketsphinx's en-us language model (unigram
    probability) that are plain lower-case words with a dictionary pronunciation."""
    import pocketsphinx
    from pocketsphinx import NGramModel

    lm = NGramModel.readfile(str(Path(pocketsphinx.get_model_path()) / "en-us" / "en-us.lm.bin"))
    scored = []
    for word in cmudict():
        if re.fullmatch(r"[a-z]+", word):
            prob = lm.prob([word])
            scored.append((prob[0] if isinstance(prob, tuple) else prob, word))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [word for _, word in scored[:count]]


def main() -> None:
    """Rewrite ``bridge/data/frequent_words.txt`` from the bundled language model."""
    path = Path(__file__).resolve().parents[1] / "data" / WORDS_FILE
    words = rank_words()
    prons = cmudict()
    header = ("# The most frequent words of pocketsphinx's en-us language model (unigram\n"
              "# probability), most frequent first, with their pronunciations in the bundled\n"
              "# dictionary (tab-separated). Made by: python -m bridge.recognition.garbage\n")
    lines = ["\t".join((word, *prons[word])) for word in words]
    path.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(words)} words -> {path}")


if __name__ == "__main__":
    main()
