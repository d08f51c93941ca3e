"""Voice activity with pymicro-vad, fed exact 10 ms frames."""

from __future__ import annotations

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
    def __init__(self) -> None:
        self._vad = MicroVad()

    def process(self, frame: bytes) -> float:
        return float(self._vad.process_10ms(frame))

    def reset(self) -> None:
        self._vad.reset()
