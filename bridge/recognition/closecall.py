"""Close calls: whether the words that carry a command's meaning were heard clearly enough to act.

The grammar search returns one sentence; a wrong action happens when another sentence with a
different meaning fits the audio almost as well ("set a timer for five minutes" / "... twenty
minutes", "the guest room" / "the bedside lamp"). After the intent is known, :func:`review` takes
the words of its meaning-carrying slots (names, areas, floors, numbers), builds a small FSG that is
the decoded sentence with each such slot replaced by every rival of its kind that makes a sentence
of the grammar there (names, areas and floors of the home; the numbers 0-100), decodes the same audio against it once more
(:meth:`.decoder.GrammarDecoder.rescore`: a small search), then once per slot with the readings
of the chosen meaning left out, and compares the best reading with the best reading of a
*different meaning* (aliases of one entity are one meaning). If that rival is within
:attr:`CloseCallSettings.margin_per_frame` per frame of the slot's words, or if the second pass
prefers another meaning outright, the answer is "not understood" with reason ``close_call``.
Commands with numbers (timers, brightness, positions, temperatures, volumes) also need more
decoder confidence than plain on/off (``number_unsure``), values nobody asks for (a 93-hour
timer) more still (``unlikely_value``), and questions about the home a little more
(``question_unsure``): those templates are where chatter ends up.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from . import garbage
from .fsg import JOIN
from .intents import HARMLESS_INTENTS, IntentMatch
from .scoring import SentenceWalker
from .templates import INTENT_DOMAINS
from .text import normalize_words, number_words
from .verdict import VerdictSettings
from .vocabulary import Vocabulary

NAME_SLOTS = frozenset({"name", "area", "floor"})
NUMBER_SLOTS = frozenset({"brightness", "position", "temperature", "volume_level", "volume",
                          "percentage", "hours", "minutes", "seconds"})
TIMER_INTENTS = frozenset({"HassStartTimer", "HassCancelTimer", "HassIncreaseTimer",
                           "HassDecreaseTimer", "HassPauseTimer", "HassUnpauseTimer",
                           "HassCancelAllTimers"})
ACTING_INTENTS = (frozenset(INTENT_DOMAINS) - {"HassClimateGetTemperature"}) | TIMER_INTENTS
"""Intents that change something: only these are rescored (a question's wrong answer acts on
nothing, and the second pass costs CPU)."""

QUESTION_INTENTS = frozenset({"HassGetState", "HassClimateGetTemperature", "HassTimerStatus"})
"""Questions about the home: chatter bends into their long, varied templates easily; a wrong
answer acts on nothing but says something untrue, so they need a little more confidence
(``question_unsure``) and no second pass."""

Key = tuple[str, str]

"""The meaning of a slot's words: ("entity", sorted ids) / ("area", id) / ("floor", id) /
("number", value)."""


CloseCallSettings = VerdictSettings
"""The review's thresholds live in the verdict's one settings object (margin_per_frame,
number_min_confidence, number_clear_margin, unlikely_min_confidence, max_timer_seconds,
question_min_confidence; chosen on tuning voices only, docs/recognition.md "Close calls")."""

_DEFAULTS = CloseCallSettings()


class Rescorer(Protocol):
    """What :func:`review` needs from the decoder (:class:`.decoder.GrammarDecoder`)."""

    @property
    def last_tokens(self) -> list[str]: ...
    @property
    def last_token_frames(self) -> list[int]: ...
    @property
    def known_tokens(self) -> frozenset[str]: ...
    @property
    def walker(self) -> SentenceWalker | None: ...

    def rescore(self, transitions: list[Transition], final: int) -> tuple[str, float]: ...


@dataclass(frozen=True)
class Review:
    """Why a reading must not be acted on (`unsure`: a reason code, None: it may be)."""

    unsure: str | None = None
    detail: str = ""
    margin: float | None = None
    """Per-frame score gap to the best reading of another meaning (None: none was found)."""
    rival: str = ""
    """That reading's text."""
    cpu_seconds: float = 0.0


