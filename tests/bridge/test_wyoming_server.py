"""HearthWyomingServer driven by the real wyoming AsyncTcpClient, the way Home Assistant's
Wyoming integration talks to it (homeassistant/components/wyoming/{data,stt,tts}.py)."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice

from bridge.engines import EngineError, SttStream
from bridge.engines import Transcript as HearthTranscript
from bridge.tts.espeak import EspeakTts
from bridge.wyoming_server import HearthWyomingServer
from tests.support.speech import have_espeak, read_pcm


class ByteCountingStream(SttStream):
    """Stands in for the recognizer: its text is derived from exactly the audio it was fed."""

    instances: list[ByteCountingStream] = []

    def __init__(self, fail: str | None = None) -> None:
        self.audio = bytearray()
        self.feeds = 0
        self.cancelled = False
        self.fail = fail
        ByteCountingStream.instances.append(self)

    async def feed(self, pcm: bytes) -> None:
        if self.fail == "feed":
            raise EngineError("stt_failed", "decoder crashed")
        self.feeds += 1
        self.audio += pcm

    async def finish(self) -> HearthTranscript:
        if self.fail == "finish":
            raise EngineError("stt_timeout", "decoder too slow")
        text = f"{len(self.audio)} {zlib.crc32(self.audio):08x}"
        return HearthTranscript(text=text, confidence=0.9)

    async def cancel(self) -> None:
        self.cancelled = True


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., Any]]:
    servers: list[HearthWyomingServer] = []
    ByteCountingStream.instances = []

    async def _make(tts: Any = None, fail: str | None = None, **kwargs: Any) -> HearthWyomingServer:
        async def factory() -> SttStream:
            if fail == "open":
                raise EngineError("stt_unavailable", "no recognizer loaded")
            return ByteCountingStream(fail)

        server = HearthWyomingServer("127.0.0.1", 0, factory, tts, **kwargs)
        await server.start()
        servers.append(server)
        return server

    yield _make
    for server in servers:
        await server.stop()


def client(server: HearthWyomingServer) -> AsyncTcpClient:
    return AsyncTcpClient("127.0.0.1", server.port, connect_timeout=2, read_timeout=10)


async def transcribe(server: HearthWyomingServer, pcm: bytes, rate: int = 16000,
                     width: int = 2, channels: int = 1, chunk: int = 2048) -> Event | None:
    """Home Assistant's STT sequence (wyoming/stt.py async_process_audio_stream)."""
    async with client(server) as c:
        await c.write_event(Transcribe(language="en").event())
        await c.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        for i in range(0, len(pcm), chunk):
            await c.write_event(
                AudioChunk(rate=rate, width=width, channels=channels, audio=pcm[i : i + chunk])
                .event()
            )
        await c.write_event(AudioStop().event())
        while True:
            event = await c.read_event()
            if event is None or Transcript.is_type(event.type) or Error.is_type(event.type):
                return event


async def test_port_zero_gets_a_real_port(make_server: Any) -> None:
    server = await make_server()
    assert server.port > 0


async def test_describe_answers_info_like_home_assistant_expects(make_server: Any) -> None:
    server = await make_server(tts=EspeakTts())
    # data.py load_wyoming_info: describe, then read until info, 1 s timeout
    async with client(server) as c, asyncio.timeout(1):
        await c.write_event(Describe().event())
        event = await c.read_event()
    assert event is not None and Info.is_type(event.type)
    info = Info.from_event(event)
    assert [a.name for a in info.asr] == ["hearth"]
    assert info.asr[0].installed and info.asr[0].models[0].installed
    assert info.asr[0].models[0].name == "hearth"
    assert info.asr[0].models[0].languages == ["en"]
    assert len(info.tts) == 1 and info.tts[0].installed
    assert [v.name for v in info.tts[0].voices] == ["hearth-espeak"]
    assert info.tts[0].voices[0].installed and info.tts[0].voices[0].languages == ["en"]
    assert not info.tts[0].supports_synthesize_streaming  # HA then uses plain `synthesize`


async def test_describe_without_tts_advertises_only_asr(make_server: Any) -> None:
    server = await make_server()
    async with client(server) as c:
        await c.write_event(Describe().event())
        event = await c.read_event()
    assert event is not None
    assert Info.from_event(event).tts == []


