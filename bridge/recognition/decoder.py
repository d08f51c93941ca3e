"""Grammar-constrained decoding with pocketsphinx (runs inside a worker process; synchronous).

Two pocketsphinx searches see the same audio:

* the **grammar** search (the compiled FSG), which always produces *some* sentence;
* a **phone loop** (``allphone`` with ``en-us-phone.lm.bin``), which explains the audio with
  any phone sequence at all.

For speech that really is a command, the grammar path scores almost as well as the free phone
loop; for anything else the grammar has to force a wrong sentence onto the audio and its
acoustic score falls far behind. ``rejected`` is decided from that per-frame score gap (see
:data:`REJECT_GAP_PER_FRAME` and ``docs/recognition.md`` for how it was chosen).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pocketsphinx import Config, Decoder

from .grammar import CompiledGrammar
from .text import normalize_text

SAMPLE_RATE = 16000
FRAME_RATE = 100  # pocketsphinx frames per second

# Tunables (measured on espeak-ng speech; see docs/recognition.md).
BEAM = 1e-48
WBEAM = 7e-29
PBEAM = 1e-48
MAXHMMPF = 3000
LW = 6.5
PHONE_BEAM = 1e-20
PHONE_LW = 2.0
CMN_INIT = "47.95,-9.47,-3.75,8.05,-7.59,-1.49,-4.99,-10.80,-2.89,-4.38,2.07,-1.77,-2.43"
"""Initial cepstral mean: the average batch mean of espeak-ng commands with the comfort noise."""
CMN_RESET = 1  # 1: start every utterance from CMN_INIT instead of the running estimate
WIP = 0.65
REJECT_GAP_PER_FRAME = 0.40  # ascore gap (log base 1.0001, divided by 1000) per speech frame
MIN_SPEECH_FRAMES = 20
COMFORT_NOISE_STD = 30.0  # added to every sample: digital silence breaks pocketsphinx's features


def model_dir() -> Path:
    """The bundled en-us model directory of pocketsphinx."""
    import pocketsphinx

    return Path(pocketsphinx.get_model_path())


@dataclass(frozen=True)
class DecodeResult:
    """The decoder's answer for one utterance."""

    text: str
    confidence: float
    rejected: bool
    audio_seconds: float
    cpu_seconds: float


def _base_config(**extra: object) -> Config:
    config = Config(hmm=str(model_dir() / "en-us" / "en-us"), lm=None, cmninit=CMN_INIT,
                    loglevel="FATAL", **extra)  # type: ignore[arg-type]
    return config


class GrammarDecoder:
    """Decodes 16 kHz s16le mono audio against a :class:`CompiledGrammar`."""

    def __init__(self, grammar: CompiledGrammar, *, reject: bool = True) -> None:
        """Load the bundled en-us acoustic model and the grammar."""
        self._tmp = tempfile.TemporaryDirectory(prefix="hearth-asr-")
        self._reject = reject
        self._grammar: CompiledGrammar | None = None
        self._decoder: Decoder | None = None
        self._phones: Decoder | None = None
        if reject:
            self._phones = Decoder(_base_config(
                allphone=str(model_dir() / "en-us" / "en-us-phone.lm.bin"),
                beam=PHONE_BEAM, pbeam=PHONE_BEAM, lw=PHONE_LW, bestpath=False))
        self._started = False
        self._bytes = 0
        self._cpu = 0.0
        self._pending = b""
        self._noise = np.random.default_rng(12345)
        self.set_grammar(grammar)

    # grammar -------------------------------------------------------------
    def set_grammar(self, grammar: CompiledGrammar) -> None:
        """Switch to another grammar (only between utterances)."""
        if self._started:
            raise RuntimeError("set_grammar called during an utterance")
        base = Path(self._tmp.name)
        dict_path = base / f"{grammar.hash}.dict"
        fsg_path = base / f"{grammar.hash}.fsg"
        with dict_path.open("w", encoding="utf-8") as handle:
            for word, prons in sorted(grammar.dictionary.items()):
                for i, pron in enumerate(prons):
                    name = word if i == 0 else f"{word}({i + 1})"
                    handle.write(f"{name} {pron}\n")
        fsg_path.write_text(grammar.fsg, encoding="utf-8")
        config = _base_config(dict=str(dict_path), fsg=str(fsg_path), beam=BEAM, wbeam=WBEAM,
                              pbeam=PBEAM, maxhmmpf=MAXHMMPF, bestpath=False,
                              lw=LW, wip=WIP)
        self._decoder = Decoder(config)
        for path in (dict_path, fsg_path):
            os.unlink(path)
        self._grammar = grammar
        self._final_words = _final_sentences_checker(grammar)

    # utterance -----------------------------------------------------------
    def start(self) -> None:
        """Begin an utterance."""
        assert self._decoder is not None
        t0 = time.process_time()
        if CMN_RESET:
            self._decoder.set_cmn(CMN_INIT)
        self._decoder.start_utt()
        if self._phones is not None:
            self._phones.start_utt()
        self._cpu = time.process_time() - t0
        self._bytes = 0
        self._pending = b""
        self._noise = np.random.default_rng(12345)
        self._started = True

    def feed(self, pcm: bytes) -> None:
        """Feed audio (16 kHz s16le mono), any chunk size."""
        if not self._started:
            raise RuntimeError("feed called before start")
        data = self._pending + pcm
        usable = len(data) - (len(data) % 2)
        self._pending = data[usable:]
        if not usable:
            return
        t0 = time.process_time()
        assert self._decoder is not None
        chunk = self._condition(data[:usable])
        self._decoder.process_raw(chunk, no_search=False, full_utt=False)
        if self._phones is not None:
            self._phones.process_raw(chunk, no_search=False, full_utt=False)
        self._bytes += usable
        self._cpu += time.process_time() - t0

    def _condition(self, pcm: bytes) -> bytes:
        """Add a fixed low noise floor (about -60 dBFS).

        espeak-ng (and muted or gated microphones) produce exact digital silence; its log energy
        is -inf, which throws off pocketsphinx's cepstral mean normalisation and turned "turn on
        the kitchen light" into "do you know the kitchen light". A -60 dBFS floor is below any
        real room's noise, so real audio is unaffected in practice.
        """
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        samples += self._noise.normal(0.0, COMFORT_NOISE_STD, samples.shape).astype(np.float32)
        return np.clip(samples, -32768, 32767).astype("<i2").tobytes()

    def is_complete(self) -> bool:
        """True if the current partial hypothesis is already a whole sentence of the grammar."""
        if not self._started or self._decoder is None:
            return False
        hyp = self._decoder.hyp()
        if hyp is None or not hyp.hypstr:
            return False
        return self._final_words(hyp.hypstr)

    def finish(self) -> DecodeResult:
        """End the utterance and return the (normalised) text and the rejection decision."""
        if not self._started:
            raise RuntimeError("finish called before start")
        assert self._decoder is not None
        t0 = time.process_time()
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        text = normalize_text(hyp.hypstr) if hyp is not None and hyp.hypstr else ""
        self._last_gap = (None, 0)
        gap, frames = self._score_gap() if text else (None, 0)
        if not text and self._phones is not None:
            self._phones.end_utt()
        self._cpu += time.process_time() - t0
        self._started = False
        audio_seconds = self._bytes / 2 / SAMPLE_RATE
        rejected = not text
        confidence = 0.0
        if text and gap is not None:
            confidence = max(0.0, min(1.0, 1.0 - gap / (2 * REJECT_GAP_PER_FRAME)))
            if self._reject and (gap > REJECT_GAP_PER_FRAME or frames < MIN_SPEECH_FRAMES):
                rejected = True
        elif text:
            confidence = 1.0
        return DecodeResult(text=text, confidence=round(confidence, 3), rejected=rejected,
                            audio_seconds=audio_seconds, cpu_seconds=self._cpu)

    # scoring -------------------------------------------------------------
    def last_gap(self) -> tuple[float | None, int]:
        """(per-frame score gap, speech frames) of the last utterance, for tuning."""
        return self._last_gap

    def _score_gap(self) -> tuple[float | None, int]:
        """Per-frame acoustic score gap (phone loop minus grammar) over the grammar's words."""
        self._last_gap = (None, 0)
        if self._phones is None or self._decoder is None:
            return self._last_gap
        self._phones.end_utt()
        self._last_gap = _gap(self._decoder, self._phones)
        return self._last_gap

    _last_gap: tuple[float | None, int] = (None, 0)

    def close(self) -> None:
        """Release the temporary directory."""
        self._tmp.cleanup()


