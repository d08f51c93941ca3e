"""Wake word detection on the bridge with pymicro-wakeword's built-in models."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import ClassVar

from types import SimpleNamespace

from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model
from pymicro_wakeword import microwakeword as _microwakeword

from .endpoint import frame_dbfs


def _mean(values: Iterable[float]) -> float:
    """The arithmetic mean in floating point."""
    values = list(values)
    return math.fsum(values) / len(values)


# pymicro-wakeword averages its last few probabilities with `statistics.mean`, which sums exact
# fractions: about 45 µs of every 30 ms inference, a quarter of the model's cost in a room where
# people talk. The same mean in floating point (equal to well below the cutoff's precision) is
# put in its place, for the bridge's process only.
setattr(_microwakeword, "statistics", SimpleNamespace(mean=_mean))  # noqa: B010 - a module global


class WakeWordDetector:
    """One per continuously streaming satellite (the model keeps state between frames).

    The model (a TensorFlow Lite interpreter with its tensor arena) and its feature frontend are
    on loan from a pool per model name: satellites come and go all day (Hermes sites are known
    only by their traffic and expire after minutes of silence), and loading and freeing an
    interpreter for each one fragments the native heap so that resident memory creeps up with
    every satellite that ever came. Returned models are reset before they serve again, so memory
    stays at the most detectors ever in use at once.
    """

    POOL_MAX = 4096  #: idle models kept per model name (beyond: the satellite table's limit)
    _idle: ClassVar[dict[str, list[tuple[MicroWakeWord, MicroWakeWordFeatures]]]] = {}
    created: ClassVar[int] = 0  #: models loaded since start (the pool's misses)

    def __init__(self, model: str = "okay_nabu") -> None:
        self.model_name = model
        idle = WakeWordDetector._idle.get(model)
        if idle:
            loaned = idle.pop()
            loaned[0].reset()
            loaned[1].reset()
        else:
            loaned = (MicroWakeWord.from_builtin(Model(model)), MicroWakeWordFeatures())
            WakeWordDetector.created += 1
        self._loaned: tuple[MicroWakeWord, MicroWakeWordFeatures] | None = loaned
        self.probability = 0.0  #: the model's (averaged) probability at the last detection

    def _parts(self) -> tuple[MicroWakeWord, MicroWakeWordFeatures]:
        if self._loaned is None:
            raise RuntimeError("wake-word detector used after close")
        return self._loaned

    def process(self, pcm: bytes) -> bool:
        """Feed 16 kHz 16-bit mono PCM; True when the wake word was just heard."""
        model, frontend = self._parts()
        detected = False
        for features in frontend.process_streaming(pcm):
            probability = model.process_streaming_prob(features)
            if probability is not None and probability > model.probability_cutoff:
                if not detected or probability > self.probability:
                    self.probability = probability
                detected = True
        return detected

    def reset(self) -> None:
        model, frontend = self._parts()
        model.reset()
        frontend.reset()

    def close(self) -> None:
        """Returns the model to its pool (once; the detector is unusable afterwards)."""
        loaned: tuple[MicroWakeWord, MicroWakeWordFeatures] | None = getattr(self, "_loaned", None)
        self._loaned = None
        if loaned is None:
            return
        idle = WakeWordDetector._idle.setdefault(self.model_name, [])
        if len(idle) < WakeWordDetector.POOL_MAX:
            idle.append(loaned)
        else:
            loaned[0].close()

    def __del__(self) -> None:
        self.close()

    @classmethod
    def idle(cls, model: str) -> int:
        """Models of this name waiting in the pool."""
        return len(cls._idle.get(model, ()))


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
        #: (level in dBFS, bytes) of the last second's chunks that stood out of the noise floor:
        #: the wake word's level for arbitration (:meth:`speech_db`)
        self._voiced: deque[tuple[float, int]] = deque()
        self._voiced_bytes = 0

    def admit(self, pcm: bytes) -> list[bytes]:
        """The chunks to feed the model now (empty while the gate is closed)."""
        level = frame_dbfs(pcm)
        # noise floor: falls fast, rises slowly (speech does not drag it up)
        self.noise_floor = level if level < self.noise_floor else min(level, self.noise_floor + 0.02)
        quiet = level < self.noise_floor + self.margin_db
        if not quiet:
            self._voiced.append((level, len(pcm)))
            self._voiced_bytes += len(pcm)
            while self._voiced_bytes - self._voiced[0][1] >= 32000:
                self._voiced_bytes -= self._voiced.popleft()[1]
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

    def speech_db(self) -> float | None:
        """The level of the last second of voiced audio (RMS) above the noise floor, in dB; None
        when nothing stood out of the floor."""
        if not self._voiced_bytes:
            return None
        power = sum(10 ** (level / 10) * nbytes for level, nbytes in self._voiced) / self._voiced_bytes
        return round(10 * math.log10(power) - self.noise_floor, 1)


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

    @property
    def probability(self) -> float:
        """The model's probability at its last detection."""
        return self.detector.probability

    def speech_db(self) -> float | None:
        """The wake word's level above the room's noise floor (see :meth:`QuietGate.speech_db`)."""
        return self.gate.speech_db()

    def reset(self) -> None:
        self.detector.reset()

    def close(self) -> None:
        self.detector.close()