class Alternatives:
    """Every reading of each kind of slot in one home, with its meaning."""

    def __init__(self, vocab: Vocabulary) -> None:
        names: dict[tuple[str, ...], Key] = {}
        by_form: dict[tuple[str, ...], set[str]] = {}
        for entity in vocab.entities:
            for text in (entity.name, *entity.aliases):
                by_form.setdefault(tuple(normalize_words(text)), set()).add(entity.id)
        for form, ids in by_form.items():
            names[form] = ("entity", ",".join(sorted(ids)))
        for area in vocab.areas:
            for text in (area.name, *area.aliases):
                names.setdefault(tuple(normalize_words(text)), ("area", area.id))
        for floor in vocab.floors:
            for text in (floor.name, *floor.aliases):
                names.setdefault(tuple(normalize_words(text)), ("floor", floor.id))
        self.names = {form: key for form, key in names.items() if form}
        self.numbers = {tuple(number_words(n)): ("number", str(n)) for n in range(101)}

    def of(self, slot: str) -> Mapping[tuple[str, ...], Key]:
        return self.names if slot in NAME_SLOTS else self.numbers


def unlikely(match: IntentMatch, settings: CloseCallSettings = _DEFAULTS) -> bool:
    """A value nobody asks for: a timer longer than ``max_timer_seconds``, one of hours, minutes
    and seconds all at once, or 60 or more of a unit beside a larger one ("ten hours eighty four
    minutes")."""
    if match.name not in TIMER_INTENTS:
        return False
    parts: dict[str, int] = {}
    for slot in ("hours", "minutes", "seconds"):
        value = match.slots.get(slot)
        if value is not None:
            try:
                parts[slot] = int(float(str(value.value)))
            except ValueError:
                return True
    seconds = parts.get("hours", 0) * 3600 + parts.get("minutes", 0) * 60 + parts.get("seconds", 0)
    return (seconds > settings.max_timer_seconds or len(parts) == 3
            or ("hours" in parts and parts.get("minutes", 0) >= 60)
            or (len(parts) > 1 and parts.get("seconds", 0) >= 60))


def _spans(words: Sequence[str], match: IntentMatch) -> list[tuple[int, int, str]]:
    """(first word, end word, slot) of each meaning-carrying slot found in `words`."""
    found: list[tuple[int, int, str]] = []
    for slot, value in match.slots.items():
        if slot not in NAME_SLOTS and slot not in NUMBER_SLOTS:
            continue
        target = value.text.split()
        if not target:
            continue
        for i in range(len(words) - len(target) + 1):
            if list(words[i:i + len(target)]) == target and not any(
                    i < e and s < i + len(target) for s, e, _ in found):
                found.append((i, i + len(target), slot))
                break
    return sorted(found)


Transition = tuple[int, int, float, str] | tuple[int, int, float]
"""An FSG transition: (from, to, probability, token), or without a token: a null transition."""
Unit = tuple[str, ...] | dict[tuple[str, ...], tuple[Key, tuple[str, ...]]]
"""A fixed run of tokens, or a slot: its readings (words) with their meanings and tokens."""


def _tokens_for(words: tuple[str, ...], known: frozenset[str]) -> tuple[str, ...] | None:
    joined = JOIN.join(words)
    if joined in known:
        return (joined,)
    if all(w in known for w in words):
        return words
    return None


