"""Speaker pitch, to choose a vocal-tract-length warp for the acoustic model.

The bundled en-us acoustic model fits adult male voices best. A higher-pitched voice (most women,
children) has a shorter vocal tract, so its formants sit higher; warping the frequency axis
(VTLN, pocketsphinx's ``inverse_linear`` warp) moves them back to where the model expects them.
Measured on espeak-ng voices (see docs/recognition.md): one global warp helps high voices and
hurts low ones, so the warp is chosen per utterance from the median fundamental frequency of its
voiced frames, which separates the two groups by an octave (~100 Hz vs ~210 Hz).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
FRAME = 640  # 40 ms: two periods of a 50 Hz voice
HOP = 320
F0_MIN = 60.0
F0_MAX = 400.0
VOICING = 0.45  # normalised autocorrelation peak a frame needs to count as voiced
MIN_VOICED = 8  # fewer voiced frames than this: no estimate


def median_f0(pcm: bytes, rate: int = SAMPLE_RATE) -> float | None:
    """Median F0 (Hz) of the voiced frames of 16-bit mono `pcm`, or None if too little voice.

    Frames quieter than 20 dB below the loudest frame are skipped (pauses, background noise);
    a frame is voiced when its normalised autocorrelation has a peak ≥ :data:`VOICING` between
    :data:`F0_MIN` and :data:`F0_MAX`.
    """
    x = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float32)
    n = (len(x) - FRAME) // HOP + 1
    if n <= 0:
        return None
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(n)[:, None]
    frames = x[idx]
    frames -= frames.mean(axis=1, keepdims=True)
    energy = (frames**2).mean(axis=1)
    loud = energy >= energy.max() * 0.01
    if not loud.any() or energy.max() <= 0:
        return None
    frames = frames[loud] * np.hanning(FRAME).astype(np.float32)
    spec = np.fft.rfft(frames, 2 * FRAME, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :FRAME]
    lo, hi = int(rate / F0_MAX), int(rate / F0_MIN)
    # unbiased by the window's own autocorrelation, so long lags are not penalised
    window_ac = np.correlate(np.hanning(FRAME), np.hanning(FRAME), "full")[FRAME - 1:]
    norm = ac[:, lo:hi] / np.maximum(ac[:, :1], 1e-9) / (window_ac[lo:hi] / window_ac[0])
    lags = norm.argmax(axis=1)
    peaks = norm[np.arange(len(lags)), lags]
    voiced = peaks >= VOICING
    if int(voiced.sum()) < MIN_VOICED:
        return None
    return float(np.median(rate / (lags[voiced] + lo)))


def warp_for_f0(f0: float | None, table: tuple[tuple[float, float], ...]) -> float | None:
    """The warp factor for a speaker of pitch `f0`: the last (min_f0, warp) row it reaches."""
    if f0 is None:
        return None
    chosen: float | None = None
    for min_f0, warp in table:
        if f0 >= min_f0:
            chosen = warp
    return chosen
