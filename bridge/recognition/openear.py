"""The open ear: the same utterance decoded with pocketsphinx's general English language model,
as a second opinion on what the grammar heard.

A closed grammar turns any speech into its nearest command. The open ear has no such bias: an
ordinary remark comes out almost word for word, while a command comes out with its action words
mostly right and its names often mangled ("turn on the kitchen light" -> "to learn on the queue to
light"). So the two hearings are compared on the words that carry the meaning, names and other
content words by sound (phones from the dictionary, aligned with a cost per phone class), the
action word and the words that make an action broad ("all", "every", "house") as words.

:class:`OpenEar` follows a :class:`.decoder.GrammarDecoder` (its ``follower``): it is handed the
same conditioned audio with the same cepstral mean, scale and warp as it is decoded, so at the end
of speech only the last frames are left (docs/recognition.md, "The open ear": CPU and latency).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pocketsphinx import Config, Decoder

from .scoring import UtteranceScore, score_path
from .text import NUMBER_WORDS

HAS_CMN_SCALE = hasattr(Decoder, "set_cmn_scale")


@dataclass(frozen=True)
class OpenEarSettings:
    """The open ear's search (chosen for CPU, docs/recognition.md "The open ear")."""

    beam: float = 1e-40
    """pocketsphinx's default is 1e-48: 0.14 s CPU per audio second; 1e-40 halves it."""
    pbeam: float = 1e-40
    wbeam: float = 7e-29
    lw: float = 6.5


ACTION_WORDS = frozenset({
    "on", "off", "open", "close", "lock", "unlock", "pause", "resume", "unpause", "start", "stop",
    "cancel", "up", "down", "play", "next", "previous", "skip", "mute", "unmute", "raise", "lower",
    "increase", "decrease", "dim", "brighten", "set", "arm", "disarm"})
OPPOSITE_WORDS: Mapping[str, tuple[str, ...]] = {
    "on": ("off",), "off": ("on",), "open": ("close", "shut"), "close": ("open",),
    "shut": ("open",), "lock": ("unlock",), "unlock": ("lock",), "pause": ("resume", "unpause"),
    "resume": ("pause",), "unpause": ("pause",)}
BROAD_WORDS = frozenset({"all", "every", "each", "everything", "everywhere", "house", "home",
                         "whole", "entire"})
FUNCTION_WORDS = frozenset({
    "the", "a", "an", "to", "in", "of", "at", "for", "my", "please", "and", "is", "it", "are",
    "be", "this", "that", "me", "i", "you", "what", "what's", "how", "s", "with", "from", "by",
    "can", "could", "would", "will", "turn", "switch", "make", "get", "put", "let", "so", "its",
    "there", "here", "room", "our", "your"})
"""Words that carry no meaning of their own here (verbs that only introduce the action word)."""
VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY",
                    "UH", "UW"})


@dataclass(frozen=True)
class Comparison:
    """How the open ear's hearing compares with the grammar's."""

    agreement: float
    """0-1: the phone-weighted share of the grammar's meaning words that the open ear heard."""
    opposite: bool
    """The open ear heard the opposite of the grammar's action word, and not the word itself."""
    broad_missing: bool
    """The grammar heard a broad word the open ear did not."""
    detail: str


def _cost(a: str, b: str) -> float:
    if a == b:
        return 0.0
    va, vb = a in VOWELS, b in VOWELS
    return 0.5 if va and vb else 0.7 if not va and not vb else 1.0


def similarity(word: Sequence[str], heard: Sequence[str]) -> float:
    """How well the phones of `word` are found somewhere in `heard` (0-1): 1 - the cost of the
    best alignment of all of `word` with any stretch of `heard`, per phone of `word`."""
    m = len(word)
    if m == 0:
        return 1.0
    if not heard:
        return 0.0
    prev = [0.0] * (len(heard) + 1)  # free start anywhere in `heard`
    for i in range(1, m + 1):
        cur = [float(i)] + [0.0] * len(heard)
        for j in range(1, len(heard) + 1):
            cur[j] = min(prev[j - 1] + _cost(word[i - 1], heard[j - 1]), prev[j] + 1.0, cur[j - 1] + 1.0)
        prev = cur
    return max(0.0, 1.0 - min(prev) / m)  # free end anywhere


class Phones:
    """Words -> phones, from a decoder's dictionary (cached)."""

    def __init__(self, lookup: Mapping[str, str] | None = None, decoder: Decoder | None = None) -> None:
        self._lookup = dict(lookup or {})
        self._decoder = decoder

    def of(self, word: str) -> list[str]:
        if word not in self._lookup:
            phones = None
            if self._decoder is not None:
                try:
                    phones = self._decoder.lookup_word(word)
                except (KeyError, RuntimeError, ValueError):
                    phones = None
            self._lookup[word] = phones or ""
        return self._lookup[word].split()


