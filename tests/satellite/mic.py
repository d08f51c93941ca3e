"""A stand-in microphone for the satellite's `--mic-command`: raw 16 kHz 16-bit mono PCM on
stdout in real time, quiet room noise (about -80 dBFS) until a WAV file appears in the queue
folder, which it then plays (`<name>.wav` → `<name>.playing` → `<name>.played`). A clip may name
the instant its sound arrives (`<name>.at`: a time.monotonic() value, the same clock in every
process): it then starts at that sample, as one sound reaches several microphones at once.

    python tests/satellite/mic.py QUEUE_DIR
"""

from __future__ import annotations

import sys
import time
import wave
from pathlib import Path

import numpy as np

CHUNK = 480  # samples: 30 ms


def main() -> None:
    queue = Path(sys.argv[1])
    rng = np.random.default_rng(1)
    noise = np.clip(rng.normal(0, 3.0, 16000 * 2), -32768, 32767).astype("<i2")
    out = sys.stdout.buffer
    started = time.monotonic()
    sent = 0  # samples
    noise_at = 0
    clip: np.ndarray | None = None
    clip_pos = 0
    clip_path: Path | None = None
    while True:
        if clip is None:
            waiting = sorted(queue.glob("*.wav"))
            if waiting:
                clip_path = waiting[0].rename(waiting[0].with_suffix(".playing"))
                with wave.open(str(clip_path), "rb") as wav:
                    clip = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
                clip_pos = 0
                at = clip_path.with_suffix(".at")
                if at.exists():
                    # the room's noise until the sound arrives, to the sample
                    lead = max(0, round((float(at.read_text()) - started) * 16000) - sent)
                    clip = np.concatenate([np.resize(noise, lead), clip])
        if clip is not None:
            chunk = clip[clip_pos:clip_pos + CHUNK]
            clip_pos += CHUNK
            if len(chunk) < CHUNK:
                chunk = np.concatenate([chunk, noise[:CHUNK - len(chunk)]])
                assert clip_path is not None
                clip_path.rename(clip_path.with_suffix(".played"))
                clip = None
        else:
            chunk = noise[noise_at:noise_at + CHUNK]
            noise_at = (noise_at + CHUNK) % (len(noise) - CHUNK)
        out.write(chunk.astype("<i2").tobytes())
        out.flush()
        sent += CHUNK
        delay = started + sent / 16000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
