"""Reading pocketsphinx's answer: the best path's acoustic fit per frame, and whether a word
sequence is a complete sentence of an FSG text.

pocketsphinx scores every frame relative to the best-scoring senone of that frame, so the
grammar path's average per-frame score says how far the forced sentence is from what the audio
sounds like; the decoder rejects on it (:func:`.conditioning.reject_threshold`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pocketsphinx import Decoder

from .text import normalize_text

_NON_WORDS = frozenset({"<sil>", "<s>", "</s>", "(NULL)"})


@dataclass
class UtteranceScore:
    """Acoustic fit of the last utterance (for tuning and diagnostics)."""

    per_frame: float | None = None  # mean distance from the per-frame best score (lower=better)
    worst_word: float | None = None  # the same for the worst-fitting word
    speech_frames: int = 0
    words: list[tuple[str, int, int, float]] = field(default_factory=list)
    span_frames: int = 0  # frames from the first word's start to the last word's end
    frame_scores: list[tuple[int, int, float]] = field(default_factory=list)
    """Every segment of the path, silences included: (start frame, end frame, score)."""

    def score_before(self, frame: int) -> float:
        """The path's score over frames 0 .. `frame` - 1 (a segment across it counted pro rata)."""
        total = 0.0
        for start, end, score in self.frame_scores:
            if end < frame:
                total += score
            elif start < frame:
                total += score * (frame - start) / (end - start + 1)
        return total


def _log_score(decoder: Decoder, density: float) -> float:
    """A segment score back in pocketsphinx log units (the Python API returns densities)."""
    if density <= 0.0:
        return -1e9
    return float(decoder.get_logmath().log(density))


def score_path(decoder: Decoder) -> UtteranceScore:
    """Per-frame acoustic fit of the best path over the span of its words."""
    segments = list(decoder.seg() or ())
    words = [s for s in segments if s.word not in _NON_WORDS and not s.word.startswith("+")]
    if not words:
        return UtteranceScore()
    first, last = words[0].start_frame, words[-1].end_frame
    every = [(s.start_frame, s.end_frame, -_log_score(decoder, s.ascore) / 1000.0) for s in segments]
    word_ids = {id(w) for w in words}
    total = 0.0
    out: list[tuple[str, int, int, float]] = []
    worst = 0.0
    for seg in segments:
        if seg.start_frame < first or seg.end_frame > last:
            continue  # leading / trailing silence says nothing about the words
        score = -_log_score(decoder, seg.ascore) / 1000.0
        total += score
        frames = seg.end_frame - seg.start_frame + 1
        if id(seg) in word_ids:
            out.append((seg.word, seg.start_frame, seg.end_frame, score / frames))
            worst = max(worst, score / frames)
    span = last - first + 1
    speech = sum(w.end_frame - w.start_frame + 1 for w in words)
    return UtteranceScore(per_frame=total / span, worst_word=worst, speech_frames=speech,
                          words=out, span_frames=last - first + 1, frame_scores=every)


Position = tuple[int, tuple[str, ...]]
"""Where a word sequence has got to in an FSG: (state, remaining words of the token being
matched)."""


class SentenceWalker:
    """Follows word sequences through an FSG text (multi-word tokens ``turn_on`` match their
    words in sequence): a prefix can be followed once and continued many ways."""

    def __init__(self, fsg: str) -> None:
        self._trans: dict[int, list[tuple[int, tuple[str, ...]]]] = {}
        self._final = 0
        for line in fsg.splitlines():
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "FINAL_STATE":
                self._final = int(parts[1])
            elif parts[0] == "TRANSITION":
                src, dst = int(parts[1]), int(parts[2])
                words = tuple(parts[4].split("_")) if len(parts) > 4 else ()
                self._trans.setdefault(src, []).append((dst, words))

    def _closure(self, positions: set[Position]) -> frozenset[Position]:
        stack = list(positions)
        while stack:
            state, rest = stack.pop()
            if rest:
                continue
            for dst, words in self._trans.get(state, ()):
                if not words and (dst, ()) not in positions:
                    positions.add((dst, ()))
                    stack.append((dst, ()))
        return frozenset(positions)

    def start(self) -> frozenset[Position]:
        """The positions before any word."""
        return self._closure({(0, ())})

    def advance(self, positions: frozenset[Position], words: list[str] | tuple[str, ...]
                ) -> frozenset[Position]:
        """The positions after `words` (normalised); empty if no sentence goes on that way."""
        for word in words:
            nxt: set[Position] = set()
            for state, rest in positions:
                if rest:
                    if rest[0] == word:
                        nxt.add((state, rest[1:]))
                    continue
                for dst, toks in self._trans.get(state, ()):
                    if toks and toks[0] == word:
                        nxt.add((dst, toks[1:]))
            positions = self._closure(nxt)
            if not positions:
                break
        return positions

    def complete(self, positions: frozenset[Position]) -> bool:
        """True if a sentence of the FSG ends here."""
        return (self._final, ()) in positions


def sentence_checker(fsg: str) -> Callable[[str], bool]:
    """A function telling whether a word sequence is a complete sentence of an FSG text.

    Multi-word tokens (``turn_on``) match their words in sequence.
    """
    walker = SentenceWalker(fsg)

    def accepts(text: str) -> bool:
        return walker.complete(walker.advance(walker.start(), normalize_text(text).split()))

    return accepts
