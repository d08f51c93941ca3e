"""Voice activity with pymicro-vad, fed exact 10 ms frames; detectors are pooled and reused."""

from __future__ import annotations

from typing import ClassVar

from pymicro_vad import MicroVad

from .endpoint import FRAME_BYTES


class FrameSplitter:
    """Turns arbitrary PCM chunks into whole 10 ms frames (keeps the remainder)."""

    def __init__(self, frame_bytes: int = FRAME_BYTES) -> None:
        self.frame_bytes = frame_bytes
        self._rest = b""

    def split(self, pcm: bytes) -> list[bytes]:
        data = self._rest + pcm
        cut = len(data) - len(data) % self.frame_bytes
        self._rest = data[cut:]
        return [data[i : i + self.frame_bytes] for i in range(0, cut, self.frame_bytes)]

    def reset(self) -> None:
        self._rest = b""


class Vad:
    """One satellite's voice activity detector, on loan from a pool.

    pymicro-vad's native state is never freed (its handle has no destructor: about 11 KB lost
    per instance), so instances are not made anew for every satellite but returned to a pool on
    :meth:`close` (or when garbage collected) and reset before they serve again. Memory then
    stays at the most detectors ever in use at once.
    """

    POOL_MAX = 4096  #: idle detectors kept for reuse (beyond: the satellite table's limit)
    _idle: ClassVar[list[MicroVad]] = []

    def __init__(self) -> None:
        if Vad._idle:
            vad = Vad._idle.pop()
            vad.reset()
        else:
            vad = MicroVad()
        self._vad: MicroVad | None = vad

    def process(self, frame: bytes) -> float:
        if self._vad is None:
            raise RuntimeError("VAD used after close")
        return float(self._vad.process_10ms(frame))

    def reset(self) -> None:
        if self._vad is not None:
            self._vad.reset()

    def close(self) -> None:
        """Returns the detector to the pool (once; the instance is unusable afterwards)."""
        vad: MicroVad | None = getattr(self, "_vad", None)  # None also when __init__ failed
        self._vad = None
        if vad is not None and len(Vad._idle) < Vad.POOL_MAX:
            Vad._idle.append(vad)

    def __del__(self) -> None:
        self.close()

    @classmethod
    def idle(cls) -> int:
        """Detectors waiting in the pool."""
        return len(cls._idle)