def rival_graph(tokens: Sequence[str], spans: list[tuple[int, int, str]],
                alternatives: Alternatives, known: frozenset[str],
                walker: SentenceWalker | None = None
                ) -> list[Unit] | None:
    """The decoded sentence (`tokens`, multi-word tokens joined by ``_``) with each span's words
    replaced by every reading of its kind that makes a sentence of the grammar (`walker`; the
    other spans keep their words), as units for :func:`transitions`; None if a span's own words
    cannot be said with the grammar's tokens. The chosen reading comes first in its unit."""
    token_words = [t.split(JOIN) for t in tokens]
    words = [w for parts in token_words for w in parts]
    owner = [next((k for k, (s, e, _) in enumerate(spans) if s <= i < e), None)
             for i in range(len(words))]
    # per span: the first pass's own tokens for it, if the span is made of whole tokens
    own: dict[int, list[str]] = {}
    units: list[tuple[str, ...] | int] = []  # an int: the span of that number
    pos = 0
    for token, parts in zip(tokens, token_words, strict=True):
        idx = range(pos, pos + len(parts))
        pos += len(parts)
        kinds = {owner[i] for i in idx}
        if kinds == {None}:
            units.append((token,))
            continue
        if len(kinds) == 1:
            (k,) = kinds
            assert k is not None
            own.setdefault(k, []).append(token)
            if not units or units[-1] != k:
                units.append(k)
            continue
        for i, word in zip(idx, parts, strict=True):  # a token across a span's edge
            k = owner[i]
            if k is None:
                if word not in known:
                    return None
                units.append((word,))
            else:
                own[k] = []  # not whole tokens
                if not units or units[-1] != k:
                    units.append(k)
    out: list[Unit] = []
    for unit in units:
        if isinstance(unit, tuple):
            out.append(unit)
            continue
        start, end, slot = spans[unit]
        chosen = tuple(words[start:end])
        readings = alternatives.of(slot)
        if chosen not in readings:
            return None
        chosen_tokens = _tokens_for(chosen, known) or tuple(own.get(unit, ()))
        if not chosen_tokens:
            return None
        before, after = words[:start], words[end:]
        fits: Callable[[tuple[str, ...]], bool] = lambda _r: True
        if walker is not None:
            prefix = walker.advance(walker.start(), before)
            fits = lambda r: walker.complete(walker.advance(walker.advance(prefix, r), after))  # noqa: E731
        slot_unit = {chosen: (readings[chosen], chosen_tokens)}
        for reading, key in readings.items():
            if reading != chosen and (toks := _tokens_for(reading, known)) is not None \
                    and fits(reading):
                slot_unit[reading] = (key, toks)
        out.append(slot_unit)
    return out


def _anything(_key: Key) -> bool:
    return True


def _other_than(meaning: Key) -> Callable[[Key], bool]:
    return lambda key: key != meaning


def transitions(units: list[Unit], keep: Mapping[int, Callable[[Key], bool]] | None = None
                ) -> tuple[list[Transition], int]:
    """FSG transitions (start state 0) and final state for `units`; `keep` restricts the readings
    of the slot units it names (by their index among the slot units). Every reading keeps the
    probability it has with all readings (1 / their number), so that path scores of two such
    FSGs differ only in what the audio says."""
    out: list[Transition] = []
    state, fresh, slot_index = 0, 1, 0
    for unit in units:
        if isinstance(unit, tuple):
            for token in unit:
                out.append((state, fresh, 1.0, token))
                state, fresh = fresh, fresh + 1
            continue
        share = 1.0 / len(unit)
        wanted: Callable[[Key], bool] = (keep or {}).get(slot_index, _anything)
        slot_index += 1
        join = fresh
        fresh += 1
        for key, toks in unit.values():
            if not wanted(key):
                continue
            # each reading ends in a state of its own, joined to the rest by a null transition:
            # pocketsphinx keeps one history entry per state and frame (readings ending in one
            # state would leave only the best one behind)
            src, prob = state, share
            for token in toks:
                out.append((src, fresh, prob, token))
                src, prob, fresh = fresh, 1.0, fresh + 1
            out.append((src, join, 1.0))
        state = join
    return out, state


def parse(words: Sequence[str], units: list[Unit]) -> tuple[Key, ...] | None:
    """The meaning of each slot in a sentence of :func:`rival_graph`'s FSG (None: not one)."""
    def walk(i: int, u: int) -> tuple[Key, ...] | None:
        if u == len(units):
            return () if i == len(words) else None
        unit = units[u]
        if isinstance(unit, tuple):
            flat = [w for t in unit for w in t.split(JOIN)]
            if list(words[i:i + len(flat)]) != flat:
                return None
            return walk(i + len(flat), u + 1)
        for reading, (key, _tokens) in unit.items():
            if tuple(words[i:i + len(reading)]) == reading:
                rest = walk(i + len(reading), u + 1)
                if rest is not None:
                    return (key, *rest)
        return None
    return walk(0, 0)


def hyp_words(hypstr: str) -> list[str]:
    """A second-pass hypothesis as words (multi-word tokens split; loop words kept whole)."""
    return [w for token in hypstr.split()
            for w in ([token] if token.startswith(garbage.PREFIX) else token.split(JOIN))]


