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

Every word then also gets its non-rhotic form and its form in each accent of
:data:`ACCENT_PROFILES` (Caribbean, Scottish, southern British: sound-change rules such as
TH-stopping, vowel shifts, cluster reduction, applied to the first pronunciation), at most
:data:`MAX_PRONUNCIATIONS` in all; a multi-word token gets one variant per accent, with every
word in that accent (:meth:`Pronouncer.token`).
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Callable, Iterable, Mapping

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


# accents -------------------------------------------------------------------------------------
# Each rule is a sound change of an accent of English, written against the CMU phone set (the
# one the en-us model has) from published descriptions of those accents (Wells, "Accents of
# English"), never copied from test recordings or a synthesizer's phoneme output. Measured in
# docs/recognition.md ("Accent variants").

ACCENTS = True
"""Add accent profile variants (:data:`ACCENT_PROFILES`) to every grammar word."""
MAX_PRONUNCIATIONS = 6
"""Never more pronunciations than this for one word (pocketsphinx's search grows with them)."""
_CONSONANTS_BEFORE_CLUSTER = frozenset({"K", "P", "F", "S", "N", "L", "M", "Z", "V", "CH", "JH"})


def th_stop(seq: list[str]) -> list[str]:
    """TH-stopping (Caribbean, Irish, West African English): "three" T R IY, "the" D AH."""
    return [{"TH": "T", "DH": "D"}.get(p, p) for p in seq]


def h_drop(seq: list[str]) -> list[str]:
    """H-dropping (Caribbean, much of England): "heater" IY T ER. Word-initial HH only."""
    return seq[1:] if seq and seq[0] == "HH" else seq


def cluster_reduction(seq: list[str]) -> list[str]:
    """Final consonant cluster reduction (Caribbean, African American English): a final T or D
    after another consonant is not pronounced ("next" N EH K S, "blind" B L AY N)."""
    if len(seq) >= 3 and seq[-1] in ("T", "D") and seq[-2] in _CONSONANTS_BEFORE_CLUSTER:
        return seq[:-1]
    return seq


def trap_open(seq: list[str]) -> list[str]:
    """One open /a/ for TRAP, BATH and PALM (Scottish, Caribbean, Northern England): AE -> AA."""
    return ["AA" if p == "AE" else p for p in seq]


def bath_broad(seq: list[str]) -> list[str]:
    """The TRAP-BATH split of southern England: AE before F, S, TH or N + consonant is the long
    back /ɑː/ ("last" L AA S T, "plant"); "lamp" and "fan" keep AE."""
    out = list(seq)
    for i, p in enumerate(seq[:-1]):
        nxt = seq[i + 1]
        after = seq[i + 2] if i + 2 < len(seq) else None
        if p == "AE" and (nxt in ("F", "S", "TH") or (nxt == "N" and after in ("T", "S", "CH"))):
            out[i] = "AA"
    return out


def lot_rounded(seq: list[str], spelling: str) -> list[str]:
    """LOT is rounded outside North America (/ɒ/, Scottish /ɔ/): AA -> AO in words spelled with
    "o" ("lock" L AO K, "stop"), not in "father" or "garage"; an AA before R stays."""
    if "o" not in spelling:
        return seq
    return ["AO" if p == "AA" and (i + 1 == len(seq) or seq[i + 1] != "R") else p
            for i, p in enumerate(seq)]


def monophthongs(seq: list[str]) -> list[str]:
    """GOAT as a long monophthong /oː/ (Scottish, Caribbean, Welsh, Northern England): OW -> AO,
    the en-us model's nearest single vowel ("close" K L AO S). FACE /eː/ stays EY, whose start
    is that vowel: as EH it made "eight" EH T and "gate" G EH T ("get"), and a 10 dB "turn off
    the kitchen light" came out as "... lights"."""
    return ["AO" if p == "OW" else p for p in seq]


def scottish_nurse(seq: list[str]) -> list[str]:
    """Scottish English keeps NURSE as a short vowel + r ("turn" T AH R N) and has no FOOT-GOOSE
    contrast (UH -> UW)."""
    out: list[str] = []
    for p in seq:
        out.extend(("AH", "R") if p == "ER" else ("UW",) if p == "UH" else (p,))
    return out


def caribbean_vowels(seq: list[str]) -> list[str]:
    """Jamaican and much of Caribbean English: NURSE is a back rounded vowel ("turn" T AO N,
    "purple" P AO P AH L) and a final unstressed -er is an open /a/ ("timer" T AY M AA), where
    r is not pronounced. The CMU phones carry no stress: the first vowel of a word that is ER is
    taken as NURSE, a final ER as lettER."""
    out = list(seq)
    vowels = [i for i, p in enumerate(seq) if p in _VOWELS]
    if vowels and seq[vowels[0]] == "ER":
        out[vowels[0]] = "AO"
    if len(vowels) > 1 and seq[-1] == "ER":
        out[-1] = "AA"
    return out