_NON_WORDS = ("<sil>", "<s>", "</s>", "(NULL)", "SIL")


def _log_score(decoder: Decoder, density: float) -> float:
    """A segment score back in pocketsphinx log units (the Python API returns densities)."""
    if density <= 0.0:
        return -1e9
    return float(decoder.get_logmath().log(density))


def _gap(grammar: Decoder, phones: Decoder) -> tuple[float | None, int]:
    g_score = 0.0
    speech_frames = 0
    first = last = None
    for seg in grammar.seg() or ():
        if seg.word in _NON_WORDS or seg.word.startswith("+"):
            continue
        g_score += _log_score(grammar, seg.ascore)
        speech_frames += seg.end_frame - seg.start_frame + 1
        first = seg.start_frame if first is None else first
        last = seg.end_frame
    if first is None or last is None or speech_frames == 0:
        return None, 0
    p_score = 0.0
    for seg in phones.seg() or ():
        if seg.end_frame < first or seg.start_frame > last:
            continue
        # a phone segment straddling the span counts in proportion to its overlap
        length = seg.end_frame - seg.start_frame + 1
        overlap = min(seg.end_frame, last) - max(seg.start_frame, first) + 1
        p_score += _log_score(phones, seg.ascore) * overlap / length
    span = last - first + 1
    # silence inside the span: the grammar scored it as <sil>; leave those frames to both
    for seg in grammar.seg() or ():
        if seg.word in _NON_WORDS and first <= seg.start_frame and seg.end_frame <= last:
            g_score += _log_score(grammar, seg.ascore)
    gap = (p_score - g_score) / 1000.0 / span
    global LAST_GRAMMAR_PER_FRAME
    LAST_GRAMMAR_PER_FRAME = -g_score / 1000.0 / span
    return gap, speech_frames


LAST_GRAMMAR_PER_FRAME = 0.0


def _final_sentences_checker(grammar: CompiledGrammar):  # type: ignore[no-untyped-def]
    """A function telling whether a word sequence is a complete sentence of the FSG."""
    trans: dict[int, list[tuple[int, str | None]]] = {}
    final = 0
    for line in grammar.fsg.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "FINAL_STATE":
            final = int(parts[1])
        elif parts[0] == "TRANSITION":
            src, dst = int(parts[1]), int(parts[2])
            word = parts[4] if len(parts) > 4 else None
            trans.setdefault(src, []).append((dst, word))

    def closure(states: set[int]) -> set[int]:
        stack = list(states)
        while stack:
            s = stack.pop()
            for dst, word in trans.get(s, ()):
                if word is None and dst not in states:
                    states.add(dst)
                    stack.append(dst)
        return states

    def accepts(text: str) -> bool:
        states = closure({0})
        for word in text.split():
            nxt = {dst for s in states for dst, w in trans.get(s, ()) if w == word}
            if not nxt:
                return False
            states = closure(nxt)
        return final in states

    return accepts
