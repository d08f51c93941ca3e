"""The answer to a question: a tiny grammar of common yes / no / cancel phrasings and of naming
one of two or three choices ("the first one", "the second", "the last one"), and the meaning of
what it heard.

Answers are decoded with the same machinery as commands (a :class:`~.grammar.CompiledGrammar` in
a decoder worker, the same garbage loop and rejection), so an answer that is not clearly one of
these phrases is refused like any other utterance. Pure: the grammar's pronunciations are the
CMU dictionary's, written here (the answer grammar does not depend on the home).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from .grammar import CompiledGrammar
from .text import normalize_text
from .vocabulary import Vocabulary


class Answer(StrEnum):
    YES = "yes"
    NO = "no"
    CANCEL = "cancel"
    CHOICE = "choice"  # one of the choices, named by its place


#: The CMU dictionary's pronunciations of every word of the answer grammar.
PRONUNCIATIONS: dict[str, tuple[str, ...]] = {
    "yes": ("Y EH S",), "yeah": ("Y AE",), "yep": ("Y EH P",), "sure": ("SH UH R",),
    "okay": ("OW K EY",), "correct": ("K ER EH K T",), "right": ("R AY T",), "do": ("D UW",),
    "it": ("IH T",), "go": ("G OW",), "ahead": ("AH HH EH D",), "please": ("P L IY Z",),
    "that's": ("DH AE T S",), "that": ("DH AE T", "DH AH T"), "no": ("N OW",), "nope": ("N OW P",), "not": ("N AA T",),
    "don't": ("D OW N T", "D OW N"), "wrong": ("R AO NG",), "thanks": ("TH AE NG K S",),
    "thank": ("TH AE NG K",), "you": ("Y UW",), "cancel": ("K AE N S AH L",), "stop": ("S T AA P",),
    "never": ("N EH V ER",), "mind": ("M AY N D",), "forget": ("F ER G EH T", "F AO R G EH T"),
    "the": ("DH AH", "DH IY"), "first": ("F ER S T",), "second": ("S EH K AH N D",),
"one": ("W AH N",), "last": ("L AE S T", "L AE S"),
}

#: Words of commands, not of answers: a loop of them beside the answers catches a new command
#: (or a remark about the home) said instead of an answer, which the answers alone would bend
#: into "the third one". Heard, they make the utterance no answer.
DECOYS: dict[str, tuple[str, ...]] = {
    "turn": ("T ER N",), "on": ("AA N", "AO N"), "off": ("AO F",), "light": ("L AY T",),
    "lights": ("L AY T S",), "lamp": ("L AE M P",), "kitchen": ("K IH CH AH N",),
    "bedroom": ("B EH D R UW M",), "living": ("L IH V IH NG",), "room": ("R UW M",),
    "bathroom": ("B AE TH R UW M",), "office": ("AO F IH S",), "garage": ("G ER AA ZH",),
    "door": ("D AO R",), "front": ("F R AH N T",), "back": ("B AE K",), "set": ("S EH T",),
    "open": ("OW P AH N",), "close": ("K L OW S", "K L OW Z"), "lock": ("L AA K",),
    "unlock": ("AH N L AA K",), "temperature": ("T EH M P R AH CH ER", "T EH M P ER AH CH ER"),
    "timer": ("T AY M ER",), "what": ("W AH T", "HH W AH T"), "time": ("T AY M",), "is": ("IH Z",),
    "brightness": ("B R AY T N AH S",), "percent": ("P ER S EH N T",), "all": ("AO L",),
    "house": ("HH AW S",), "fan": ("F AE N",), "heat": ("HH IY T",), "music": ("M Y UW Z IH K",),
    "play": ("P L EY",), "pause": ("P AO Z",), "volume": ("V AA L Y UW M",), "up": ("AH P",),
    "down": ("D AW N",), "start": ("S T AA R T",), "minutes": ("M IH N AH T S",),
}
DECOY_SHARE = 0.2
"""The probability of entering the decoy loop instead of an answer."""

_YES = ("yes", "yes please", "yeah", "yep", "sure", "okay", "correct", "right", "that's right",
        "do it", "go ahead", "yes do it")
_NO = ("no", "no thanks", "no thank you", "nope", "don't", "wrong", "that's wrong", "not that")
_CANCEL = ("cancel", "stop", "never mind", "forget it")
_PLACES = {"first": 0, "second": 1, "last": -1}  # no "third": heard for "first"


def _choice_phrases() -> dict[str, int]:
    phrases: dict[str, int] = {}
    for word, place in _PLACES.items():
        for phrase in (f"the {word}", f"the {word} one", f"{word} one", word):
            phrases[phrase] = place
    return phrases


_CHOICES = _choice_phrases()
PHRASES: dict[str, tuple[Answer, int | None]] = {
    **{p: (Answer.YES, None) for p in _YES}, **{p: (Answer.NO, None) for p in _NO},
    **{p: (Answer.CANCEL, None) for p in _CANCEL}, **{p: (Answer.CHOICE, i) for p, i in _CHOICES.items()},
}
"""Every phrase the answer grammar accepts and what it means (a choice with its place; -1: last)."""


@dataclass(frozen=True)
class Understood:
    """What an answer meant: yes, no, cancel, or the choice at `index` (of the choices offered)."""

    answer: Answer
    index: int | None = None


def meaning(text: str, choices: int) -> Understood | None:
    """The meaning of the answer grammar's `text` to a question with `choices` choices; None when
    it is not an answer (empty, outside the grammar, or naming a place there is no choice at).

    "yes" to a question with two or three choices names none of them: not an answer."""
    found = PHRASES.get(normalize_text(text))
    if found is None:
        return None
    answer, place = found
    if answer is Answer.CHOICE:
        assert place is not None
        index = choices - 1 if place == -1 else place
        if choices < 2 or index >= choices:
            return None
        return Understood(Answer.CHOICE, index)
    if answer is Answer.YES and choices != 1:
        return None
    return Understood(answer)


def _fsg() -> str:
    """One path per phrase from the start state to the final state, equally likely, and beside
    them a loop over :data:`DECOYS`."""
    phrases = sorted(PHRASES)
    lines: list[str] = []
    states = 3  # 0 start, 1 final, 2 the decoy loop
    share = (1.0 - DECOY_SHARE) / len(phrases)
    lines.append(f"TRANSITION 0 2 {DECOY_SHARE:.6g}")
    lines += [f"TRANSITION 2 2 {0.5 / len(DECOYS):.6g} {word}" for word in sorted(DECOYS)]
    lines.append("TRANSITION 2 1 0.5")
    for phrase in phrases:
        words = phrase.split()
        src = 0
        for i, word in enumerate(words):
            last = i == len(words) - 1
            dst = 1 if last else states
            if not last:
                states += 1
            lines.append(f"TRANSITION {src} {dst} {share if i == 0 else 1.0:.6g} {word}")
            src = dst
    return "\n".join(["FSG_BEGIN answers", f"NUM_STATES {states}", "START_STATE 0", "FINAL_STATE 1",
                      *lines, "FSG_END"]) + "\n"


def answer_grammar() -> CompiledGrammar:
    """The answer grammar (the same for every home)."""
    fsg = _fsg()
    words = {word for phrase in PHRASES for word in phrase.split()}
    dictionary = {word: PRONUNCIATIONS[word] for word in sorted(words)}
    dictionary.update({word: prons for word, prons in DECOYS.items() if word not in dictionary})
    digest = hashlib.sha256(fsg.encode()).hexdigest()[:16]
    return CompiledGrammar(hash=f"answers-{digest}", language="en", fsg=fsg, dictionary=dictionary,
                           stats={"phrases": len(PHRASES)})


def answer_vocabulary() -> Vocabulary:
    """The (empty) home the answer decoder's worker is given: answers name no device."""
    return Vocabulary(language="en", areas=(), floors=(), entities=())
