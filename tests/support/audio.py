"""Audio helpers for recognizer tests: 16-bit PCM ⇄ samples, pink noise at a given SNR, and
streaming one utterance through a decoder."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bridge.recognition import DecodeResult, GrammarDecoder


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def pcm16(x: np.ndarray) -> bytes:
    return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()


def pink_noise(n: int, rms: float, seed: int = 7) -> np.ndarray:
    """`n` samples of pink noise (power falling 3 dB per octave) with RMS `rms`."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.normal(size=n))
    spec[1:] /= np.sqrt(np.arange(1, len(spec)))
    noise = np.fft.irfft(spec, n)
    return noise / np.sqrt(np.mean(noise**2)) * rms


def with_pink_noise(pcm: bytes, snr_db: float, seed: int = 7) -> bytes:
    """`pcm` with pink noise `snr_db` below its speech (the RMS of samples louder than 100)."""
    clean = samples(pcm)
    speech_rms = np.sqrt(np.mean(clean[np.abs(clean) > 100] ** 2))
    return pcm16(clean + pink_noise(len(clean), speech_rms / 10 ** (snr_db / 20), seed=seed))


def stream(decoder: GrammarDecoder, pcm: bytes, chunk: int = 960) -> DecodeResult:
    """Stream `pcm` through `decoder` in `chunk`-byte pieces, as the bridge feeds it; its result."""
    decoder.start()
    for i in range(0, len(pcm), chunk):
        decoder.feed(pcm[i:i + chunk])
    return decoder.finish()


def decode_text(decoder: GrammarDecoder, pcm: bytes, chunk: int = 960) -> str:
    """The text `decoder` finds in `pcm`, streamed."""
    return stream(decoder, pcm, chunk).text
