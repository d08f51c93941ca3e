"""End-of-speech detection: pymicro-vad plus frame energy plus the recognizer's own view.

pymicro-vad keeps reporting speech for 0.35-0.65 s after speech really ends, so a VAD silence
tail alone adds most of a second to every answer. Frame energy drops the moment the talker stops;
an adaptive noise floor keeps it usable with a humming fridge. When the recognizer says its partial
hypothesis is already a complete command, an even shorter tail suffices. The VAD tail stays as the
fallback for rooms too noisy for energy, and a hard maximum bounds every utterance.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

FRAME_MS = 10
FRAME_BYTES = 320  # 10 ms at 16 kHz, 16-bit mono


class EndReason(enum.StrEnum):
    SILENCE = "silence"
    COMPLETE = "complete"
    VAD = "vad"
    MAX_LENGTH = "max_length"
    NO_SPEECH = "no_speech"


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    silence_tail: float = 0.30
    complete_tail: float = 0.10
    vad_tail: float = 0.70
    max_utterance: float = 8.0
    no_speech_timeout: float = 4.0
    vad_threshold: float = 0.5
    min_speech: float = 0.15


def frame_dbfs(frame: bytes) -> float:
    """The level of 16-bit PCM in dB relative to full scale (-120 for digital silence)."""
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    if samples.size == 0:
        return -120.0
    power = float(np.dot(samples, samples)) / samples.size
    return 10 * math.log10(power / 1073741824.0) if power > 0 else -120.0


class Endpointer:
    """Fed one 10 ms frame at a time; says when the utterance has ended and why."""

    def __init__(self, settings: EndpointSettings) -> None:
        self.s = settings
        self.elapsed_ms = 0
        self.speech_ms = 0
        self.in_speech = False
        self.energy_silence_ms = 0
        self.vad_silence_ms = 0
        self.noise_floor = -70.0
        self.peak = -120.0
        # Where speech last had energy: the best estimate of the real end of speech.
        self.last_voiced_ms = 0

    def process(self, frame: bytes, vad_prob: float, complete: bool) -> EndReason | None:
        self.elapsed_ms += FRAME_MS
        db = frame_dbfs(frame)
        if not self.in_speech:
            # Track the room's noise floor before speech starts (slow rise, fast fall).
            self.noise_floor = min(db, self.noise_floor + 0.05) if db > self.noise_floor else 0.9 * self.noise_floor + 0.1 * db
        threshold = max(self.noise_floor + 9.0, -60.0, self.peak - 35.0)
        voiced = db > threshold
        if vad_prob >= self.s.vad_threshold:
            self.vad_silence_ms = 0
            # Speech starts when the VAD and the energy agree (neither alone is trusted).
            if voiced:
                self.speech_ms += FRAME_MS
                if self.speech_ms >= self.s.min_speech * 1000:
                    self.in_speech = True
        else:
            self.vad_silence_ms += FRAME_MS
        if voiced:
            self.energy_silence_ms = 0
            self.last_voiced_ms = self.elapsed_ms
            if self.in_speech:
                self.peak = max(self.peak, db)
        else:
            self.energy_silence_ms += FRAME_MS

        if self.elapsed_ms >= self.s.max_utterance * 1000:
            return EndReason.MAX_LENGTH
        if not self.in_speech:
            if self.elapsed_ms >= self.s.no_speech_timeout * 1000:
                return EndReason.NO_SPEECH
            return None
        if complete and self.energy_silence_ms >= self.s.complete_tail * 1000:
            return EndReason.COMPLETE
        if self.energy_silence_ms >= self.s.silence_tail * 1000:
            return EndReason.SILENCE
        if self.vad_silence_ms >= self.s.vad_tail * 1000:
            return EndReason.VAD
        return None
