"""WyomingTts against a real Wyoming TTS server started here; build_tts and FallbackTts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.server import AsyncEventHandler, AsyncServer, AsyncTcpServer
from wyoming.tts import Synthesize

from bridge.engines import EngineError, Locality, SynthesizedAudio, TextToSpeech
from bridge.tts import EspeakTts, FallbackTts, WyomingTts, build_tts
from tests.bridge.test_wyoming_stt import connects, gate_for, local_only  # noqa: F401 - fixture
from tests.support.speech import have_espeak

SERVER_RATE = 22050


class FakePiper(AsyncEventHandler):
    """Speaks 1000 samples (at 22050 Hz) per character of text, in chunks of 1024 samples;
    the voice name requested picks the behaviour."""

    requests: list[Synthesize] = []

    async def handle_event(self, event: Event) -> bool:
        if not Synthesize.is_type(event.type):
            return True
        request = Synthesize.from_event(event)
        FakePiper.requests.append(request)
        voice = request.voice.name if request.voice else None
        if voice == "broken":
            await self.write_event(Error(text="model not loaded").event())
            return True
        if voice == "slow":
            await asyncio.sleep(30)
        n = 1000 * len(request.text)
        t = np.arange(n) / SERVER_RATE
        pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
        await self.write_event(AudioStart(rate=SERVER_RATE, width=2, channels=1).event())
        for i in range(0, len(pcm), 2048):
            chunk = AudioChunk(rate=SERVER_RATE, width=2, channels=1, audio=pcm[i : i + 2048])
            await self.write_event(chunk.event())
        if voice == "truncated":
            return False
        await self.write_event(AudioStop().event())
        return True


@pytest.fixture
async def piper_port() -> AsyncIterator[int]:
    server = AsyncServer.from_uri("tcp://127.0.0.1:0")
    assert isinstance(server, AsyncTcpServer)
    await server.start(lambda r, w: FakePiper(r, w))
    assert server._server is not None
    FakePiper.requests = []
    yield server._server.sockets[0].getsockname()[1]
    await server.stop()


@pytest.mark.parametrize("rate", [16000, 22050])
async def test_wyoming_tts_converts_to_requested_rate(piper_port: int, rate: int) -> None:
    tts = WyomingTts("127.0.0.1", piper_port, gate_for(local_only), voice="en_US-lessac-medium")
    audio = await tts.synthesize("hello kitchen", rate)
    assert audio.rate == rate
    expected_samples = 1000 * len("hello kitchen") * rate / SERVER_RATE
    assert abs(len(audio.pcm) / 2 - expected_samples) <= 2
    assert audio.engine == "wyoming:127.0.0.1" and audio.locality == Locality.LAN
    assert audio.extra["source_rate"] == SERVER_RATE
    assert audio.extra["address_class"] == "loopback"
    assert audio.bytes_sent > len("hello kitchen")
    assert FakePiper.requests[-1].text == "hello kitchen"
    assert FakePiper.requests[-1].voice is not None
    assert FakePiper.requests[-1].voice.name == "en_US-lessac-medium"


async def test_wyoming_tts_cloud_refused_without_connecting(connects: list[Any]) -> None:
    gate = gate_for(local_only)
    tts = WyomingTts("198.51.100.7", 10200, gate)
    with pytest.raises(EngineError) as info:
        await tts.synthesize("hello", 16000)
    assert info.value.code == "cloud_refused"
    assert connects == []
    assert gate.audit.blocked_by() == {("wyoming:198.51.100.7", "local_only"): 1}


async def test_wyoming_tts_server_error_and_truncation(piper_port: int) -> None:
    with pytest.raises(EngineError) as info:
        await WyomingTts("127.0.0.1", piper_port, gate_for(local_only), voice="broken").synthesize("x", 16000)
    assert info.value.code == "tts_failed" and "model not loaded" in info.value.message
    with pytest.raises(EngineError) as info:
        await WyomingTts("127.0.0.1", piper_port, gate_for(local_only), voice="truncated").synthesize(
            "hi", 16000
        )
    assert info.value.code == "tts_failed" and "audio-stop" in info.value.message


async def test_wyoming_tts_timeout(piper_port: int) -> None:
    tts = WyomingTts("127.0.0.1", piper_port, gate_for(local_only), voice="slow", timeout=0.3)
    with pytest.raises(EngineError) as info:
        await tts.synthesize("hello", 16000)
    assert info.value.code == "tts_timeout"


async def test_wyoming_tts_empty_text() -> None:
    with pytest.raises(EngineError) as info:
        await WyomingTts("127.0.0.1", 1, gate_for(local_only)).synthesize("  ", 16000)
    assert info.value.code == "tts_empty_text"


class _Fake(TextToSpeech):
    def __init__(self, name: str, error: EngineError | None = None) -> None:
        self.name = name
        self.locality = Locality.IN_PROCESS
        self.error = error
        self.calls = 0

    async def synthesize(self, text: str, rate: int) -> SynthesizedAudio:
        self.calls += 1
        if self.error:
            raise self.error
        return SynthesizedAudio(pcm=b"\x00\x00" * 10, rate=rate, engine=self.name)


async def test_fallback_used_when_primary_fails() -> None:
    seen: list[tuple[str, str]] = []
    primary = _Fake("primary", EngineError("tts_timeout", "too slow"))
    fallback = _Fake("fallback")
    tts = FallbackTts(primary, fallback, lambda name, err: seen.append((name, err.code)))
    audio = await tts.synthesize("hello", 16000)
    assert audio.engine == "fallback"
    assert audio.extra["fallback_from"] == "primary"
    assert audio.extra["fallback_reason"] == "tts_timeout"
    assert seen == [("primary", "tts_timeout")]


async def test_fallback_not_used_when_primary_works_or_text_is_empty() -> None:
    seen: list[Any] = []
    primary, fallback = _Fake("primary"), _Fake("fallback")
    tts = FallbackTts(primary, fallback, lambda *a: seen.append(a))
    assert (await tts.synthesize("hello", 16000)).engine == "primary"
    primary.error = EngineError("tts_empty_text", "empty")
    with pytest.raises(EngineError):
        await tts.synthesize("", 16000)
    assert fallback.calls == 0 and seen == []


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")
async def test_cloud_wyoming_falls_back_to_espeak_without_connecting(
    connects: list[Any],
) -> None:
    seen: list[tuple[str, str]] = []
    gate = gate_for(local_only)
    tts = build_tts(
        {"engine": "wyoming", "host": "198.51.100.7", "port": 10200, "voice": "x",
         "fallback": {"engine": "espeak", "voice": "en-us", "speed": 170}},
        gate,
        on_fallback=lambda name, err: seen.append((name, err.code)),
    )
    assert isinstance(tts, FallbackTts)
    audio = await tts.synthesize("the door is locked", 16000)
    assert audio.engine == "espeak" and audio.locality == Locality.IN_PROCESS
    assert audio.seconds > 0.5
    assert seen == [("wyoming:198.51.100.7", "cloud_refused")]
    assert connects == []
    assert gate.audit.blocked_by() == {("wyoming:198.51.100.7", "local_only"): 1}


def test_build_tts_configs() -> None:
    espeak = build_tts({"engine": "espeak", "voice": "en-gb", "speed": 150}, gate_for(local_only))
    assert isinstance(espeak, EspeakTts) and espeak.voice == "en-gb" and espeak.speed == 150
    wy = build_tts({"engine": "wyoming", "host": "piper.lan", "port": 10200, "voice": "v"},
                   gate_for(local_only))
    assert isinstance(wy, WyomingTts) and wy.port == 10200 and wy.voice == "v"
    assert wy.describe()["locality"] == "cloud"  # a name is not trusted until resolved
    lan = build_tts({"engine": "wyoming", "host": "192.168.1.5", "port": 10200}, gate_for(local_only))
    assert lan.locality == Locality.LAN
    for bad in (
        {"engine": "festival"},
        {"engine": "wyoming", "host": "x"},
        {"engine": "espeak", "colour": "red"},
        {"engine": "espeak", "fallback": {"engine": "espeak", "fallback": {}}},
    ):
        with pytest.raises(ValueError):
            build_tts(bad, gate_for(local_only))