async def test_transcribe_feeds_audio_as_it_arrives(make_server: Any, say: Any) -> None:
    if not have_espeak():
        pytest.skip("espeak-ng not installed")
    pcm = read_pcm(say("what time is it"))
    server = await make_server()
    event = await transcribe(server, pcm)
    assert event is not None and Transcript.is_type(event.type)
    assert Transcript.from_event(event).text == f"{len(pcm)} {zlib.crc32(pcm):08x}"
    assert Transcript.from_event(event).language == "en"
    stream = ByteCountingStream.instances[-1]
    assert stream.feeds == (len(pcm) + 2047) // 2048  # one feed per chunk, not one at the end


async def test_transcribe_converts_48k_stereo_to_16k_mono(make_server: Any) -> None:
    server = await make_server()
    seconds = 1.0
    t = np.arange(int(48000 * seconds)) / 48000
    mono = (6000 * np.sin(2 * np.pi * 300 * t)).astype("<i2")
    stereo = np.repeat(mono, 2).tobytes()  # L = R
    event = await transcribe(server, stereo, rate=48000, channels=2, chunk=4800 * 4)
    assert event is not None and Transcript.is_type(event.type)
    received = ByteCountingStream.instances[-1].audio
    assert abs(len(received) / 2 - 16000 * seconds) <= 10
    samples = np.frombuffer(bytes(received), dtype="<i2").astype(np.float64)
    expected = 6000 * np.sin(2 * np.pi * 300 * np.arange(len(samples)) / 16000)
    assert np.sqrt(np.mean((samples - expected) ** 2)) < 300  # the same tone, at 16 kHz


async def test_rejected_speech_is_an_empty_transcript(make_server: Any) -> None:
    async def factory() -> SttStream:
        class Rejecting(ByteCountingStream):
            async def finish(self) -> HearthTranscript:
                return HearthTranscript(text="uh", confidence=0.1, rejected=True)

        return Rejecting()

    server = HearthWyomingServer("127.0.0.1", 0, factory, None)
    await server.start()
    try:
        event = await transcribe(server, b"\x00\x00" * 1000)
        assert event is not None and Transcript.from_event(event).text == ""
    finally:
        await server.stop()


@pytest.mark.parametrize("fail", ["open", "feed", "finish"])
async def test_engine_failure_is_reported_then_closed(make_server: Any, fail: str) -> None:
    server = await make_server(fail=fail)
    async with client(server) as c:
        await c.write_event(Transcribe(language="en").event())
        await c.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        event = await c.read_event() if fail == "open" else None
        if fail != "open":
            await c.write_event(AudioChunk(rate=16000, width=2, channels=1,
                                           audio=b"\x00" * 640).event())
            if fail == "finish":
                await c.write_event(AudioStop().event())
            event = await c.read_event()
        assert event is not None and Error.is_type(event.type)
        assert Error.from_event(event).code in ("stt_unavailable", "stt_failed", "stt_timeout")
        assert await c.read_event() is None  # closed: HA reports an error instead of waiting


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")
async def test_synthesize_with_espeak(make_server: Any) -> None:
    server = await make_server(tts=EspeakTts())
    # tts.py async_get_tts_audio: synthesize, then read chunks until audio-stop
    async with client(server) as c:
        voice = SynthesizeVoice(name="hearth-espeak")
        await c.write_event(Synthesize(text="The garage door is closed.", voice=voice).event())
        start = await c.read_event()
        assert start is not None and AudioStart.is_type(start.type)
        assert AudioStart.from_event(start).rate == 22050
        chunks: list[AudioChunk] = []
        while True:
            event = await c.read_event()
            assert event is not None
            if AudioStop.is_type(event.type):
                break
            assert AudioChunk.is_type(event.type)
            chunks.append(AudioChunk.from_event(event))
    assert chunks and all(ch.samples <= 2048 for ch in chunks)
    assert {(ch.rate, ch.width, ch.channels) for ch in chunks} == {(22050, 2, 1)}
    seconds = sum(ch.samples for ch in chunks) / 22050
    assert 1.0 < seconds < 4.0


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")
async def test_synthesize_rate_is_configurable(make_server: Any) -> None:
    server = await make_server(tts=EspeakTts(), tts_rate=16000)
    async with client(server) as c:
        await c.write_event(Synthesize(text="hi").event())
        start = await c.read_event()
    assert start is not None and AudioStart.from_event(start).rate == 16000


async def test_synthesize_without_tts_closes(make_server: Any) -> None:
    server = await make_server()
    async with client(server) as c:
        await c.write_event(Synthesize(text="hi").event())
        assert await c.read_event() is None


async def test_synthesize_empty_text_is_an_error_event(make_server: Any) -> None:
    server = await make_server(tts=EspeakTts())
    async with client(server) as c:
        await c.write_event(Synthesize(text="   ").event())
        event = await c.read_event()
    assert event is not None and Error.from_event(event).code == "tts_empty_text"