def compare(grammar_text: str, open_text: str, phones: Phones) -> Comparison:
    """Compare the grammar's hearing with the open ear's (see the module docstring)."""
    said = grammar_text.split()
    heard = open_text.split()
    heard_set = set(heard)
    heard_phones = [p for w in heard for p in phones.of(w)]
    total = score = 0.0
    missing: list[str] = []
    for word in said:
        if word in FUNCTION_WORDS:
            continue
        if word in ACTION_WORDS or word in BROAD_WORDS or word in NUMBER_WORDS:
            weight = 3.0  # the action, the scope and the numbers as words: the open ear gets them
            sim = 1.0 if word in heard_set else 0.5 * similarity(phones.of(word), heard_phones)
        else:
            pron = phones.of(word)
            if not pron:
                continue
            weight = float(len(pron))
            sim = similarity(pron, heard_phones)
        total += weight
        score += weight * sim
        if sim < 0.6:
            missing.append(word)
    agreement = score / total if total else 1.0
    # chatter comes out word for word: far more content words than the command has
    content_said = sum(1 for w in said if w not in FUNCTION_WORDS)
    content_heard = sum(1 for w in heard if w not in FUNCTION_WORDS)
    if content_heard > 2 * content_said + 2:
        agreement *= (2 * content_said + 2) / content_heard
    actions = [w for w in said if w in OPPOSITE_WORDS]
    opposite = any(w not in heard_set and any(o in heard_set for o in OPPOSITE_WORDS[w])
                   for w in actions)
    broad_missing = any(w in BROAD_WORDS and w not in heard_set for w in said)
    return Comparison(round(agreement, 3), opposite, broad_missing,
                      f"not heard by the open ear: {len(missing)} of the meaning's words")


class OpenEar:
    """A general-English decoder that follows a grammar decoder through each utterance."""

    def __init__(self, acoustic_model: str, language_model: str, dictionary: str,
                 settings: OpenEarSettings = OpenEarSettings()) -> None:
        s = settings
        self._decoder = Decoder(Config(hmm=acoustic_model, lm=language_model, dict=dictionary,
                                       loglevel="FATAL", beam=s.beam, pbeam=s.pbeam, wbeam=s.wbeam,
                                       lw=s.lw, bestpath=False, fwdflat=False))
        self.phones = Phones(decoder=self._decoder)
        self._started = False
        self.cpu_seconds = 0.0
        self.end_cpu_seconds = 0.0  # CPU of the last finish (what end of speech waits for)
        self.last_score = UtteranceScore()  # the open path's acoustic fit (as the grammar's)

    def begin(self, cmn: str, scale: list[float] | None, warp: str | None) -> None:
        """A new utterance, with the grammar decoder's feature normalisation."""
        t0 = time.process_time()
        dec = self._decoder
        if self._started:
            dec.end_utt()
        if dec.config["warp_params"] != warp:
            dec.config["warp_type"] = "inverse_linear"
            dec.config["warp_params"] = warp
        dec.reinit_feat()
        dec.set_cmn(cmn)
        if scale is not None and HAS_CMN_SCALE:
            dec.set_cmn_scale(scale)
        dec.start_utt()
        self._started = True
        self.cpu_seconds = time.process_time() - t0

    def feed(self, pcm: bytes) -> None:
        """Conditioned audio, as the grammar decoder decodes it."""
        if not self._started or not pcm:
            return
        t0 = time.process_time()
        self._decoder.process_raw(pcm, no_search=False, full_utt=False)
        self.cpu_seconds += time.process_time() - t0

    def finish(self) -> str | None:
        """What was heard (lowercase words; fillers and noise dropped), None if the utterance was
        never begun."""
        if not self._started:
            return None
        t0 = time.process_time()
        self._decoder.end_utt()
        self._started = False
        hyp = self._decoder.hyp()
        self.last_score = score_path(self._decoder)
        words = [] if hyp is None or not hyp.hypstr else [
            w.split("(")[0].lower() for w in hyp.hypstr.split() if not w.startswith(("<", "["))]
        self.end_cpu_seconds = time.process_time() - t0
        self.cpu_seconds += self.end_cpu_seconds
        return " ".join(words)

    def cancel(self) -> None:
        if self._started:
            self._decoder.end_utt()
            self._started = False
