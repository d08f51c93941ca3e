"""The pre-announce chime Hearth satellites play before an announcement.

Home Assistant's own chime (`/api/assist_satellite/static/preannounce.mp3`) is an MP3, and the
bridge plays only PCM WAV; decoding it would need Home Assistant's FFmpeg integration on every
announcement. So in its place Hearth plays this chime of its own: two soft notes, made here
as a 16 kHz 16-bit mono WAV (no file, no dependency). Any other `preannounce_media_id` is
converted like announcement media (`announce_media`).
"""

from __future__ import annotations

from functools import cache
import math
import struct

from yarl import URL

from .wav import build_wav

# Home Assistant's default chime (assist_satellite's PREANNOUNCE_URL, not exported by its root).
HA_CHIME_PATH = "/api/assist_satellite/static/preannounce.mp3"

RATE = 16000
_NOTES = ((659.25, 0.16), (987.77, 0.28))  # E5, then B5, in seconds
_VOLUME = 0.35


def is_default_chime(media_id: str) -> bool:
    """Whether a pre-announce media id is Home Assistant's default chime (as a path or a URL)."""
    return URL(media_id).path == HA_CHIME_PATH


@cache
def chime_wav() -> bytes:
    """Return the chime as a WAV (made once)."""
    samples: list[int] = []
    for frequency, seconds in _NOTES:
        count = int(RATE * seconds)
        fade = int(RATE * 0.01)
        for index in range(count):
            envelope = min(1.0, index / fade) * math.exp(-4.0 * index / count)
            value = (
                math.sin(2 * math.pi * frequency * index / RATE) * envelope * _VOLUME
            )
            samples.append(int(value * 32767))
    samples.extend([0] * int(RATE * 0.08))  # a breath before the message
    fmt = struct.pack("<HHIIHH", 1, 1, RATE, RATE * 2, 2, 16)
    return build_wav(fmt, struct.pack(f"<{len(samples)}h", *samples))
