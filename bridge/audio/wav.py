"""WAV (RIFF) chunks as real Hermes satellites send them.

Senders differ (see docs/protocol.md): the ESP32 firmware writes a hand-made 44-byte header
whose data length may exceed what follows; Snips adds chunks before `data`; microphones use
other rates, widths and channel counts. We walk the chunks instead of assuming 44 bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .resample import TARGET_RATE, convert

MAX_RATE = 192_000
MAX_CHANNELS = 8


class WavError(ValueError):
    """The payload is not a usable WAV file; `code` names the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class WavChunk:
    rate: int
    width: int
    channels: int
    data: bytes
    declared_length: int  # what the header said; may exceed len(data)


def parse_wav(payload: bytes) -> WavChunk:
    """Parses one RIFF/WAVE payload; raises WavError with a clear reason."""
    if len(payload) < 12 or payload[:4] != b"RIFF" or payload[8:12] != b"WAVE":
        raise WavError("not_wav", "payload is not a RIFF/WAVE file")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(payload):
        chunk_id = payload[pos : pos + 4]
        (size,) = struct.unpack_from("<I", payload, pos + 4)
        body_start = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body_start + 16 > len(payload):
                raise WavError("bad_header", "WAV fmt chunk is truncated")
            audio_format, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", payload, body_start)
            fmt = (audio_format, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise WavError("bad_header", "WAV data chunk comes before its fmt chunk")
            audio_format, channels, rate, bits = fmt
            if audio_format not in (1, 0xFFFE):
                raise WavError("unsupported_format", f"WAV format {audio_format} is not PCM")
            if bits not in (8, 16, 24, 32):
                raise WavError("unsupported_format", f"{bits}-bit samples are not supported")
            if not (1 <= channels <= MAX_CHANNELS):
                raise WavError("unsupported_format", f"{channels} channels is not supported")
            if not (4000 <= rate <= MAX_RATE):
                raise WavError("unsupported_format", f"sample rate {rate} Hz is not supported")
            data = payload[body_start : body_start + size]  # a data length beyond the payload is accepted
            frame = channels * bits // 8
            data = data[: len(data) - len(data) % frame]
            return WavChunk(rate=rate, width=bits // 8, channels=channels, data=data, declared_length=size)
        # chunks are padded to an even size
        pos = body_start + size + (size & 1)
    raise WavError("bad_header", "WAV has no data chunk")


def wav_to_pcm16k(payload: bytes) -> bytes:
    """Any supported WAV chunk → 16 kHz mono 16-bit PCM."""
    chunk = parse_wav(payload)
    if chunk.rate == TARGET_RATE and chunk.width == 2 and chunk.channels == 1:
        return chunk.data
    return convert(chunk.data, chunk.rate, chunk.width, chunk.channels, TARGET_RATE)


def make_wav(pcm: bytes, rate: int = TARGET_RATE, width: int = 2, channels: int = 1) -> bytes:
    """A minimal 44-byte-header WAV around PCM."""
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16, 1, channels, rate,
        rate * channels * width, channels * width, width * 8, b"data", len(pcm),
    )
    return header + pcm