ACCENT_PROFILES: dict[str, tuple[str, ...]] = {
    "caribbean": ("th_stop", "caribbean_vowels", "non_rhotic", "trap_open", "monophthongs",
                  "cluster", "h_drop"),
    "scottish": ("trap_open", "lot", "monophthongs", "scottish_nurse"),
    "british": ("non_rhotic", "bath", "lot"),
}
"""Accent -> the rules applied together (in this order) to a word's first pronunciation."""


def apply_rules(phones: str, rules: Iterable[str], spelling: str = "",
                number: bool = False) -> str:
    """`phones` with each named rule applied in turn. For number words the r stays: the rules
    that drop it are skipped (non-rhotic "forty" F AO T IY rivalled "for five" and "fourteen")."""
    seq = phones.split()
    for rule in rules:
        if rule in _DROPS_R:
            if not number:
                seq = _DROPS_R[rule](seq)
        elif rule == "lot":
            seq = lot_rounded(seq, spelling)
        else:
            seq = _RULES[rule](seq)
    return " ".join(seq)


_DROPS_R: dict[str, Callable[[list[str]], list[str]]] = {
    "non_rhotic": lambda seq: non_rhotic(" ".join(seq)).split(),
    "caribbean_vowels": caribbean_vowels,
}
_RULES: dict[str, Callable[[list[str]], list[str]]] = {
    "th_stop": th_stop, "h_drop": h_drop, "cluster": cluster_reduction, "trap_open": trap_open,
    "bath": bath_broad, "monophthongs": monophthongs, "scottish_nurse": scottish_nurse,
}


def accent_forms(word: str, phones: str, *, number: bool = False) -> dict[str, str]:
    """accent -> `word`'s pronunciation in that accent (every profile of
    :data:`ACCENT_PROFILES`), made from its pronunciation `phones`."""
    return {name: apply_rules(phones, rules, word, number=number)
            for name, rules in ACCENT_PROFILES.items()}


class Pronouncer:
    """Looks up (and if needed invents) pronunciations; remembers how each word was done."""

    def __init__(self, dictionary: Pronunciations, accents: bool = True) -> None:
        self._dict = dictionary
        self._accents = accents and ACCENTS
        self.methods: dict[str, str] = {}
        self._cache: dict[str, tuple[str, ...] | None] = {}
        self._general: dict[str, tuple[str, ...]] = {}  # dictionary + non-rhotic
        self._forms: dict[str, dict[str, str]] = {}  # accent -> the word in that accent

    def pronounce(self, word: str) -> tuple[str, ...] | None:
        """Pronunciations for a normalised word, or None if it cannot be pronounced: the
        dictionary's (or invented) ones, their non-rhotic forms, then the word in each accent of
        :data:`ACCENT_PROFILES` where that is new and not shorter than
        :data:`NON_RHOTIC_MIN_PHONES` (or the word itself); at most :data:`MAX_PRONUNCIATIONS`."""
        if word not in self._cache:
            method, prons = self._find(word)
            if prons is not None:
                number = word in NUMBER_WORDS
                if NON_RHOTIC and not number:
                    extra = [v for v in dict.fromkeys(non_rhotic(p) for p in prons)
                             if v not in prons and len(v.split()) >= NON_RHOTIC_MIN_PHONES]
                    prons = (*prons, *extra)
                self._general[word] = prons
                forms = accent_forms(word, prons[0], number=number) if self._accents else {}
                self._forms[word] = forms
                shortest = min(NON_RHOTIC_MIN_PHONES, len(prons[0].split()))
                extra = [v for v in dict.fromkeys(forms.values())
                         if v not in prons and len(v.split()) >= shortest]
                prons = (*prons, *extra)[:MAX_PRONUNCIATIONS]
            self._cache[word] = prons
            if prons is not None:
                self.methods[word] = method
        return self._cache[word]

    def token(self, words: list[str], limit: int) -> tuple[str, ...]:
        """Pronunciations of a token of one or more words. One word: :meth:`pronounce`. More:
        the products of the words' general variants (dictionary and non-rhotic; the first
        `limit`), then, per accent profile, every word in that accent at once (a speaker does
        not change accent within three words), so an accent adds at most one variant to a
        token however many of its words it changes."""
        if len(words) == 1:
            prons = self.pronounce(words[0])
            assert prons is not None, words[0]  # unpronounceable words never reach the graph
            return prons
        general: list[tuple[str, ...]] = []
        for word in words:
            assert self.pronounce(word) is not None, word
            general.append(self._general[word])
        out = [" ".join(combo) for combo in itertools.islice(itertools.product(*general), limit)]
        for name in ACCENT_PROFILES if self._accents else ():
            form = " ".join(self._forms[w].get(name, self._general[w][0]) for w in words)
            if form not in out:
                out.append(form)
        return tuple(out)

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