async def _raw(server: HearthWyomingServer, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(3):
            return await reader.read()  # until the server closes
    finally:
        writer.close()


@pytest.mark.parametrize(
    "bad",
    [
        b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1},'
        b' "payload_length": 4}\n\x00\x00\x00\x00',  # audio without start
        b'{"type": "audio-stop"}\n',  # stop without start
        b'{"type": "bogus-event"}\n',  # unknown event
        b'{"type": "audio-start", "data": {"rate": 16000, "width": 2, "channels": 1}}\n'
        b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1},'
        b' "payload_length": 50000000}\n',  # huge chunk: refused before it is read
        b'{"type": "audio-start", "data": {"rate": 0, "width": 2, "channels": 1}}\n',
        b'{"type": "audio-start", "data": {"rate": 16000, "width": 2, "channels": 1}}\n'
        b'{"type": "audio-chunk", "payload_length": 3}\n\x00\x00\x00',  # half a sample
        b"this is not json\n",
        b"[1, 2, 3]\n",
    ],
)
async def test_bad_input_closes_only_that_connection(make_server: Any, bad: bytes) -> None:
    server = await make_server()
    # a well-behaved client is mid-utterance on another connection
    async with client(server) as good:
        await good.write_event(Transcribe(language="en").event())
        await good.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await good.write_event(AudioChunk(rate=16000, width=2, channels=1,
                                          audio=b"\x01\x00" * 100).event())
        assert await _raw(server, bad) == b""  # closed without an answer
        await good.write_event(AudioChunk(rate=16000, width=2, channels=1,
                                          audio=b"\x01\x00" * 100).event())
        await good.write_event(AudioStop().event())
        event = await good.read_event()
    assert event is not None and Transcript.from_event(event).text.startswith("400 ")


async def test_disconnect_mid_utterance_cancels_the_stream(make_server: Any) -> None:
    server = await make_server()
    async with client(server) as c:
        await c.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await c.write_event(AudioChunk(rate=16000, width=2, channels=1,
                                       audio=b"\x00" * 64).event())
        await c.write_event(Describe().event())
        await c.read_event()  # the server has handled everything before
    for _ in range(50):
        if ByteCountingStream.instances[-1].cancelled:
            break
        await asyncio.sleep(0.02)
    assert ByteCountingStream.instances[-1].cancelled


async def test_two_clients_at_once(make_server: Any) -> None:
    server = await make_server()
    a, b = b"\x01\x00" * 3000, b"\x02\x00" * 5000
    ea, eb = await asyncio.gather(transcribe(server, a), transcribe(server, b))
    assert ea is not None and Transcript.from_event(ea).text.startswith("6000 ")
    assert eb is not None and Transcript.from_event(eb).text.startswith("10000 ")


async def test_stop_closes_open_connections(make_server: Any) -> None:
    server = await make_server()
    async with client(server) as c:
        await c.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await c.write_event(Describe().event())
        await c.read_event()
        await server.stop()
        assert await c.read_event() is None
    assert ByteCountingStream.instances[-1].cancelled


@pytest.mark.parametrize("rate_in", [8000, 22050, 44100, 48000])
def test_stream_resampler_is_seamless_across_chunks(rate_in: int) -> None:
    from bridge.wyoming_server import StreamResampler

    x = (8000 * np.sin(2 * np.pi * 300 * np.arange(rate_in * 2) / rate_in)).astype(np.int16)
    resampler, out, i = StreamResampler(rate_in, 16000), b"", 0
    sizes = np.random.default_rng(1).integers(1, 3000, size=10000)
    for n in sizes:
        if i >= len(x):
            break
        out += resampler.process(x[i : i + n])
        i += n
    y = np.frombuffer(out, dtype="<i2").astype(np.float64)
    assert abs(len(y) - 32000) <= 1  # no drift however the input was cut
    ref = 8000 * np.sin(2 * np.pi * 300 * np.arange(len(y)) / 16000)
    assert np.sqrt(np.mean((y - ref) ** 2)) < 60


async def test_transcribe_converts_44k1_in_odd_chunks(make_server: Any) -> None:
    server = await make_server()
    t = np.arange(44100) / 44100
    pcm = (6000 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()
    event = await transcribe(server, pcm, rate=44100, chunk=1234)
    assert event is not None and Transcript.is_type(event.type)
    assert abs(len(ByteCountingStream.instances[-1].audio) / 2 - 16000) <= 1
