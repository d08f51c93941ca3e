"""Wake word detection on the bridge with pymicro-wakeword's built-in models."""

from __future__ import annotations

from collections import deque

from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

from .endpoint import frame_dbfs


class WakeWordDetector:
    """One per continuously streaming satellite (the model keeps state between frames)."""

    def __init__(self, model: str = "okay_nabu") -> None:
        self.model_name = model
        self._model = MicroWakeWord.from_builtin(Model(model))
        self._features = MicroWakeWordFeatures()

    def process(self, pcm: bytes) -> bool:
        """Feed 16 kHz 16-bit mono PCM; True when the wake word was just heard."""
        detected = False
        for features in self._features.process_streaming(pcm):
            if self._model.process_streaming(features):
                detected = True
        return detected

    def reset(self) -> None:
        self._model.reset()
        self._features.reset()

    def close(self) -> None:
        """Frees the model's interpreter (the feature frontend frees itself); safe to repeat."""
        self._model.close()


class QuietGate:
    """Skips the wake-word model while the room is quiet.

    Most of a continuously streaming satellite's day is silence. After `quiet_after` seconds below
    the room's noise floor + `margin_db` the gate closes; audio is then only kept as a short
    pre-roll. The first louder chunk opens the gate, and the model is reset and fed the pre-roll
    first, so it hears the whole wake word from its onset.
    """

    def __init__(self, quiet_after: float = 1.0, margin_db: float = 6.0, preroll: float = 0.5) -> None:
        self.quiet_after = quiet_after
        self.margin_db = margin_db
        self.noise_floor = -70.0
        self.quiet_seconds = 0.0
        self.closed = False
        self._preroll: deque[bytes] = deque()
        self._preroll_bytes = 0
        self._preroll_max = int(preroll * 32000)
        self.skipped = 0

    def admit(self, pcm: bytes) -> list[bytes]:
        """The chunks to feed the model now (empty while the gate is closed)."""
        level = frame_dbfs(pcm)
        # noise floor: falls fast, rises slowly (speech does not drag it up)
        self.noise_floor = level if level < self.noise_floor else min(level, self.noise_floor + 0.02)
        quiet = level < self.noise_floor + self.margin_db
        self.quiet_seconds = self.quiet_seconds + len(pcm) / 32000 if quiet else 0.0
        if quiet and self.quiet_seconds >= self.quiet_after:
            self.closed = True
            self._preroll.append(pcm)
            self._preroll_bytes += len(pcm)
            while self._preroll_bytes > self._preroll_max:
                self._preroll_bytes -= len(self._preroll.popleft())
            self.skipped += 1
            return []
        if self.closed:
            self.closed = False
            chunks = [*self._preroll, pcm]
            self._preroll.clear()
            self._preroll_bytes = 0
            return chunks
        return [pcm]


class GatedWakeWordDetector:
    """A wake-word detector behind a :class:`QuietGate`."""

    def __init__(self, model: str = "okay_nabu") -> None:
        self.detector = WakeWordDetector(model)
        self.gate = QuietGate()
        self.model_name = model

    def process(self, pcm: bytes) -> bool:
        was_closed = self.gate.closed
        chunks = self.gate.admit(pcm)
        if chunks and was_closed:
            self.detector.reset()  # stale state from before the silence
        return any([self.detector.process(chunk) for chunk in chunks])

    def reset(self) -> None:
        self.detector.reset()

    def close(self) -> None:
        self.detector.close()
