"""Sample-format conversion with numpy (Python 3.13 has no audioop)."""

from __future__ import annotations

import numpy as np

TARGET_RATE = 16000


def to_mono_int16(data: bytes, width: int, channels: int) -> np.ndarray:
    """Interleaved little-endian PCM of `width` bytes per sample → mono int16 samples."""
    if width == 1:  # WAV 8-bit is unsigned
        samples = (np.frombuffer(data, dtype=np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(data, dtype="<i2").astype(np.int32)
    elif width == 3:
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        samples = (raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16))
        samples = np.where(samples & 0x800000, samples - 0x1000000, samples) >> 8
    elif width == 4:
        samples = np.frombuffer(data, dtype="<i4").astype(np.int64) >> 16
    else:
        raise ValueError(f"unsupported sample width {width} bytes")
    if channels > 1:
        usable = len(samples) - len(samples) % channels
        samples = samples[:usable].reshape(-1, channels).mean(axis=1)
    return np.clip(samples, -32768, 32767).astype(np.int16)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Linear-interpolation resampling of int16 mono samples (adequate for speech)."""
    if rate_in == rate_out or len(samples) == 0:
        return samples.astype(np.int16, copy=False)
    n_out = int(round(len(samples) * rate_out / rate_in))
    if n_out <= 0:
        return np.zeros(0, dtype=np.int16)
    x_out = np.arange(n_out, dtype=np.float64) * (rate_in / rate_out)
    out = np.interp(x_out, np.arange(len(samples), dtype=np.float64), samples.astype(np.float64))
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def convert(data: bytes, rate: int, width: int, channels: int, rate_out: int = TARGET_RATE) -> bytes:
    """Any PCM → mono 16-bit at `rate_out`, as bytes."""
    return resample(to_mono_int16(data, width, channels), rate, rate_out).tobytes()


def resample_pcm16(pcm: bytes, rate_in: int, rate_out: int) -> bytes:
    """Mono 16-bit PCM bytes from one rate to another."""
    return resample(np.frombuffer(pcm, dtype="<i2"), rate_in, rate_out).tobytes()
