"""Grammar-constrained decoding with pocketsphinx (runs inside a worker process; synchronous).

The compiled FSG constrains the search, so the decoder always produces *some* sentence of the
grammar. Whether that sentence is believable is decided from its acoustic fit (:mod:`.scoring`):
commands fit closely; other speech ("I think we should order pizza tonight") has to be bent into
a command and fits badly, or goes through the garbage loop (:mod:`.garbage`). ``rejected`` is set
when the fit is worse than ``DecoderSettings.reject_score_per_frame`` (tightened in noise; chosen
on espeak-ng speech, see ``docs/recognition.md``).

Audio conditioning: a fixed pink noise floor at -50 dBFS is added (digital silence breaks the
features); the first ``cmn_buffer_s`` of audio are held back to choose a VTLN warp from the
speaker's pitch, estimate the noise spectrum for the suppressor and the SNR, and compute the
cepstral mean, and in noise a scale for c0..c2 (``cmvn``), before any of it is decoded.

All settings come in one :class:`~.settings.DecoderSettings`. The decoder does no file I/O of
its own: :class:`DecoderInputs` brings the acoustic model's directory, the garbage loop's words
and a function that puts the grammar's dictionary and FSG text into files pocketsphinx reads
(:mod:`bridge.resources` makes all three).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from pocketsphinx import Config, Decoder

from . import garbage
from .conditioning import (
    SAMPLE_RATE,
    comfort_noise,
    estimate_snr,
    reject_threshold,
    variance_scale,
)
from .denoise import Denoiser, estimate_noise
from .fsg import JOIN
from .grammar import CompiledGrammar
from .pitch import median_f0, warp_for_f0
from .scoring import SentenceWalker, UtteranceScore, score_path
from .settings import DecoderSettings
from .text import normalize_text

__all__ = ["HAS_CMN_SCALE", "PATCHED_BUILD_MARK", "SAMPLE_RATE", "DecodeResult", "DecoderInputs",
           "DecoderSettings", "GrammarDecoder", "UtteranceScore", "WriteFiles",
           "pocketsphinx_build"]

_DEFAULTS = DecoderSettings()
_CMN_PRIOR_FRAMES = 500
"""pocketsphinx's live CMN weighs the mean it was given as this many frames (its CMN_WIN)."""

PATCHED_BUILD_MARK = "+hearth."
"""Local version label of pocketsphinx built with Hearth's patches (third_party/pocketsphinx)."""

HAS_CMN_SCALE = hasattr(Decoder, "set_cmn_scale") and hasattr(Decoder, "get_cmn_stats")
"""Hearth's pocketsphinx build (third_party/pocketsphinx, patch 0003); PyPI's wheel lacks it."""


