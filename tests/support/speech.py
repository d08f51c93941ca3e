"""Real speech for tests: espeak-ng synthesises it at test time, sox converts it."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def synthesize(text: str, path: Path, voice: str = "en-us", speed: int = 160, rate: int = 16000,
               pad_ms: int = 600) -> Path:
    """Writes a 16-bit mono WAV at `rate` with `pad_ms` of silence before and after."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    pad = f"{pad_ms / 1000:.3f}"
    subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path),
                    "pad", pad, pad], check=True)
    raw.unlink()
    return path


def read_pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        assert wav.getframerate() == 16000 and wav.getsampwidth() == 2 and wav.getnchannels() == 1
        return wav.readframes(wav.getnframes())
