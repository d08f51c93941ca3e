"""Audio conditioning numbers for the grammar decoder: the comfort-noise floor, the SNR estimate
of held-back audio, and what noise does to the rejection threshold and the cepstral scale.

Pure functions of samples and :class:`~.settings.DecoderSettings`; the decoder applies them.
"""

from __future__ import annotations

import functools

import numpy as np

from .settings import DecoderSettings

SAMPLE_RATE = 16000
_DEFAULTS = DecoderSettings()
_UNIT_NOISE = np.random.default_rng(12345).normal(0.0, 1.0, 16007)  # 1 s (odd length: no 1 s period)


@functools.cache
def comfort_noise(std: float) -> np.ndarray:
    """The fixed noise floor as integer samples, computed once per level (not per chunk): pink
    (power falling 3 dB per octave, like a room; white noise at the same level did worse)."""
    spectrum = np.fft.rfft(_UNIT_NOISE)
    freqs = np.fft.rfftfreq(len(_UNIT_NOISE), 1.0 / SAMPLE_RATE)
    spectrum /= np.sqrt(np.maximum(freqs, 20.0))
    unit = np.fft.irfft(spectrum, len(_UNIT_NOISE))
    unit /= unit.std()
    return np.round(unit * std).astype(np.int32)


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


def reject_threshold(snr_db: float | None, settings: DecoderSettings = _DEFAULTS) -> float:
    """The rejection threshold for an utterance whose held-back audio has this SNR."""
    if snr_db is None:
        return settings.reject_score_per_frame
    return settings.reject_score_per_frame - settings.noisy_slope_per_db * max(
        0.0, settings.noisy_ref_snr_db - snr_db)


def variance_scale(std: list[float], snr_db: float | None,
                   settings: DecoderSettings = _DEFAULTS) -> list[float] | None:
    """Factors for the first cepstra (``cmvn_reference``) given their standard deviation over
    the held-back audio and its estimated SNR: (reference / std) ** w, with w from 0 at
    ``cmvn_snr_from_db`` to 1 at ``cmvn_snr_full_db``, kept within [1, ``cmvn_max_scale``].
    None: leave the features alone (clean audio, no estimate, or ``cmvn`` off)."""
    s = settings
    if not s.cmvn or snr_db is None or snr_db >= s.cmvn_snr_from_db:
        return None
    weight = min(1.0, (s.cmvn_snr_from_db - snr_db) / (s.cmvn_snr_from_db - s.cmvn_snr_full_db))
    return [min(s.cmvn_max_scale, max(1.0, (ref / sd) ** weight)) if sd > 0 else 1.0
            for ref, sd in zip(s.cmvn_reference, std, strict=False)]
