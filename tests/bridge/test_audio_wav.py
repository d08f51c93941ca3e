"""WAV chunks as real Hermes senders make them."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from bridge.audio.resample import convert
from bridge.audio.wav import WavError, make_wav, parse_wav, wav_to_pcm16k


def tone(rate: int, seconds: float = 0.1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * 10000).astype(np.int16)


def test_esp32_header_with_data_length_beyond_payload() -> None:
    pcm = tone(16000, 0.016).tobytes()  # 512 bytes
    wav = bytearray(make_wav(pcm))
    struct.pack_into("<I", wav, 40, 1024)  # the firmware claims 1024 bytes of data
    chunk = parse_wav(bytes(wav))
    assert chunk.declared_length == 1024
    assert chunk.data == pcm
    assert wav_to_pcm16k(bytes(wav)) == pcm


def test_snips_extra_chunks_before_data() -> None:
    pcm = tone(16000).tobytes()
    plain = make_wav(pcm)
    fmt = plain[12:36]
    time_chunk = b"time" + struct.pack("<I", 9) + b"123456789" + b"\0"  # odd size, padded
    body = b"WAVE" + fmt + time_chunk + b"data" + struct.pack("<I", len(pcm)) + pcm
    wav = b"RIFF" + struct.pack("<I", len(body)) + body
    assert wav_to_pcm16k(wav) == pcm


@pytest.mark.parametrize(("rate", "width", "channels"), [(44100, 2, 2), (48000, 2, 1), (8000, 1, 1), (22050, 4, 1), (16000, 3, 2)])
def test_other_formats_become_16k_mono(rate: int, width: int, channels: int) -> None:
    samples = tone(rate, 0.2).astype(np.int64)
    if width == 1:
        raw = ((samples >> 8) + 128).astype(np.uint8)
        data = np.repeat(raw, channels).tobytes()
    elif width == 2:
        data = np.repeat(samples.astype("<i2"), channels).tobytes()
    elif width == 3:
        s32 = (samples << 8).astype("<i4")
        b = s32.view(np.uint8).reshape(-1, 4)[:, :3]
        data = np.repeat(b, channels, axis=0).tobytes()
    else:
        data = np.repeat((samples << 16).astype("<i4"), channels).tobytes()
    wav = make_wav(data, rate=rate, width=width, channels=channels)
    out = np.frombuffer(wav_to_pcm16k(wav), dtype="<i2")
    assert abs(len(out) - 3200) <= 2  # 0.2 s at 16 kHz
    # still a 440 Hz tone of about the same loudness
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * 16000 / len(out)
    assert abs(peak_hz - 440) < 15
    assert 6000 < np.abs(out).max() < 10500


@pytest.mark.parametrize(("payload", "code"), [
    (b"hello world, not audio", "not_wav"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00", "bad_header"),  # truncated fmt
    (make_wav(b"")[:36], "bad_header"),  # no data chunk
    (make_wav(b"\0\0" * 10, rate=1000), "unsupported_format"),
])
def test_bad_wavs_are_rejected_with_a_reason(payload: bytes, code: str) -> None:
    with pytest.raises(WavError) as err:
        wav_to_pcm16k(payload)
    assert err.value.code == code


def test_float_wav_rejected() -> None:
    wav = bytearray(make_wav(b"\0" * 64, width=4))
    struct.pack_into("<H", wav, 20, 3)  # IEEE float
    with pytest.raises(WavError, match="not PCM"):
        parse_wav(bytes(wav))


def test_convert_identity() -> None:
    pcm = tone(16000).tobytes()
    assert convert(pcm, 16000, 2, 1) == pcm
