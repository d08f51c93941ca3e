"""WyomingStt against real Wyoming servers started here (wyoming.server.AsyncServer)."""

from __future__ import annotations

import asyncio
import sys
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.server import AsyncEventHandler, AsyncServer, AsyncTcpServer

from bridge.engines import EngineError, Locality
from bridge.privacy.audit import AuditLog
from bridge.privacy.gate import LocalityGate
from bridge.privacy.policy import Policy
from bridge.stt.wyoming import WyomingStt, encode_event, read_event
from tests.support.speech import have_espeak, read_pcm

# -- socket.connect audit: a process-wide hook, switched on per test ------------------------

_CONNECTS: list[Any] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _CONNECTS is not None:
        _CONNECTS.append(args[1])


sys.addaudithook(_audit)


@pytest.fixture
def connects() -> Any:
    global _CONNECTS
    _CONNECTS = []
    try:
        yield _CONNECTS
    finally:
        _CONNECTS = None


def local_only() -> Policy:
    return Policy(local_only=True)


def cloud_allowed() -> Policy:
    return Policy(local_only=False)


def gate_for(policy: Callable[[], Policy]) -> LocalityGate:
    """A locality gate reading `policy`, counting into a fresh audit log."""
    return LocalityGate(policy, AuditLog())


# -- a real Wyoming ASR server whose transcript depends on the audio it received -------------


class CountingAsr(AsyncEventHandler):
    """Answers with '<bytes> <crc32> <language>' of exactly the audio it was sent."""

    received: list[dict[str, Any]] = []

    def __init__(self, *args: Any, behaviour: str = "answer", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audio = bytearray()
        self.language: str | None = None
        self.started = False
        self.behaviour = behaviour

    async def handle_event(self, event: Event) -> bool:
        if Transcribe.is_type(event.type):
            self.language = Transcribe.from_event(event).language
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            assert (start.rate, start.width, start.channels) == (16000, 2, 1)
            self.started = True
        elif AudioChunk.is_type(event.type):
            assert self.started
            self.audio += AudioChunk.from_event(event).audio
        elif AudioStop.is_type(event.type):
            if self.behaviour == "close":
                return False
            if self.behaviour == "hang":
                await asyncio.sleep(30)
            text = f"{len(self.audio)} {zlib.crc32(self.audio):08x} {self.language}"
            await self.write_event(Event(type="transcript-start"))
            await self.write_event(Transcript(text=text).event())
        return True


async def start_server(factory: Callable[..., AsyncEventHandler]) -> tuple[AsyncServer, int]:
    server = AsyncServer.from_uri("tcp://127.0.0.1:0")
    assert isinstance(server, AsyncTcpServer)
    await server.start(factory)
    assert server._server is not None
    return server, server._server.sockets[0].getsockname()[1]


@pytest.fixture
async def asr_server() -> AsyncIterator[Callable[[str], Any]]:
    servers: list[AsyncServer] = []

    async def _start(behaviour: str = "answer") -> int:
        server, port = await start_server(
            lambda r, w: CountingAsr(r, w, behaviour=behaviour)
        )
        servers.append(server)
        return port

    yield _start
    for server in servers:
        await server.stop()


def speech_pcm(say: Callable[..., Path]) -> bytes:
    if not have_espeak():
        pytest.skip("espeak-ng not installed")
    return read_pcm(say("turn on the kitchen light"))


# -- tests ------------------------------------------------------------------------------------


async def test_streams_audio_and_returns_server_transcript(asr_server: Any, say: Any) -> None:
    pcm = speech_pcm(say)
    port = await asr_server()
    stt = WyomingStt("127.0.0.1", port, gate_for(local_only), language="en", timeout=5)
    stream = await stt.open("s1")
    for i in range(0, len(pcm), 960):  # as a satellite would feed it: 30 ms at a time
        await stream.feed(pcm[i : i + 960])
    result = await stream.finish()
    assert result.text == f"{len(pcm)} {zlib.crc32(pcm):08x} en"
    assert result.engine == "wyoming:127.0.0.1"
    assert result.locality == Locality.LAN and result.address_class == "loopback"
    assert abs(result.audio_seconds - len(pcm) / 32000) < 1e-9
    assert result.bytes_sent > len(pcm)  # audio plus event headers
    assert not result.rejected and result.confidence == 1.0
    assert stt.locality == Locality.LAN


async def test_audio_is_sent_as_fed_not_at_the_end(say: Any) -> None:
    """The server sees the first audio before the client has finished feeding."""
    seen = asyncio.Event()

    class Watcher(CountingAsr):
        async def handle_event(self, event: Event) -> bool:
            if AudioChunk.is_type(event.type):
                seen.set()
            return await super().handle_event(event)

    server, port = await start_server(lambda r, w: Watcher(r, w))
    try:
        stream = await WyomingStt("127.0.0.1", port, gate_for(local_only)).open("s")
        await stream.feed(b"\x01\x00" * 800)
        await asyncio.wait_for(seen.wait(), 2)
        result = await stream.finish()
        assert result.text.startswith("1600 ")
    finally:
        await server.stop()


async def test_bytes_sent_counts_the_wire_exactly(asr_server: Any) -> None:
    port = await asr_server()
    stream = await WyomingStt("127.0.0.1", port, gate_for(local_only), language="en").open("s")
    pcm = b"\x00\x01" * 5000
    await stream.feed(pcm)
    result = await stream.finish()
    expected = [
        Transcribe(language="en").event(),
        AudioStart(rate=16000, width=2, channels=1).event(),
        *(
            AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i : i + 4096]).event()
            for i in range(0, len(pcm), 4096)
        ),
        AudioStop().event(),
    ]
    assert result.bytes_sent == sum(len(encode_event(e)) for e in expected)


