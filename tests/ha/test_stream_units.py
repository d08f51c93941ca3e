"""The pieces of streaming to an Assist pipeline: frames, sessions, WAVs for the bridge."""

from __future__ import annotations

import asyncio
from unittest.mock import patch

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.hearth import assist_stream
from custom_components.hearth.assist_stream import (
    FLAG_LAST,
    FRAME_HEADER,
    BridgeAudioStream,
    decode_frame,
    wav_for_bridge,
)
from custom_components.hearth.const import PROTOCOL_VERSION
from custom_components.hearth.wav import build_wav, wav_parts

from .fake_bridge import HassBridge


def _frame(stream_id: int, seq: int, pcm: bytes, last: bool = False) -> bytes:
    return FRAME_HEADER.pack(PROTOCOL_VERSION, FLAG_LAST if last else 0, 0, stream_id, seq) + pcm


async def test_session_frames() -> None:
    stream = BridgeAudioStream("kitchen", "s1", 7, "okay_nabu")
    assert not stream.ended
    stream.put_frame(8, 0, b"\x01\x00", False)  # another stream's frame
    stream.put_frame(7, 1, b"\x02\x00", False)
    stream.put_frame(7, 0, b"\x03\x00", False)  # late
    stream.put_frame(7, 2, b"\x04\x00", True)
    stream.put_frame(7, 3, b"\x05\x00", False)  # after the last
    assert stream.ended
    assert [chunk async for chunk in stream.audio()] == [b"\x02\x00", b"\x04\x00"]
    assert stream.received == stream.consumed == 4


async def test_session_audio_stops_arriving() -> None:
    stream = BridgeAudioStream("kitchen", "s1", None, None)
    stream.put_frame(1, 0, b"\x01\x00", False)
    with patch.object(assist_stream, "AUDIO_TIMEOUT", 0.05):
        chunks = [chunk async for chunk in stream.audio()]
    assert chunks == [b"\x01\x00"]
    assert stream.ended and not stream.cancelled


def test_decode_frame() -> None:
    assert decode_frame(_frame(3, 9, b"\x01\x00\x02\x00", last=True)) == (
        3, 9, b"\x01\x00\x02\x00", True
    )
    assert decode_frame(b"short") is None
    assert decode_frame(_frame(3, 9, b"\x01")) is None  # half a sample
    bad_version = bytearray(_frame(3, 9, b""))
    bad_version[0] = PROTOCOL_VERSION + 1
    assert decode_frame(bytes(bad_version)) is None


def test_wav_for_bridge() -> None:
    fmt = (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (16000).to_bytes(4, "little")
    fmt += (32000).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    wav = build_wav(fmt, b"\x01\x00")
    assert wav_for_bridge("wav", wav) == wav
    assert wav_for_bridge("mp3", wav) is None
    assert wav_for_bridge("wav", b"RIFF....WAVE") is None
    adpcm = build_wav((2).to_bytes(2, "little") + fmt[2:], b"\x01\x00")
    assert wav_for_bridge("wav", adpcm) is None
    assert wav_for_bridge("wav", build_wav(fmt, bytes(2_000_000))) is None
    # A RIFF without a data chunk, or a data chunk before its format, is not a WAV.
    assert wav_parts(b"RIFF\x04\x00\x00\x00WAVE") is None
    assert wav_parts(b"RIFF\x0c\x00\x00\x00WAVEdata\x00\x00\x00\x00") is None


async def test_streams_without_an_entity_or_with_bad_topics(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    """A start for a satellite without an Assist satellite entity is dropped; bad topics and
    payloads are ignored; audio as text (latin-1) is still decoded."""
    streams = loaded.runtime_data.streams
    await bridge.send("satellite/nobody/pipeline/start", {"session_id": "s9", "stream_id": 1})
    await bridge.send("satellite/bad id/pipeline/start", {"session_id": "s9"})
    await bridge.send("satellite/kitchen/pipeline/start", "not json")
    await bridge.send("satellite/bad id/pipeline/audio", "x")
    await bridge.send("satellite/kitchen/pipeline/audio", "no session")
    await hass.async_block_till_done()
    assert streams.sessions == {}
    assert not streams.async_session_failed("kitchen", "s9")

    stream = BridgeAudioStream("kitchen", "s2", 1, None)
    streams.sessions["kitchen"] = stream
    await bridge.send("satellite/kitchen/pipeline/audio", _frame(1, 0, b"\x01\x00").decode("latin-1"))
    await hass.async_block_till_done()
    assert stream.received == 2
    assert streams.async_session_failed("kitchen", "s2")
    assert stream.cancelled
    streams.async_forget(stream)
    assert streams.sessions == {}
    await asyncio.sleep(0)