def review(decoder: Rescorer, match: IntentMatch, confidence: float,
           alternatives: Alternatives, settings: CloseCallSettings = _DEFAULTS) -> Review:
    """Whether `match` (the intent of the decoder's last utterance, heard with `confidence`)
    may be acted on; see the module docstring."""
    if match.name in QUESTION_INTENTS and confidence < settings.question_min_confidence:
        return Review("question_unsure", f"a question heard with confidence {confidence:.2f} "
                      f"< {settings.question_min_confidence}")
    if match.name in HARMLESS_INTENTS or match.name not in ACTING_INTENTS:
        return Review()
    numeric = any(s in NUMBER_SLOTS for s in match.slots)
    unsure_number = numeric and confidence < settings.number_min_confidence
    if unlikely(match, settings) and confidence < settings.unlikely_min_confidence:
        return Review("unlikely_value", f"an unusual value heard with confidence "
                      f"{confidence:.2f} < {settings.unlikely_min_confidence}")
    started = time.process_time()
    words = match.text.split()
    spans = _spans(words, match)
    units = rival_graph(decoder.last_tokens, spans, alternatives, decoder.known_tokens,
                        decoder.walker) if spans else None
    if units is None:
        if unsure_number:
            return Review("number_unsure", f"a number heard with confidence {confidence:.2f} "
                          f"< {settings.number_min_confidence}", cpu_seconds=time.process_time() - started)
        return Review(cpu_seconds=time.process_time() - started)
    chosen = parse(words, units)
    assert chosen is not None  # the chosen readings are in the units by construction
    # every reading at once (pocketsphinx scores each frame against the best senone the search
    # has active, so only searches over nearly the same readings give comparable scores)
    best_text, best_score = decoder.rescore(*transitions(units))
    best = parse(hyp_words(best_text), units) if best_text else None
    if best != chosen:
        text = " ".join(hyp_words(best_text))
        return Review("close_call", f"the second pass prefers {text!r}" if best_text
                      else "the second pass found no reading", 0.0, text,
                      time.process_time() - started)
    # per slot, the best reading with another meaning there (the other slots free)
    closest: tuple[float, str] | None = None
    for k, (start, end, _slot) in enumerate(spans):
        fsg, final = transitions(units, {k: _other_than(chosen[k])})
        text, score = decoder.rescore(fsg, final)
        if not text:
            continue  # no other reading survived the search: far off
        margin = (best_score - score) / 1000.0 / max(1, _span_frames(decoder, [(start, end, "")]))
        if closest is None or margin < closest[0]:
            closest = (margin, " ".join(hyp_words(text)))
    cpu = time.process_time() - started
    if closest is None:
        return Review(cpu_seconds=cpu)
    margin, rival = closest
    if margin < settings.margin_per_frame:
        return Review("close_call", f"{rival!r} scores within {margin:.4f} per frame", margin,
                      rival, cpu)
    if unsure_number and margin < settings.number_clear_margin:
        return Review("number_unsure", f"a number heard with confidence {confidence:.2f} "
                      f"< {settings.number_min_confidence}, {rival!r} within {margin:.4f} per frame",
                      margin, rival, cpu)
    return Review(None, "", margin, rival, cpu)


def _span_frames(decoder: Rescorer, spans: list[tuple[int, int, str]]) -> int:
    """Frames of the first pass's tokens that hold the spans' words."""
    frames = 0
    pos = 0
    for token, n in zip(decoder.last_tokens, decoder.last_token_frames, strict=False):
        width = len(token.split(JOIN))
        if any(pos < e and s < pos + width for s, e, _ in spans):
            frames += n
        pos += width
    return frames


class Reviewer:
    """:func:`review` for one home (its readings built once, next to its intent recognizer)."""

    def __init__(self, vocab: Vocabulary, settings: CloseCallSettings = _DEFAULTS) -> None:
        self.alternatives = Alternatives(vocab)
        self.settings = settings
        self.last = Review()

    def bind(self, decoder: Rescorer, confidence: float) -> Callable[[IntentMatch], IntentMatch]:
        """A function marking a match of `decoder`'s last utterance ``unsure`` when it is."""
        def judge(match: IntentMatch) -> IntentMatch:
            self.last = review(decoder, match, confidence, self.alternatives, self.settings)
            if self.last.unsure is None:
                return match
            return dataclasses.replace(match, unsure=self.last.unsure)
        return judge