def pocketsphinx_build() -> str:
    """The installed pocketsphinx's version: "5.1.1" for PyPI's wheel, "5.1.1+hearth.1.p<hash of
    the patches>" for the patched build (about half the decoding CPU, cepstral statistics and
    scale, a warp fix; third_party/pocketsphinx/README.md)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pocketsphinx")
    except PackageNotFoundError:  # imported from a source tree
        return "unknown"


WriteFiles = Callable[[Mapping[str, str]], AbstractContextManager[Mapping[str, str]]]
"""Given file name -> text, a context that has written each text to a private file and yields
file name -> path; the files are gone when it exits (:class:`bridge.resources.GrammarFiles`)."""


@dataclass(frozen=True)
class DecoderInputs:
    """What the decoder needs from outside recognition/ (:func:`bridge.resources.decoder_inputs`)."""

    acoustic_model: str
    """Directory of the acoustic model (pocketsphinx's bundled en-us), read by pocketsphinx."""
    frequent_words: garbage.FrequentWords
    """Candidates for the garbage loop with their pronunciations, most frequent first."""
    write_files: WriteFiles
    """Puts the grammar's dictionary and FSG into files for pocketsphinx, deleted afterwards."""


@dataclass(frozen=True)
class DecodeResult:
    """The decoder's answer for one utterance."""

    text: str
    confidence: float
    rejected: bool
    audio_seconds: float
    cpu_seconds: float
    reject_reason: str | None = None
    """Why it was rejected: "no_path" (no sentence of the grammar fits), "garbage" (ordinary English
    outside the grammar fits better, :mod:`.garbage`), "short" (less than ``min_speech_frames`` of
    words) or "score" (the acoustic fit is below the threshold)."""
    threshold: float = _DEFAULTS.reject_score_per_frame
    """The rejection threshold used for this utterance (tightened in noise)."""


def dictionary_text(grammar: CompiledGrammar, frequent: garbage.FrequentWords,
                    loop: list[str]) -> str:
    """The pronunciation dictionary pocketsphinx reads: the grammar's tokens (every variant)
    and the garbage loop's words."""
    lines = [f"{word if i == 0 else f'{word}({i + 1})'} {pron}\n"
             for word, prons in sorted(grammar.dictionary.items())
             for i, pron in enumerate(prons)]
    lines += [line + "\n" for line in garbage.dictionary_lines(frequent, loop)]
    return "".join(lines)


def garbage_words(grammar: CompiledGrammar, frequent: garbage.FrequentWords,
                  count: int) -> list[str]:
    """The garbage loop's words for `grammar`: the `count` most frequent words the grammar does
    not use (with them, commands lost more in noise at no better rejection)."""
    exclude = frozenset(w for token in grammar.dictionary for w in token.split(JOIN))
    return garbage.loop_words(frequent, count, exclude)


class Follower(Protocol):
    """A second decoder that follows this one (:class:`.openear.OpenEar`)."""

    def begin(self, cmn: str, scale: list[float] | None, warp: str | None) -> None: ...
    def feed(self, pcm: bytes) -> None: ...


class GrammarDecoder:
    """Decodes 16 kHz s16le mono audio against a :class:`CompiledGrammar`."""

    def __init__(self, grammar: CompiledGrammar, inputs: DecoderInputs,
                 settings: DecoderSettings = _DEFAULTS) -> None:
        """Load the acoustic model of `inputs` and the grammar."""
        self.settings = settings
        self._inputs = inputs
        self._decoder: Decoder | None = None
        self._main_search = ""
        self._accepts: Callable[[str], bool] = lambda _text: False
        self._started = False
        self._decoding = False
        self._bytes = 0
        self._cpu = 0.0
        self._pending = b""
        self._noise_pos = 0
        self._audio: list[bytes] = []
        self._raw: list[bytes] = []  # held-back audio before conditioning
        self._prime = b""
        self._raw_prime = b""
        self._denoiser: Denoiser | None = None
        self.grammar: CompiledGrammar | None = None
        self.last_f0: float | None = None  # the speaker's median pitch in the last utterance (Hz)
        self.last_warp: float | None = None  # the VTLN warp chosen for it (None: none)
        self.last_snr: float | None = None  # the SNR estimated on its held-back audio (dB)
        self.last_scale: list[float] | None = None  # the factors for c0.. (None: none)
        self.last_score = UtteranceScore()
        self.last_rescore_cpu = 0.0  # CPU seconds of :meth:`rescore` since the utterance began
        self._cmn_used = settings.cmn_init
        self._scale_used: list[float] | None = None
        self._rival = ""
        self.last_tokens: list[str] = []  # the last utterance's tokens (``turn_on``), if a command
        self.last_token_frames: list[int] = []  # and the frames each one spans
        self.known_tokens: frozenset[str] = frozenset()
        self.walker: SentenceWalker | None = None  # follows word sequences through the grammar
        #: a second decoder handed the same conditioned audio and normalisation (the open ear)
        self.follower: Follower | None = None
        self._followed = -1  # chunks of ``_audio`` the follower has had (-1: not begun)
        self.set_grammar(grammar)

    def _config(self, dict_path: str, fsg_path: str) -> Config:
        s = self.settings
        # (pocketsphinx's own remove_noise is whatever the model's feat.params says: on)
        return Config(hmm=self._inputs.acoustic_model, lm=None, cmninit=s.cmn_init,
                      loglevel="FATAL",
                      dict=dict_path, fsg=fsg_path, beam=s.beam, wbeam=s.wbeam, pbeam=s.pbeam,
                      maxhmmpf=s.maxhmmpf, lw=s.lw, wip=s.wip, topn=s.topn, ds=s.ds,
                      bestpath=False, compallsen=s.compallsen)

    def set_grammar(self, grammar: CompiledGrammar) -> None:
        """Switch to another grammar (only between utterances)."""
        if self._started:
            raise RuntimeError("set_grammar called during an utterance")
        s, frequent = self.settings, self._inputs.frequent_words
        loop = garbage_words(grammar, frequent, s.garbage_words) if s.garbage_enter > 0 else []
        # a one-word search, used to compute features (the cepstral mean) of held-back audio
        # without paying for a search of the real grammar
        probe_word = min(grammar.dictionary)
        texts = {
            f"{grammar.hash}.dict": dictionary_text(grammar, frequent, loop),
            f"{grammar.hash}.fsg": garbage.add_garbage_loop(grammar.fsg, s.garbage_enter, loop),
            "probe.fsg": (f"FSG_BEGIN probe\nNUM_STATES 2\nSTART_STATE 0\nFINAL_STATE 1\n"
                          f"TRANSITION 0 1 1.0 {probe_word}\nFSG_END\n"),
        }
        with self._inputs.write_files(texts) as paths:
            decoder = Decoder(self._config(paths[f"{grammar.hash}.dict"],
                                           paths[f"{grammar.hash}.fsg"]))
            self._main_search = decoder.current_search()
            decoder.add_fsg("probe", decoder.read_fsg(paths["probe.fsg"]))
        self._decoder = decoder
        self._rival = ""
        self.grammar = grammar
        self.known_tokens = frozenset(grammar.dictionary)
        walker = self.walker = SentenceWalker(grammar.fsg)
        self._accepts = lambda text: walker.complete(
            walker.advance(walker.start(), normalize_text(text).split()))

    # utterance -----------------------------------------------------------
    def start(self) -> None:
        """Begin an utterance."""
        assert self._decoder is not None
        t0 = time.process_time()
        # a fresh feature pipeline: the live CMN's running sums (not only its mean) would
        # otherwise carry the previous utterance into this one
        self._decoder.reinit_feat()
        self._decoder.set_cmn(self.settings.cmn_init)
        self._cpu = time.process_time() - t0
        self._bytes = 0
        self._pending = b""
        self._noise_pos = 0
        self._audio = []
        self._raw = []
        self._prime = b""
        self._raw_prime = b""
        self._denoiser = None
        self._decoding = False
        self.last_f0 = self.last_warp = None
        self.last_snr = None
        self.last_scale = None
        self.last_rescore_cpu = 0.0
        self._cmn_used, self._scale_used = self.settings.cmn_init, None
        self._followed = -1
        self._started = True

    def prime(self, pcm: bytes) -> None:
        """Audio from just before the utterance (e.g. the wake word itself), used only to
        estimate the cepstral mean, never decoded. Same speaker, microphone and room: with it the
        estimate no longer depends on how much silence precedes the command. Before any feed."""
        if not self._started or self._bytes:
            raise RuntimeError("prime must come right after start")
        usable = len(pcm) - len(pcm) % 2
        self._raw_prime = pcm[:usable]  # conditioned (and cleaned) with the held-back audio

    def feed(self, pcm: bytes) -> None:
        """Feed audio (16 kHz s16le mono), any chunk size; decodes as it arrives."""
        if not self._started:
            raise RuntimeError("feed called before start")
        data = self._pending + pcm
        usable = len(data) - (len(data) % 2)
        self._pending = data[usable:]
        if not usable:
            return
        assert self._decoder is not None
        t0 = time.process_time()
        self._bytes += usable
        if not self._decoding:
            self._raw.append(data[:usable])
            if (len(self._raw_prime) + self._bytes
                    >= self.settings.cmn_buffer_s * 2 * SAMPLE_RATE):
                self._begin_buffered()
            self._cpu += time.process_time() - t0
            return
        if self._denoiser is not None:
            conditioned = self._condition(self._denoiser.process(data[:usable]))
        else:
            conditioned = self._condition(data[:usable])
        if conditioned:  # the noise suppressor may hold a short chunk back
            self._audio.append(conditioned)
            self._decoder.process_raw(conditioned, no_search=False, full_utt=False)
        self._cpu += time.process_time() - t0
        self._feed_follower()

    def _feed_follower(self) -> None:
        """Hand the follower the audio decoded since the last call (outside this decoder's CPU)."""
        follower = self.follower
        if follower is None or self._decoder is None or (not self._decoding and self._started):
            return
        if self._followed < 0:
            follower.begin(self._cmn_used, self._scale_used, self._decoder.config["warp_params"])
            self._followed = 0
        for chunk in self._audio[self._followed:]:
            follower.feed(chunk)
        self._followed = len(self._audio)

    def _audio_mean(self, pcm: bytes) -> tuple[list[float], list[float] | None]:
        """The cepstral mean of `pcm` (features only, no search), and the standard deviation of
        its cepstra (None with a pocketsphinx that cannot tell: PyPI's wheel)."""
        assert self._decoder is not None
        dec = self._decoder
        dec.activate_search("probe")
        dec.reinit_feat()
        dec.set_cmn(",".join("0" for _ in self.settings.cmn_init.split(",")))
        dec.start_utt()
        dec.process_raw(pcm, no_search=True, full_utt=False)
        std = dec.get_cmn_stats()[2] if HAS_CMN_SCALE else None
        upd = [float(x) for x in dec.get_cmn(True).split(",")]
        dec.end_utt()
        dec.activate_search(self._main_search)
        n = max(1, len(pcm) // 2 // 160)
        return [u * (_CMN_PRIOR_FRAMES + n) / n for u in upd], std

    def _normalise_from(self, estimate: bytes) -> list[float] | None:
        """A fresh feature pipeline whose cepstral mean (and, in noise, scale: ``cmvn``) come
        from `estimate`; ``cmn_init`` if it is too short. Returns the scale set, if any."""
        assert self._decoder is not None
        cmn, scale = self.settings.cmn_init, None
        if len(estimate) >= 2 * 160 * self.settings.cmn_min_frames:
            mean, std = self._audio_mean(estimate)
            cmn = ",".join(f"{m:.3f}" for m in mean)
            if std is not None:
                scale = variance_scale(std, self.last_snr, self.settings)
        self._decoder.reinit_feat()
        self._decoder.set_cmn(cmn)
        if scale is not None:
            self._decoder.set_cmn_scale(scale)
        self._cmn_used, self._scale_used = cmn, scale
        return scale

    def _set_warp(self, warp: float | None) -> None:
        """Warp the spectrum by `warp` (None: no warp) from the next features on."""
        assert self._decoder is not None
        value = str(warp) if warp is not None else None
        if self._decoder.config["warp_params"] != value:
            self._decoder.config["warp_type"] = "inverse_linear"
            self._decoder.config["warp_params"] = value
            self._decoder.reinit_feat()

    def _begin_buffered(self) -> None:
        """Once enough audio is held back: choose the warp, estimate the noise, clean and
        condition the held-back audio, and start decoding it with its own mean."""
        raw = b"".join(self._raw)
        self._raw = []
        prime = self._raw_prime
        held = prime + raw
        self.last_snr = estimate_snr(held, floor_std=self.settings.comfort_noise_std)
        noise = estimate_noise(held) if self.settings.denoise else None
        if noise is not None:
            if prime:
                once = Denoiser(noise)
                prime = once.process(prime) + once.flush()
            self._denoiser = Denoiser(noise)
            raw = self._denoiser.process(raw)
        self._prime = self._condition(prime) if prime else b""
        conditioned = self._condition(raw)
        self._audio = [conditioned]
        self._restart_with_mean(conditioned)

    def _restart_with_mean(self, pcm: bytes) -> None:
        assert self._decoder is not None
        estimate = self._prime + pcm
        if self.settings.warp_by_pitch:
            self.last_f0 = median_f0(estimate)
            self.last_warp = warp_for_f0(self.last_f0, self.settings.pitch_warps)
            self._set_warp(self.last_warp)
        self.last_scale = self._normalise_from(estimate)
        self._decoder.start_utt()
        if pcm:
            self._decoder.process_raw(pcm, no_search=False, full_utt=False)
        self._decoding = True

    def _condition(self, pcm: bytes) -> bytes:
        """Add a fixed low noise floor (pink, about -50 dBFS; ``comfort_noise_std``).

        espeak-ng (and muted or gated microphones) produce exact digital silence, whose log
        energy is -inf; that throws pocketsphinx's features off ("turn on the kitchen light"
        came out as "do you know the kitchen light"). The model was trained on recordings with a
        room behind them, so pauses and stop closures are given one: pink (a room's spectrum;
        white noise at the same level did worse, see docs/recognition.md) at -50 dBFS, which a
        real room's own noise hardly changes.
        """
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
        n = len(samples)
        noise = comfort_noise(self.settings.comfort_noise_std)
        idx = (np.arange(n) + self._noise_pos) % len(noise)
        self._noise_pos = (self._noise_pos + n) % len(noise)
        samples += noise[idx]
        return np.clip(samples, -32768, 32767).astype("<i2").tobytes()

    def is_complete(self) -> bool:
        """True if the current partial hypothesis is already a whole sentence of the grammar."""
        if not self._started or self._decoder is None or not self._decoding:
            return False  # still holding audio back for the cepstral mean
        hyp = self._decoder.hyp()
        if hyp is None or not hyp.hypstr:
            return False
        return self._accepts(hyp.hypstr)

    def finish(self) -> DecodeResult:
        """End the utterance; return the normalised text and the rejection decision."""
        if not self._started:
            raise RuntimeError("finish called before start")
        assert self._decoder is not None
        t0 = time.process_time()
        if not self._decoding:
            self._begin_buffered()
        if self._denoiser is not None:
            tail = self._condition(self._denoiser.flush())
            if tail:
                self._audio.append(tail)
                self._decoder.process_raw(tail, no_search=False, full_utt=False)
            self._denoiser = None
        self._decoder.end_utt()
        self._started = False
        hyp = self._decoder.hyp()
        hypstr = hyp.hypstr if hyp is not None and hyp.hypstr else ""
        # a best path through the loop is ordinary English outside the grammar: not a command
        in_loop = garbage.is_garbage(hypstr)
        text = "" if in_loop else normalize_text(hypstr)
        score = score_path(self._decoder) if text else UtteranceScore()
        self.last_score = score
        self.last_tokens = hypstr.split() if text else []
        self.last_token_frames = [end - start + 1 for _w, start, end, _s in score.words]
        reason: str | None = "garbage" if in_loop else "no_path"
        confidence = 0.0
        threshold = reject_threshold(self.last_snr, self.settings)
        if text and score.per_frame is not None:
            # 1.0 for a perfect fit, 0.5 at the threshold, 0.0 at twice the threshold
            confidence = max(0.0, min(1.0, 1.0 - score.per_frame / (2 * threshold)))
            reason = ("short" if score.speech_frames < self.settings.min_speech_frames
                      else "score" if score.per_frame > threshold else None)
        self._cpu += time.process_time() - t0
        self._feed_follower()
        return DecodeResult(text=text, confidence=round(confidence, 3), rejected=reason is not None,
                            audio_seconds=self._bytes / 2 / SAMPLE_RATE, cpu_seconds=self._cpu,
                            reject_reason=reason, threshold=threshold)

    def rescore(self, transitions: Sequence[tuple[int, int, float, str] | tuple[int, int, float]],
                final: int) -> tuple[str, float]:
        """Decode the utterance just finished again, against a small FSG given as `transitions`
        (start state 0, final state `final`; words must be tokens of the grammar, a transition
        without one is a null transition), with the same features (warp, cepstral mean and
        scale): its best hypothesis as pocketsphinx spells it ("" if none) and that path's score
        (log units). Nothing touches disk; the main search is active again afterwards. Costs one
        more pass of the acoustic model and a small search (about 0.008 s per audio second on
        the 300-entity home; a lattice and its n-best list would cost 5-10 times that)."""
        if self._started or self._decoder is None:
            raise RuntimeError("rescore needs a finished utterance")
        t0 = time.process_time()
        dec = self._decoder
        if self._rival:
            dec.remove_search(self._rival)
        dec.add_fsg("rival", dec.create_fsg("rival", 0, final, list(transitions)))
        self._rival = "rival"
        try:
            dec.activate_search("rival")
            dec.reinit_feat()
            dec.set_cmn(self._cmn_used)
            if self._scale_used is not None:
                dec.set_cmn_scale(self._scale_used)
            dec.start_utt()
            for chunk in self._audio:
                dec.process_raw(chunk, no_search=False, full_utt=False)
            dec.end_utt()
            hyp = dec.hyp()
            text = hyp.hypstr if hyp is not None and hyp.hypstr else ""
            score = float(dec.get_logmath().log(hyp.best_score)) if text and hyp is not None \
                and hyp.best_score > 0 else -1e12
        finally:
            dec.activate_search(self._main_search)
            self.last_rescore_cpu += time.process_time() - t0
        return text, score

    def close(self) -> None:
        """Release the pocketsphinx decoder (it holds no files: they were deleted after loading)."""
        self._decoder = None
