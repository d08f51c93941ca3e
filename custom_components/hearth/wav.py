"""The WAV parsing the integration needs: one RIFF walk, one header writer."""

from __future__ import annotations

import struct


def wav_parts(data: bytes) -> tuple[bytes, bytes] | None:
    """Return the `fmt ` chunk (whole) and the audio of a RIFF/WAVE file, or None.

    Headers written while streaming (data length 0 or 0xFFFFFFFF) are accepted: the audio then
    runs to the end of `data`.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    fmt: bytes | None = None
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt = data[body : body + size]
        elif chunk_id == b"data":
            if fmt is None or len(fmt) < 16:
                return None
            return fmt, data[body : body + size] if 0 < size < 0xFFFFFFFF else data[
                body:
            ]
        pos = body + size + (size & 1)
    return None


def build_wav(fmt16: bytes, pcm: bytes) -> bytes:
    """Build a plain 44-byte-header WAV from a 16-byte `fmt ` body and its audio."""
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(pcm))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt16
        + b"data"
        + struct.pack("<I", len(pcm))
        + pcm
    )
