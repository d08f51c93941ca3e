"""Pronunciations for grammar words, from the CMU dictionary bundled with pocketsphinx (the
caller supplies it, loaded once per process by :mod:`bridge.resources`).

A word missing from the dictionary is pronounced by the first method that works:

1. ``dictionary``: the word itself (all listed variants are kept, at most 3).
2. ``accents``: the word with accents removed (``café`` → ``cafe``).
3. ``apostrophe``: ``hows`` → ``how's``; ``x's`` → ``x`` + S/Z/IH Z after its last phone;
   ``o'neil`` → ``oneil``.
4. ``plural``: ``awnings`` → ``awning`` + S/Z/IH Z (also ``-es``).
5. ``compound``: the fewest known dictionary words (each ≥ 2 letters, at most 4) that spell the
   word (``unpause`` → ``un`` + ``pause``, ``doorbell`` → ``door`` + ``bell``).
6. ``letters``: a word of at most 5 letters spelled out letter by letter (``bmw`` → B IY EH M ...).

Anything else (longer unknown words, scripts other than Latin) is *unpronounceable*: the grammar
drops the name that uses it and reports it. Digits never reach here (see :mod:`.text`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

from .text import NUMBER_WORDS

LETTERS = {
    "a": "EY", "b": "B IY", "c": "S IY", "d": "D IY", "e": "IY", "f": "EH F", "g": "JH IY",
    "h": "EY CH", "i": "AY", "j": "JH EY", "k": "K EY", "l": "EH L", "m": "EH M", "n": "EH N",
    "o": "OW", "p": "P IY", "q": "K Y UW", "r": "AA R", "s": "EH S", "t": "T IY", "u": "Y UW",
    "v": "V IY", "w": "D AH B AH L Y UW", "x": "EH K S", "y": "W AY", "z": "Z IY",
}
MAX_VARIANTS = 3
NON_RHOTIC = True
"""Also accept every word without its post-vocalic r (see :func:`non_rhotic`)."""
NON_RHOTIC_MIN_PHONES = 3
"""A variant shorter than this is not added ("are", "or", "our" as one bare vowel match anything)."""
_VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY",
                     "UH", "UW"})
_VOICELESS = {"P", "T", "K", "F", "TH"}
_SIBILANT = {"S", "Z", "SH", "ZH", "CH", "JH"}


Pronunciations = Mapping[str, tuple[str, ...]]
"""word → pronunciations (the CMU dictionary, loaded by :func:`bridge.resources.cmudict`)."""


def parse_dictionary(lines: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """word → pronunciations from pocketsphinx dictionary lines (``word(2) P H O N E S``)."""
    entries: dict[str, list[str]] = {}
    for line in lines:
        word, _, phones = line.strip().partition(" ")
        if not phones:
            continue
        if word.endswith(")") and "(" in word:
            word = word[: word.index("(")]
        entries.setdefault(word, []).append(phones.strip())
    return {word: tuple(prons) for word, prons in entries.items()}


def _strip_accents(word: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", word)
                   if not unicodedata.combining(ch))


def _plural(phones: str) -> str:
    last = phones.split()[-1]
    if last in _SIBILANT:
        return phones + " IH Z"
    if last in _VOICELESS:
        return phones + " S"
    return phones + " Z"


def non_rhotic(phones: str) -> str:
    """The word as a non-rhotic speaker (most of England, Wales, Australia ...) says it.

    An r that no vowel follows is not pronounced: AA R / AO R lose it ("car", "door"), EH R /
    IH R / UH R become a centring diphthong ("there" DH EH AH, "near" N IH AH), and ER becomes
    a plain schwa ("timer" T AY M AH, "turn" T AH N). The en-us model has no /ɜː/; AH is the
    nearest phone it has.
    """
    out: list[str] = []
    seq = phones.split()
    for i, phone in enumerate(seq):
        following = seq[i + 1] if i + 1 < len(seq) else None
        if following in _VOWELS:
            out.append(phone)
        elif phone == "ER":
            out.append("AH")
        elif phone == "R" and out and out[-1] in _VOWELS:
            if out[-1] in ("EH", "IH", "UH"):
                out.append("AH")
        else:
            out.append(phone)
    return " ".join(out)


class Pronouncer:
    """Looks up (and if needed invents) pronunciations; remembers how each word was done."""

    def __init__(self, dictionary: Pronunciations) -> None:
        self._dict = dictionary
        self.methods: dict[str, str] = {}
        self._cache: dict[str, tuple[str, ...] | None] = {}

    def pronounce(self, word: str) -> tuple[str, ...] | None:
        """Pronunciations for a normalised word, or None if it cannot be pronounced."""
        if word not in self._cache:
            method, prons = self._find(word)
            if prons is not None and NON_RHOTIC and word not in NUMBER_WORDS:
                extra = [v for v in dict.fromkeys(non_rhotic(p) for p in prons)
                         if v not in prons and len(v.split()) >= NON_RHOTIC_MIN_PHONES]
                prons = (*prons, *extra)
            self._cache[word] = prons
            if prons is not None:
                self.methods[word] = method
        return self._cache[word]

    def _known(self, word: str) -> tuple[str, ...] | None:
        prons = self._dict.get(word)
        return prons[:MAX_VARIANTS] if prons else None

    def _find(self, word: str) -> tuple[str, tuple[str, ...] | None]:
        if prons := self._known(word):
            return "dictionary", prons
        plain = _strip_accents(word)
        if plain != word and (prons := self._known(plain)):
            return "accents", prons
        if not plain.replace("'", "").isascii() or not plain.replace("'", "").isalpha():
            return "unpronounceable", None
        if plain.endswith("s") and "'" not in plain and (prons := self._known(plain[:-1] + "'s")):
            return "apostrophe", prons
        if plain.endswith("'s") and (base := self._compound(plain[:-2])):
            return "apostrophe", tuple(_plural(p) for p in base)
        if plain.endswith("s") and len(plain) > 3 and (base := self._compound(plain[:-1])):
            return "plural", tuple(_plural(p) for p in base)
        if plain.endswith("es") and len(plain) > 4 and (base := self._compound(plain[:-2])):
            return "plural", tuple(_plural(p) for p in base)
        if "'" in plain:
            joined = plain.replace("'", "")
            if prons := self._known(joined) or self._compound(joined):
                return "apostrophe", prons
        if prons := self._compound(plain):
            return "compound", prons
        if len(plain) <= 5:
            return "letters", (" ".join(LETTERS[ch] for ch in plain),)
        return "unpronounceable", None

    def _compound(self, word: str) -> tuple[str, ...] | None:
        if prons := self._known(word):
            return prons
        n = len(word)
        # best[i] = fewest parts spelling word[:i], with the parts
        best: list[list[str] | None] = [None] * (n + 1)
        best[0] = []
        for end in range(2, n + 1):
            for start in range(end - 1):
                prefix = best[start]
                if prefix is None or len(prefix) >= 4:
                    continue
                part = word[start:end]
                current = best[end]
                if part in self._dict and (current is None or len(prefix) + 1 < len(current)):
                    best[end] = [*prefix, part]
        parts = best[n]
        if not parts or len(parts) < 2:
            return None
        return (" ".join(self._dict[part][0] for part in parts),)
