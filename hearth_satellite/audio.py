"""Audio on the device: levels and the noise floor, WAV sounds, optional webrtc cleanup."""

from __future__ import annotations

import math
import wave
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SILENCE_DBFS = -96.0  #: the level of digital silence (16-bit)


def mean_square(pcm: bytes) -> float:
    """Mean square of 16-bit PCM, relative to full scale (1.0 = a full-scale square wave)."""
    if len(pcm) < 2:
        return 0.0
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float32) / 32768.0
    return float(np.mean(samples * samples))


def dbfs(ms: float) -> float:
    return max(SILENCE_DBFS, 10.0 * math.log10(ms)) if ms > 0 else SILENCE_DBFS


class LevelMeter:
    """The satellite's own noise floor and the level of recent speech above it.

    The floor follows quiet chunks down at once and rises slowly (0.5 dB a second), so speech
    does not drag it up. A chunk is voiced when it is at least `voiced_margin` dB above the floor.
    :meth:`speech_db` is the RMS of the voiced chunks among the last `window` seconds (all chunks
    when none is voiced) above the floor: what the wake event reports as `speech_db`.
    """

    def __init__(self, chunk_seconds: float = 0.03, window: float = 1.0, voiced_margin: float = 6.0,
                 rise_per_second: float = 0.5) -> None:
        self.floor: float | None = None
        self.voiced_margin = voiced_margin
        self._rise = rise_per_second * chunk_seconds
        self._recent: deque[tuple[float, bool]] = deque(maxlen=max(1, round(window / chunk_seconds)))

    def add(self, pcm: bytes) -> None:
        ms = mean_square(pcm)
        level = dbfs(ms)
        if self.floor is None or level < self.floor:
            self.floor = level
        else:
            self.floor = min(level, self.floor + self._rise)
        self._recent.append((ms, level >= self.floor + self.voiced_margin))

    def speech_db(self) -> float:
        if not self._recent or self.floor is None:
            return 0.0
        voiced = [ms for ms, v in self._recent if v] or [ms for ms, _ in self._recent]
        return round(max(0.0, dbfs(sum(voiced) / len(voiced)) - self.floor), 1)


@dataclass(frozen=True, slots=True)
class Sound:
    """A WAV file to play: 16-bit PCM, any rate, mono (stereo is mixed down)."""

    pcm: bytes
    rate: int

    @classmethod
    def load(cls, path: Path) -> Sound:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise ValueError(f"{path}: only 16-bit WAV files can be played")
            rate, channels = wav.getframerate(), wav.getnchannels()
            pcm = wav.readframes(wav.getnframes())
        if channels > 1:
            samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, channels).astype(np.int32)
            pcm = (samples.sum(axis=1) // channels).astype("<i2").tobytes()
        return cls(pcm, rate)


class Cleanup:
    """webrtc-noise-gain's noise suppression (0-4) and automatic gain (0-31 dBFS target), in
    10 ms steps, as Home Assistant and wyoming-satellite use it. Optional: raises ImportError when
    the package is not installed."""

    def __init__(self, noise_suppression: int, auto_gain: int) -> None:
        from webrtc_noise_gain import AudioProcessor  # optional dependency

        self._processor = AudioProcessor(auto_gain, noise_suppression)
        self._pending = b""

    def process(self, pcm: bytes) -> bytes:
        data = self._pending + pcm
        whole = len(data) - len(data) % 320
        self._pending = data[whole:]
        out = bytearray()
        for i in range(0, whole, 320):
            out += self._processor.Process10ms(data[i:i + 320]).audio
        return bytes(out)