async def test_cloud_server_refused_before_any_connect(connects: list[Any]) -> None:
    gate = gate_for(local_only)
    stt = WyomingStt("198.51.100.7", 10300, gate, timeout=2)
    with pytest.raises(EngineError) as info:
        await stt.open("s")
    assert info.value.code == "cloud_refused"
    assert "198.51.100.7" in info.value.message and "local-only" in info.value.message
    assert connects == []
    # The gate refused it and counted it, once.
    assert gate.audit.blocked_by() == {("wyoming:198.51.100.7", "local_only"): 1}
    assert gate.audit.counters["blocked_cloud_requests"] == 1
    assert stt.locality == Locality.CLOUD and stt.address_class == "public"


async def test_policy_is_read_on_every_open(asr_server: Any, connects: list[Any]) -> None:
    port = await asr_server()
    policy = {"now": cloud_allowed()}
    gate = gate_for(lambda: policy["now"])
    stt = WyomingStt("127.0.0.1", port, gate)
    stream = await stt.open("a")
    await stream.cancel()
    assert len(connects) == 1
    # Loopback stays allowed under local-only; a public address does not.
    policy["now"] = local_only()
    stream = await stt.open("b")
    await stream.cancel()
    cloud = WyomingStt("198.51.100.7", port, gate)
    with pytest.raises(EngineError):
        await cloud.open("c")
    assert len(connects) == 2
    assert gate.audit.blocked_by() == {("wyoming:198.51.100.7", "local_only"): 1}


async def test_server_closing_without_transcript_is_an_error(asr_server: Any) -> None:
    port = await asr_server("close")
    stream = await WyomingStt("127.0.0.1", port, gate_for(local_only)).open("s")
    await stream.feed(b"\x00\x00" * 100)
    with pytest.raises(EngineError) as info:
        await stream.finish()
    assert info.value.code == "stt_failed" and "closed" in info.value.message


async def test_server_that_never_answers_times_out(asr_server: Any) -> None:
    port = await asr_server("hang")
    stream = await WyomingStt("127.0.0.1", port, gate_for(local_only), timeout=0.3).open("s")
    await stream.feed(b"\x00\x00" * 100)
    with pytest.raises(EngineError) as info:
        await stream.finish()
    assert info.value.code == "stt_timeout" and "0.3" in info.value.message


async def test_nothing_listening_is_unreachable() -> None:
    server, port = await start_server(lambda r, w: CountingAsr(r, w))
    await server.stop()
    await asyncio.sleep(0.05)
    with pytest.raises(EngineError) as info:
        await WyomingStt("127.0.0.1", port, gate_for(local_only), timeout=1).open("s")
    assert info.value.code == "stt_unreachable"


async def test_cancel_closes_the_connection(asr_server: Any) -> None:
    port = await asr_server()
    stream = await WyomingStt("127.0.0.1", port, gate_for(local_only)).open("s")
    await stream.cancel()
    await stream.cancel()  # twice is fine
    with pytest.raises(EngineError):
        await stream.feed(b"\x00\x00")


async def test_read_event_refuses_oversized_payload_before_reading() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b'{"type": "audio-chunk", "payload_length": 999999999}\n')
    from bridge.stt.wyoming import WyomingProtocolError

    with pytest.raises(WyomingProtocolError):
        await read_event(reader)
    reader = asyncio.StreamReader()
    reader.feed_data(b"not json\n")
    with pytest.raises(WyomingProtocolError):
        await read_event(reader)
    reader = asyncio.StreamReader()
    reader.feed_data(encode_event(Transcript(text="héllo").event()))
    reader.feed_eof()
    event = await read_event(reader)
    assert event is not None and event.data["text"] == "héllo"
    assert await read_event(reader) is None
