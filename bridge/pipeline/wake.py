"""Wake word detection on the bridge with pymicro-wakeword's built-in models."""

from __future__ import annotations

from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model


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
        self._model.close()
