"""The wake word on the device, with pymicro-wakeword's built-in models."""

from __future__ import annotations

from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

from .protocol import WAKE_WORDS


class WakeWord:
    """Feeds 16 kHz 16-bit mono PCM to one model; reports the probability at detection."""

    def __init__(self, name: str) -> None:
        if name not in WAKE_WORDS:
            raise ValueError(f"unknown wake word {name!r}; one of {', '.join(WAKE_WORDS)}")
        self.name = name
        self.model = MicroWakeWord.from_builtin(Model(name))
        self.features = MicroWakeWordFeatures()
        self.cutoff = float(self.model.probability_cutoff)

    def process(self, pcm: bytes) -> float | None:
        """The model's probability when the wake word was just heard (above its cutoff), else None."""
        best: float | None = None
        for features in self.features.process_streaming(pcm):
            prob = self.model.process_streaming_prob(features)
            if prob is not None and prob > self.cutoff:
                best = prob if best is None else max(best, prob)
        return best

    def reset(self) -> None:
        self.model.reset()
        self.features.reset()

    def close(self) -> None:
        self.model.close()
