"""Grammar-constrained decoding with pocketsphinx (runs inside a worker process; synchronous).

The compiled FSG constrains the search, so the decoder always produces *some* sentence of the
grammar. Whether that sentence is believable is decided from its acoustic fit: pocketsphinx
scores every frame relative to the best-scoring senone of that frame, so the grammar path's
average per-frame score says how far the forced sentence is from what the audio sounds like.
Commands fit closely; other speech ("I think we should order pizza tonight") has to be bent into
a command and fits badly. ``rejected`` is set when the fit is worse than
:data:`REJECT_SCORE_PER_FRAME` (chosen on espeak-ng speech, see ``docs/recognition.md``; a
parallel phone-loop decoder was measured too and did no better at twice the CPU).

Audio conditioning ("buffer" mode, the default): a fixed pink noise floor at -50 dBFS is added
(digital silence breaks the features); the first :data:`CMN_BUFFER_S` of audio are held back to
choose a VTLN warp from the speaker's pitch, estimate the noise spectrum for the suppressor and the
SNR, and compute the cepstral mean, and in noise a scale for c0..c2 (:data:`CMVN`), before any of
it is decoded.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pocketsphinx import Config, Decoder

from . import garbage
from .denoise import Denoiser, estimate_noise
from .grammar import JOIN, CompiledGrammar
from .pitch import median_f0, warp_for_f0
from .text import normalize_text

SAMPLE_RATE = 16000

# Tunables (measured on espeak-ng speech; see docs/recognition.md).
BEAM = 1e-48
WBEAM = 1e-45  # 7e-29 (default) let the word-exit pruning kill the grammar path under noise
PBEAM = 1e-48
MAXHMMPF = 3000
LW = 6.5
WIP = 0.65
REJECT_SCORE_PER_FRAME = 0.0505
"""Reject when the grammar path's mean acoustic score falls this far below the per-frame best
(pocketsphinx log units / 1000 per 10 ms frame)."""
COMPALLSEN = False
"""Score every senone in every frame, so the per-frame best that the rejection score is measured
against does not depend on what the search has active."""
NOISY_REF_SNR_DB = 30.0
NOISY_SLOPE_PER_DB = 0.0002
"""Noise makes every path fit better (the per-frame best is less sure of itself), so the
threshold tightens by NOISY_SLOPE_PER_DB for every dB the estimated SNR of the held-back audio
falls below NOISY_REF_SNR_DB (10 dB pink noise: about 0.0475 instead of 0.0505). Measured:
non-commands in 10 dB noise rejected 21/36 -> 31/36 for one command of 87 (docs/recognition.md)."""
TOPN = 4  # Gaussians per codebook per frame (pocketsphinx default 4)
DS = 1  # compute Gaussians every DS frames
MIN_SPEECH_FRAMES = 15  # a "command" shorter than 150 ms of words is rejected
COMFORT_NOISE_STD = 100.0
CMN_INIT = "47.95,-9.47,-3.75,8.05,-7.59,-1.49,-4.99,-10.80,-2.89,-4.38,2.07,-1.77,-2.43"
"""Initial cepstral mean: the average batch mean of espeak-ng commands with the comfort noise."""
CMN_RESET = True  # start every utterance from CMN_INIT instead of the running estimate
REMOVE_NOISE = False  # the adaptive noise estimate carries over between utterances
CMN_MODE = "buffer"  # "prior" | "twopass" | "buffer"
CMN_BUFFER_S = 1.3  # "buffer": audio held back to estimate the cepstral mean before decoding
CMN_PRIOR_FRAMES = 500  # pocketsphinx's live CMN weighs the mean it was given as this many frames
CMN_BLEND = 1.0
CMN_MIN_FRAMES = 30  # less audio than this: keep CMN_INIT
WIDE_BEAM = 1e-80
WIDE_WBEAM = 1e-60
WIDE_MAXHMMPF = 20000
WARP_PARAMS: float | None = None  # VTLN warp factor (inverse_linear: f / warp); None = off
VERIFY_WARP: float | None = None  # measured with 1.1: see docs (off: CPU +25-55 %, little gain)
"""Second opinion for doubtful results: an accepted result below :data:`VERIFY_BELOW` confidence is
decoded once more with the spectrum warped by this factor (VTLN, inverse_linear); if the two
readings differ in meaning, it is rejected (a wrong action is worse than asking again)."""
VERIFY_BELOW = 0.58
DENOISE = True
"""Suppress steady noise before decoding ("buffer" mode; :mod:`.denoise`), with the noise spectrum
estimated from the held-back audio."""
HMM_DIR: str | None = None  # another acoustic model directory (tuning experiments)
WARP_BY_PITCH = True
"""Choose a VTLN warp per utterance from the speaker's pitch (:mod:`.pitch`), measured on the audio
held back for the cepstral mean ("buffer" mode) before any of it is decoded."""
PITCH_WARPS: tuple[tuple[float, float], ...] = ((165.0, 1.2),)
"""(minimum median F0 in Hz, warp factor) rows, ascending; below the first row: no warp."""
_VERIFY_IGNORE = frozenset({"the", "a", "an", "my", "our", "in", "on", "of", "at", "all"})
GARBAGE_ENTER = 1e-5
"""Probability of entering the garbage loop (:mod:`.garbage`) from the grammar's start; 0: no loop.
A best path through the loop is rejected ("garbage"). Measured (docs/recognition.md, "A garbage
word loop"): over three test sets, wrong actions 70 -> 46, commands understood 684 -> 674 of 783."""
GARBAGE_WORDS = 300
"""How many of the most frequent English words the loop holds."""
CMVN = True
"""Stretch the cepstra back when noise has compressed them (variance normalisation towards clean
speech): needs Hearth's pocketsphinx build (patch 0003, ``Decoder.set_cmn_scale``); the stock
wheel decodes without it. Measured (docs/recognition.md, "Noise compresses the cepstra"): at 10 dB
SNR +5, +12 and +6 commands on the three offline sets, wrong meanings 18 -> 10, clean speech
unchanged."""
CMVN_REFERENCE: tuple[float, ...] = (12.1, 13.55, 10.26)
"""Standard deviation of c0, c1, c2 over the held-back audio of clean commands: the median over
six espeak-ng voices (en-gb-x-rp, en-gb-x-gbclan, en-us+m1, +m4, +f1, +f4) on the demo and
300-entity homes, none of which any benchmark scores. Only these three are scaled: c0..c3 did
worse at 10 dB on both sets it was tried on, c1..c12 much worse (75 -> 52 of 87)."""
CMVN_SNR_FROM_DB = 30.0
"""No scaling at or above this estimated SNR (clean espeak-ng reads about 35 dB)."""
CMVN_SNR_FULL_DB = 20.0
"""Full scaling at or below this SNR (sox's 10 dB pink noise reads about 15 dB); in between the
exponent of the ratio grows linearly, so the step is gradual."""
CMVN_MAX_SCALE = 2.0
"""Never stretch a dimension by more than this, and never shrink one."""
FALLBACK_WIDE = False
"""Decode once more with wide beams when no path reached the end of the grammar. Measured
(docs/recognition.md, "Decoding CPU"): +1 command of 87 at 10 dB on the accuracy home, none on
the other sets, one more wrong meaning and one more non-command acted on; +10-20 % CPU."""

_UNIT_NOISE = np.random.default_rng(12345).normal(0.0, 1.0, 16007)  # 1 s (odd length: no 1 s period)


COMFORT_NOISE_COLOR = "pink"
"""Spectrum of the noise floor: "white", or "pink" (power falling 3 dB per octave, like a room)."""


@functools.cache
def _comfort_noise(std: float, color: str = "white") -> np.ndarray:
    """The fixed noise floor as integer samples, computed once per level (not per chunk)."""
    unit = _UNIT_NOISE
    if color == "pink":
        spectrum = np.fft.rfft(unit)
        freqs = np.fft.rfftfreq(len(unit), 1.0 / SAMPLE_RATE)
        spectrum /= np.sqrt(np.maximum(freqs, 20.0))
        unit = np.fft.irfft(spectrum, len(unit))
        unit /= unit.std()
    return np.round(unit * std).astype(np.int32)

_NON_WORDS = frozenset({"<sil>", "<s>", "</s>", "(NULL)"})


PATCHED_BUILD_MARK = "+hearth."
"""Local version label of pocketsphinx built with Hearth's patches (third_party/pocketsphinx)."""


def pocketsphinx_build() -> str:
    """The installed pocketsphinx's version: "5.1.1" for PyPI's wheel, "5.1.1+hearth.1.p<hash of
    the patches>" for the patched build (about half the decoding CPU, cepstral statistics and
    scale, a warp fix; third_party/pocketsphinx/README.md)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pocketsphinx")
    except PackageNotFoundError:  # imported from a source tree
        return "unknown"


def model_dir() -> Path:
    """The bundled model directory of pocketsphinx."""
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
    reject_reason: str | None = None
    threshold: float = REJECT_SCORE_PER_FRAME
    """The rejection threshold used for this utterance (tightened in noise)."""
    """Why it was rejected: "no_path" (no sentence of the grammar fits), "garbage" (ordinary English
    outside the grammar fits better, :mod:`.garbage`), "short" (less than MIN_SPEECH_FRAMES of
    words), "score" (the acoustic fit is below the threshold) or "verify"."""


@dataclass
class UtteranceScore:
    """Acoustic fit of the last utterance (for tuning and diagnostics)."""

    per_frame: float | None = None  # mean distance from the per-frame best score (lower=better)
    worst_word: float | None = None  # the same for the worst-fitting word
    speech_frames: int = 0
    words: list[tuple[str, int, int, float]] = field(default_factory=list)


def _config(**extra: object) -> Config:
    if WARP_PARAMS is not None:
        extra.setdefault("warp_type", "inverse_linear")
        extra.setdefault("warp_params", str(WARP_PARAMS))
    hmm = HMM_DIR or str(model_dir() / "en-us" / "en-us")
    return Config(hmm=hmm, lm=None, cmninit=CMN_INIT,
                  remove_noise=REMOVE_NOISE,
                  loglevel="FATAL", **extra)


def variance_scale(std: list[float], snr_db: float | None) -> list[float] | None:
    """Factors for the first cepstra (:data:`CMVN_REFERENCE`) given their standard deviation over
    the held-back audio and its estimated SNR: (reference / std) ** w, with w from 0 at
    :data:`CMVN_SNR_FROM_DB` to 1 at :data:`CMVN_SNR_FULL_DB`, kept within [1,
    :data:`CMVN_MAX_SCALE`]. None: leave the features alone (clean audio, or no estimate)."""
    if not CMVN or snr_db is None or snr_db >= CMVN_SNR_FROM_DB:
        return None
    weight = min(1.0, (CMVN_SNR_FROM_DB - snr_db) / (CMVN_SNR_FROM_DB - CMVN_SNR_FULL_DB))
    return [min(CMVN_MAX_SCALE, max(1.0, (ref / sd) ** weight)) if sd > 0 else 1.0
            for ref, sd in zip(CMVN_REFERENCE, std, strict=False)]


HAS_CMN_SCALE = hasattr(Decoder, "set_cmn_scale") and hasattr(Decoder, "get_cmn_stats")
"""Hearth's pocketsphinx build (third_party/pocketsphinx, patch 0003); PyPI's wheel lacks it."""


class GrammarDecoder:
    """Decodes 16 kHz s16le mono audio against a :class:`CompiledGrammar`."""

    def __init__(self, grammar: CompiledGrammar) -> None:
        """Load the bundled en-us acoustic model and the grammar."""
        self._tmp = tempfile.TemporaryDirectory(prefix="hearth-asr-")
        self._decoder: Decoder | None = None
        self._accepts: Callable[[str], bool] = lambda _text: False
        self._started = False
        self._wide: bool | None = None
        self._bytes = 0
        self._cpu = 0.0
        self._pending = b""
        self._noise_pos = 0
        self.grammar: CompiledGrammar | None = None
        self.meaning_key: Callable[[str], object] | None = None
        """What two readings must share to agree (see :data:`VERIFY_WARP`); set it to the intent
        recognizer's meaning (intent, entities, slot values) where one is at hand. Default: the
        words without articles / possessives / prepositions and without spaces."""
        self.last_verify: str | None = None  # the second reading of the last utterance, if any
        self.last_f0: float | None = None  # the speaker's median pitch in the last utterance (Hz)
        self.last_warp: float | None = None  # the VTLN warp chosen for it (None: none)
        self.last_snr: float | None = None  # the SNR estimated on its held-back audio (dB)
        self.last_scale: list[float] | None = None  # the factors for c0.. (None: none)
        self.last_score = UtteranceScore()
        self.set_grammar(grammar)

    def set_grammar(self, grammar: CompiledGrammar) -> None:
        """Switch to another grammar (only between utterances)."""
        if self._started:
            raise RuntimeError("set_grammar called during an utterance")
        base = Path(self._tmp.name)
        dict_path = base / f"{grammar.hash}.dict"
        fsg_path = base / f"{grammar.hash}.fsg"
        loop = _garbage_words(grammar) if GARBAGE_ENTER > 0 else []
        with dict_path.open("w", encoding="utf-8") as handle:
            for word, prons in sorted(grammar.dictionary.items()):
                for i, pron in enumerate(prons):
                    handle.write(f"{word if i == 0 else f'{word}({i + 1})'} {pron}\n")
            for line in garbage.dictionary_lines(loop):
                handle.write(line + "\n")
        fsg_text = garbage.add_garbage_loop(grammar.fsg, GARBAGE_ENTER, loop)
        fsg_path.write_text(fsg_text, encoding="utf-8")
        try:
            self._decoder = Decoder(_config(
                dict=str(dict_path), fsg=str(fsg_path), beam=BEAM, wbeam=WBEAM, pbeam=PBEAM,
                maxhmmpf=MAXHMMPF, lw=LW, wip=WIP, topn=TOPN, ds=DS, bestpath=False,
                compallsen=COMPALLSEN))
        finally:
            for path in (dict_path, fsg_path):
                path.unlink(missing_ok=True)
        # a one-word search, used to compute features (the cepstral mean) of held-back audio
        # without paying for a search of the real grammar
        probe_word = min(grammar.dictionary)
        probe_path = base / "probe.fsg"
        probe_path.write_text(f"FSG_BEGIN probe\nNUM_STATES 2\nSTART_STATE 0\nFINAL_STATE 1\n"
                              f"TRANSITION 0 1 1.0 {probe_word}\nFSG_END\n", encoding="utf-8")
        try:
            self._main_search = self._decoder.current_search()
            self._decoder.add_fsg("probe", self._decoder.read_fsg(str(probe_path)))
            # the fallback search: same grammar, wide beams (beams are read when a search is made)
            conf = self._decoder.config
            saved = {k: conf[k] for k in ("beam", "wbeam", "pbeam", "maxhmmpf")}
            conf["beam"], conf["wbeam"], conf["pbeam"], conf["maxhmmpf"] = (
                WIDE_BEAM, WIDE_WBEAM, WIDE_BEAM, WIDE_MAXHMMPF)
            fsg_path.write_text(fsg_text, encoding="utf-8")
            self._decoder.add_fsg("wide", self._decoder.read_fsg(str(fsg_path)))
            for key, value in saved.items():
                conf[key] = value
            self._wide = True
        finally:
            probe_path.unlink(missing_ok=True)
            fsg_path.unlink(missing_ok=True)
        self.grammar = grammar
        self._accepts = sentence_checker(grammar.fsg)

    # utterance -----------------------------------------------------------
    def start(self) -> None:
        """Begin an utterance."""
        assert self._decoder is not None
        t0 = time.process_time()
        if CMN_RESET:
            # a fresh feature pipeline: the live CMN's running sums (not only its mean) would
            # otherwise carry the previous utterance into this one
            self._decoder.reinit_feat()
            self._decoder.set_cmn(CMN_INIT)
        if CMN_MODE != "buffer":
            self._decoder.start_utt()
        self._cpu = time.process_time() - t0
        self._bytes = 0
        self._pending = b""
        self._noise_pos = 0
        self._audio: list[bytes] = []
        self._raw: list[bytes] = []  # "buffer" mode: held-back audio before conditioning
        self._prime = b""
        self._raw_prime = b""
        self._denoiser: Denoiser | None = None
        self._decoding = CMN_MODE != "buffer"
        self.last_f0 = self.last_warp = None
        self.last_snr = None
        self.last_scale = None
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
            if len(self._raw_prime) + self._bytes >= CMN_BUFFER_S * 2 * SAMPLE_RATE:
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

    def _agree(self, text: str, other: str) -> bool:
        if self.meaning_key is not None:
            try:
                return bool(other) and self.meaning_key(text) == self.meaning_key(other)
            except Exception:  # noqa: BLE001 - a failing hook must not break decoding
                return text == other

        def key(t: str) -> str:
            return "".join(w for w in t.split() if w not in _VERIFY_IGNORE)
        return bool(other) and key(text) == key(other)

    def _verify(self, pcm: bytes) -> str:
        """The grammar's reading of `pcm` with the spectrum warped by VERIFY_WARP."""
        assert self._decoder is not None
        dec = self._decoder
        conf = dec.config
        saved = (conf["warp_type"], conf["warp_params"])
        conf["warp_type"], conf["warp_params"] = "inverse_linear", str(VERIFY_WARP)
        try:  # _normalise_from starts a fresh feature pipeline with the warp just set
            self._normalise_from(self._prime + pcm[: int(CMN_BUFFER_S * 2 * SAMPLE_RATE)])
            dec.start_utt()
            dec.process_raw(pcm, no_search=False, full_utt=False)
            dec.end_utt()
            hyp = dec.hyp()
            return normalize_text(hyp.hypstr) if hyp is not None and hyp.hypstr else ""
        finally:
            conf["warp_type"], conf["warp_params"] = saved
            dec.reinit_feat()

    def _wide_retry(self, pcm: bytes) -> tuple[str, UtteranceScore]:
        """The best sentence with wide beams and its score (taken while that search is active:
        segments belong to the active search)."""
        assert self._decoder is not None and self._wide is not None
        dec = self._decoder
        dec.activate_search("wide")
        try:
            dec.reinit_feat()
            dec.set_cmn(dec.get_cmn(False))
            dec.start_utt()
            dec.process_raw(pcm, no_search=False, full_utt=False)
            dec.end_utt()
            hyp = dec.hyp()
            if hyp is None or not hyp.hypstr:
                return "", UtteranceScore()
            return hyp.hypstr, _score(dec)
        finally:
            dec.activate_search(self._main_search)

    def _audio_mean(self, pcm: bytes) -> tuple[list[float], list[float] | None]:
        """The cepstral mean of `pcm` (features only, no search), and the standard deviation of
        its cepstra (None with a pocketsphinx that cannot tell: PyPI's wheel)."""
        assert self._decoder is not None
        dec = self._decoder
        init = [float(x) for x in CMN_INIT.split(",")]
        dec.activate_search("probe")
        dec.reinit_feat()
        dec.set_cmn(",".join("0" for _ in init))
        dec.start_utt()
        dec.process_raw(pcm, no_search=True, full_utt=False)
        std = dec.get_cmn_stats()[2] if HAS_CMN_SCALE else None
        upd = [float(x) for x in dec.get_cmn(True).split(",")]
        dec.end_utt()
        dec.activate_search(self._main_search)
        n = max(1, len(pcm) // 2 // 160)
        mean = [u * (CMN_PRIOR_FRAMES + n) / n for u in upd]
        return [CMN_BLEND * m + (1 - CMN_BLEND) * i for m, i in zip(mean, init, strict=True)], std

    def _normalise_from(self, estimate: bytes) -> list[float] | None:
        """A fresh feature pipeline whose cepstral mean (and, in noise, scale: :data:`CMVN`) come
        from `estimate`; CMN_INIT if it is too short. Returns the scale set, if any."""
        assert self._decoder is not None
        cmn, scale = CMN_INIT, None
        if len(estimate) >= 2 * 160 * CMN_MIN_FRAMES:
            mean, std = self._audio_mean(estimate)
            cmn = ",".join(f"{m:.3f}" for m in mean)
            if std is not None:
                scale = variance_scale(std, self.last_snr)
        self._decoder.reinit_feat()
        self._decoder.set_cmn(cmn)
        if scale is not None:
            self._decoder.set_cmn_scale(scale)
        return scale

    def _set_warp(self, warp: float | None) -> None:
        """Warp the spectrum by `warp` (None: the configured default) from the next features on."""
        assert self._decoder is not None
        value = str(warp) if warp is not None else (
            str(WARP_PARAMS) if WARP_PARAMS is not None else None)
        if self._decoder.config["warp_params"] != value:
            self._decoder.config["warp_type"] = "inverse_linear"
            self._decoder.config["warp_params"] = value
            self._decoder.reinit_feat()

    def _begin_buffered(self) -> None:
        """"buffer" mode, once enough audio is held back: choose the warp, estimate the noise,
        clean and condition the held-back audio, and start decoding it with its own mean."""
        raw = b"".join(self._raw)
        self._raw = []
        prime = self._raw_prime
        held = prime + raw
        self.last_snr = estimate_snr(held, floor_std=COMFORT_NOISE_STD)
        noise = estimate_noise(held) if DENOISE else None
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
        if WARP_BY_PITCH:
            self.last_f0 = median_f0(estimate)
            self.last_warp = warp_for_f0(self.last_f0, PITCH_WARPS)
            self._set_warp(self.last_warp)
        self.last_scale = self._normalise_from(estimate)
        self._decoder.start_utt()
        if pcm:
            self._decoder.process_raw(pcm, no_search=False, full_utt=False)
        self._decoding = True

    def _condition(self, pcm: bytes) -> bytes:
        """Add a fixed low noise floor (pink, about -50 dBFS; :data:`COMFORT_NOISE_STD`).

        espeak-ng (and muted or gated microphones) produce exact digital silence, whose log
        energy is -inf; that throws pocketsphinx's features off ("turn on the kitchen light"
        came out as "do you know the kitchen light"). The model was trained on recordings with a
        room behind them, so pauses and stop closures are given one: pink (a room's spectrum;
        white noise at the same level did worse, see docs/recognition.md) at -50 dBFS, which a
        real room's own noise hardly changes.
        """
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
        n = len(samples)
        noise = _comfort_noise(COMFORT_NOISE_STD, COMFORT_NOISE_COLOR)
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
        if CMN_MODE == "twopass" and self._audio:
            self._restart_with_mean(b"".join(self._audio))
            self._decoder.end_utt()
        self._started = False
        hyp = self._decoder.hyp()
        hypstr = hyp.hypstr if hyp is not None and hyp.hypstr else ""
        wide: UtteranceScore | None = None
        if not hypstr and FALLBACK_WIDE and self._audio:
            # no path reached the end of the grammar: decode once more with wide beams
            hypstr, wide = self._wide_retry(b"".join(self._audio))
        # a best path through the loop is ordinary English outside the grammar: not a command
        in_loop = garbage.is_garbage(hypstr)
        text = "" if in_loop else normalize_text(hypstr)
        if not text:
            score = UtteranceScore()
        else:
            score = wide if wide is not None else _score(self._decoder)
        self.last_score = score
        reason: str | None = "garbage" if in_loop else "no_path"
        confidence = 0.0
        self.last_verify = None
        threshold = reject_threshold(self.last_snr)
        if text and score.per_frame is not None:
            # 1.0 for a perfect fit, 0.5 at the threshold, 0.0 at twice the threshold
            confidence = max(0.0, min(1.0, 1.0 - score.per_frame / (2 * threshold)))
            reason = ("short" if score.speech_frames < MIN_SPEECH_FRAMES
                      else "score" if score.per_frame > threshold else None)
            if reason is None and VERIFY_WARP is not None and confidence < VERIFY_BELOW:
                self.last_verify = other = self._verify(b"".join(self._audio))
                if not self._agree(text, other):
                    reason = "verify"
                    confidence = min(confidence, 0.49)
        self._cpu += time.process_time() - t0
        return DecodeResult(text=text, confidence=round(confidence, 3), rejected=reason is not None,
                            audio_seconds=self._bytes / 2 / SAMPLE_RATE, cpu_seconds=self._cpu,
                            reject_reason=reason, threshold=threshold)

    def close(self) -> None:
        """Release the decoder's temporary directory."""
        self._tmp.cleanup()


def _garbage_words(grammar: CompiledGrammar) -> list[str]:
    """The garbage loop's words for `grammar`: frequent words the grammar does not use (with
    them, commands lost more in noise at no better rejection; docs/recognition.md)."""
    exclude = frozenset(w for token in grammar.dictionary for w in token.split(JOIN))
    return garbage.loop_words(GARBAGE_WORDS, exclude)


def reject_threshold(snr_db: float | None) -> float:
    """The rejection threshold for an utterance whose held-back audio has this SNR."""
    if snr_db is None:
        return REJECT_SCORE_PER_FRAME
    return REJECT_SCORE_PER_FRAME - NOISY_SLOPE_PER_DB * max(0.0, NOISY_REF_SNR_DB - snr_db)


def estimate_snr(pcm: bytes, floor_std: float = 0.0) -> float | None:
    """Speech-to-noise ratio (dB) of 16 kHz s16le audio: the loud frames (95th percentile of
    20 ms frame energies) against the quiet ones (15th percentile), the quiet ones counted at
    least as loud as the noise floor the decoder adds (`floor_std`). None for under 0.3 s."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    frames = len(samples) // 320
    if frames < 15:
        return None
    power = np.mean(samples[: frames * 320].reshape(frames, 320) ** 2, axis=1)
    level = 10.0 * np.log10(power + 1e-9)
    noise = max(float(np.percentile(level, 15)), 20.0 * float(np.log10(max(floor_std, 1e-3))))
    return float(np.percentile(level, 95)) - noise


def _log_score(decoder: Decoder, density: float) -> float:
    """A segment score back in pocketsphinx log units (the Python API returns densities)."""
    if density <= 0.0:
        return -1e9
    return float(decoder.get_logmath().log(density))


def _score(decoder: Decoder) -> UtteranceScore:
    """Per-frame acoustic fit of the best path over the span of its words."""
    segments = list(decoder.seg() or ())
    words = [s for s in segments if s.word not in _NON_WORDS and not s.word.startswith("+")]
    if not words:
        return UtteranceScore()
    first, last = words[0].start_frame, words[-1].end_frame
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
                          words=out)


def sentence_checker(fsg: str) -> Callable[[str], bool]:
    """A function telling whether a word sequence is a complete sentence of an FSG text.

    Multi-word tokens (``turn_on``) match their words in sequence.
    """
    trans: dict[int, list[tuple[int, tuple[str, ...]]]] = {}
    final = 0
    for line in fsg.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "FINAL_STATE":
            final = int(parts[1])
        elif parts[0] == "TRANSITION":
            src, dst = int(parts[1]), int(parts[2])
            words = tuple(parts[4].split("_")) if len(parts) > 4 else ()
            trans.setdefault(src, []).append((dst, words))

    # a position is (state, remaining words of the token being matched)
    Position = tuple[int, tuple[str, ...]]

    def closure(positions: set[Position]) -> set[Position]:
        stack = list(positions)
        while stack:
            state, rest = stack.pop()
            if rest:
                continue
            for dst, words in trans.get(state, ()):
                if not words and (dst, ()) not in positions:
                    positions.add((dst, ()))
                    stack.append((dst, ()))
        return positions

    def accepts(text: str) -> bool:
        positions = closure({(0, ())})
        for word in normalize_text(text).split():
            nxt: set[Position] = set()
            for state, rest in positions:
                if rest:
                    if rest[0] == word:
                        nxt.add((state, rest[1:]))
                    continue
                for dst, words in trans.get(state, ()):
                    if words and words[0] == word:
                        nxt.add((dst, words[1:]))
            positions = closure(nxt)
            if not positions:
                return False
        return (final, ()) in positions

    return accepts
