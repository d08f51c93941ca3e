"""The grammar decoder's tunable settings, as one frozen :class:`DecoderSettings`.

Every field was measured on espeak-ng speech (``docs/recognition.md`` holds the runs); the
defaults are what the bridge uses. :class:`~bridge.recognition.decoder.GrammarDecoder` takes one
object; benches and tests try other values with ``dataclasses.replace(DecoderSettings(), ...)``
(``bench/tune_offline.py --set NAME=VALUE`` with the field's upper- or lower-case name).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DecoderSettings:
    """Search beams, rejection, audio conditioning and garbage loop of the grammar decoder."""

    # pocketsphinx search ------------------------------------------------------------------
    beam: float = 1e-48
    """Beam of the HMM search (pocketsphinx ``-beam``)."""
    wbeam: float = 1e-45
    """Word-exit beam (``-wbeam``); pocketsphinx's default 7e-29 let the word-exit pruning kill
    the grammar path under noise."""
    pbeam: float = 1e-48
    """Phone-transition beam (``-pbeam``)."""
    maxhmmpf: int = 3000
    """At most this many HMMs active per frame (``-maxhmmpf``)."""
    lw: float = 6.5
    """Language (here: grammar) weight (``-lw``)."""
    wip: float = 0.65
    """Word insertion penalty (``-wip``)."""
    topn: int = 4
    """Gaussians per codebook scored per frame (``-topn``; pocketsphinx's default 4)."""
    ds: int = 1
    """Compute the Gaussians every ``ds`` frames (``-ds``)."""
    compallsen: bool = False
    """Score every senone in every frame (``-compallsen``), so the per-frame best that the
    rejection score is measured against does not depend on what the search has active."""

    # rejection ------------------------------------------------------------------------------
    reject_score_per_frame: float = 0.0505
    """Reject when the grammar path's mean acoustic score falls this far below the per-frame best
    (pocketsphinx log units / 1000 per 10 ms frame)."""
    noisy_ref_snr_db: float = 30.0
    """Above this estimated SNR the threshold is :attr:`reject_score_per_frame`."""
    noisy_slope_per_db: float = 0.0002
    """Noise makes every path fit better (the per-frame best is less sure of itself), so the
    threshold tightens by this much for every dB the estimated SNR of the held-back audio falls
    below :attr:`noisy_ref_snr_db` (10 dB pink noise: about 0.0475 instead of 0.0505). Measured:
    non-commands in 10 dB noise rejected 21/36 -> 31/36 for one command of 87."""
    min_speech_frames: int = 15
    """A "command" with less than this many 10 ms frames of words (150 ms) is rejected."""

    # audio conditioning ---------------------------------------------------------------------
    comfort_noise_std: float = 100.0
    """Standard deviation (in 16-bit sample units, about -50 dBFS) of the pink noise floor added
    to all audio: digital silence breaks the features."""
    cmn_init: str = "47.95,-9.47,-3.75,8.05,-7.59,-1.49,-4.99,-10.80,-2.89,-4.38,2.07,-1.77,-2.43"
    """Initial cepstral mean: the average batch mean of espeak-ng commands with the comfort noise.
    Used as is when less than :attr:`cmn_min_frames` of audio were held back."""
    cmn_buffer_s: float = 1.3
    """Seconds of audio held back before decoding starts, to choose the warp, estimate the noise
    and the SNR, and compute the cepstral mean (and scale) from."""
    cmn_min_frames: int = 30
    """With less held-back audio than this many frames, keep :attr:`cmn_init`."""
    denoise: bool = True
    """Suppress steady noise before decoding (:mod:`.denoise`), with the noise spectrum estimated
    from the held-back audio."""
    warp_by_pitch: bool = True
    """Choose a VTLN warp per utterance from the speaker's pitch (:mod:`.pitch`), measured on the
    held-back audio before any of it is decoded."""
    pitch_warps: tuple[tuple[float, float], ...] = ((165.0, 1.2),)
    """(minimum median F0 in Hz, warp factor) rows, ascending; below the first row: no warp."""
    cmvn: bool = True
    """Stretch the cepstra back when noise has compressed them (variance normalisation towards
    clean speech): needs Hearth's pocketsphinx build (patch 0003, ``Decoder.set_cmn_scale``); the
    stock wheel decodes without it. Measured ("Noise compresses the cepstra"): at 10 dB SNR +5,
    +12 and +6 commands on the three offline sets, wrong meanings 18 -> 10, clean speech
    unchanged."""
    cmvn_reference: tuple[float, ...] = (12.1, 13.55, 10.26)
    """Standard deviation of c0, c1, c2 over the held-back audio of clean commands: the median
    over six espeak-ng voices on the demo and 300-entity homes, none of which any benchmark
    scores. Only these three are scaled: c0..c3 did worse at 10 dB, c1..c12 much worse."""
    cmvn_snr_from_db: float = 30.0
    """No scaling at or above this estimated SNR (clean espeak-ng reads about 35 dB)."""
    cmvn_snr_full_db: float = 20.0
    """Full scaling at or below this SNR (sox's 10 dB pink noise reads about 15 dB); in between
    the exponent of the ratio grows linearly, so the step is gradual."""
    cmvn_max_scale: float = 2.0
    """Never stretch a dimension by more than this, and never shrink one."""

    # garbage loop ---------------------------------------------------------------------------
    garbage_enter: float = 1e-5
    """Probability of entering the garbage loop (:mod:`.garbage`) from the grammar's start; 0: no
    loop. A best path through the loop is rejected ("garbage"). Measured ("A garbage word loop"):
    over three test sets, wrong actions 70 -> 46, commands understood 684 -> 674 of 783."""
    garbage_words: int = 300
    """How many of the most frequent English words the loop holds."""
