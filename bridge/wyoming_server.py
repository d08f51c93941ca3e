"""A Wyoming server, so Home Assistant can use Hearth's recognizer and voice in any Assist
pipeline (Settings → Devices & services → Add integration → Wyoming Protocol → host, port).

What Home Assistant's Wyoming integration does, and what this answers:

- ``describe`` (on setup; 1 s timeout, 3 tries) → ``info`` with one ASR program/model
  ``hearth`` and, if a voice is configured, one TTS program with voice ``hearth-espeak``.
- ``transcribe``, ``audio-start``, ``audio-chunk``..., ``audio-stop`` → ``transcript``. The
  audio is converted to 16 kHz mono 16-bit and fed to the recognizer as it arrives.
- ``synthesize`` → ``audio-start``, ``audio-chunk`` (at most 2048 samples each), ``audio-stop``.

A connection that sends something malformed (audio before ``audio-start``, an unknown event, an
oversized chunk, bad audio format) is logged and closed; other connections carry on. An engine
failure is answered with a Wyoming ``error`` event and the connection is closed, which Home
Assistant reports as a failed stage instead of waiting for its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import numpy as np
from wyoming.asr import Transcribe
from wyoming.asr import Transcript as WyTranscript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error as WyError
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.ping import Ping, Pong
from wyoming.tts import Synthesize

from bridge import __version__
from bridge.audio.resample import to_mono_int16
from bridge.engines import EngineError, SttStream, TextToSpeech
from bridge.stt.wyoming import EventWriter, WyomingProtocolError, audio_format, read_event

_LOGGER = logging.getLogger(__name__)

RATE = 16000
WIDTH = 2
CHANNELS = 1
TTS_CHUNK_SAMPLES = 2048
MAX_CHUNK_BYTES = 256 * 1024  # one incoming audio-chunk (~8 s at 16 kHz mono)
MAX_UTTERANCE_SECONDS = 120.0
ATTRIBUTION = Attribution(name="Hearth", url="https://github.com/hearth-voice/hearth")


class _BadInput(Exception):
    """The client broke the protocol; its connection is closed."""


class HearthWyomingServer:
    """Serves Hearth's speech-to-text and text-to-speech over the Wyoming protocol.

    Args:
        host: address to bind (``127.0.0.1`` for this machine only, ``0.0.0.0`` for the LAN).
        port: TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
        stt_factory: opens a new recognizer stream for one utterance.
        tts: the voice for ``synthesize``; None advertises no TTS.
        language: the one language advertised and passed back in transcripts.
        info_name: program and model name shown in Home Assistant.
        version: version string advertised in ``info``.
        tts_rate: sample rate of the audio sent back for ``synthesize``.
        tts_voice: voice name advertised in ``info``.
        max_connections: connections served at once; more are closed on arrival.
        idle_timeout: seconds a connection may stay silent before it is closed.
    """

    def __init__(
        self,
        host: str,
        port: int,
        stt_factory: Callable[[], Awaitable[SttStream]],
        tts: TextToSpeech | None,
        language: str = "en",
        info_name: str = "hearth",
        version: str = __version__,
        *,
        tts_rate: int = 22050,
        tts_voice: str = "hearth-espeak",
        max_connections: int = 16,
        idle_timeout: float = 60.0,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.stt_factory = stt_factory
        self.tts = tts
        self.language = language
        self.info_name = info_name
        self.version = version
        self.tts_rate = tts_rate
        self.tts_voice = tts_voice
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._info_event = self._build_info().event()

    @property
    def port(self) -> int:
        """The bound port (the one the OS picked when 0 was given); before start, as given."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._requested_port

    @property
    def info(self) -> Info:
        """What ``describe`` answers."""
        return Info.from_event(self._info_event)

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, host=self.host, port=self._requested_port, limit=64 * 1024
        )
        _LOGGER.info("Wyoming server listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stop accepting, drop every connection (cancelling its recognizer stream)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await server.wait_closed()

    def _build_info(self) -> Info:
        description = "Hearth: private, local voice control"
        asr = AsrProgram(
            name=self.info_name,
            attribution=ATTRIBUTION,
            installed=True,
            description=description,
            version=self.version,
            models=[
                AsrModel(
                    name=self.info_name,
                    attribution=ATTRIBUTION,
                    installed=True,
                    description="Hearth recognizer for this home's commands",
                    version=self.version,
                    languages=[self.language],
                )
            ],
        )
        tts: list[TtsProgram] = []
        if self.tts is not None:
            voice = TtsVoice(
                name=self.tts_voice,
                attribution=ATTRIBUTION,
                installed=True,
                description=f"Hearth ({self.tts.name})",
                version=self.version,
                languages=[self.language],
            )
            tts.append(
                TtsProgram(
                    name=self.info_name,
                    attribution=ATTRIBUTION,
                    installed=True,
                    description=description,
                    version=self.version,
                    voices=[voice],
                )
            )
        return Info(asr=[asr], tts=tts)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        if len(self._connections) >= self.max_connections:
            _LOGGER.warning("Wyoming: refusing %s, %d connections open", peer, self.max_connections)
            writer.close()
            return
        self._connections.add(task)
        try:
            await _Connection(self, reader, writer, str(peer)).run()
        finally:
            self._connections.discard(task)


class _Connection:
    """One client connection: a thin dispatcher over the events it sends."""

    def __init__(
        self,
        server: HearthWyomingServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = EventWriter(writer)
        self.peer = peer
        self.stream: SttStream | None = None
        self.fmt: tuple[int, int, int] | None = None
        self.audio_seconds = 0.0
        self.resampler: StreamResampler | None = None
        self.language: str | None = None

    async def run(self) -> None:
        try:
            while True:
                async with asyncio.timeout(self.server.idle_timeout):
                    event = await read_event(self.reader, max_payload=MAX_CHUNK_BYTES)
                if event is None:
                    break
                if not await self.handle(event):
                    break
        except (_BadInput, WyomingProtocolError) as err:
            _LOGGER.warning("Wyoming client %s: %s; closing its connection", self.peer, err)
        except TimeoutError:
            _LOGGER.info(
                "Wyoming client %s idle for %gs; closing", self.peer, self.server.idle_timeout
            )
        except (ConnectionError, OSError) as err:
            _LOGGER.info("Wyoming client %s went away: %s", self.peer, err)
        except Exception:  # a bug in an engine: lose this connection, not the server
            _LOGGER.exception("Wyoming client %s: unexpected error; closing", self.peer)
        finally:
            await self._drop_stream()
            await self.writer.close()

    async def handle(self, event: Event) -> bool:
        """Handle one event; False closes the connection."""
        if Describe.is_type(event.type):
            await self.writer.write(self.server._info_event)
            return True
        if Ping.is_type(event.type):
            await self.writer.write(Pong(text=event.data.get("text")).event())
            return True
        if Transcribe.is_type(event.type):
            language = event.data.get("language")
            self.language = language if isinstance(language, str) else None
            await self._drop_stream()
            return True
        if AudioStart.is_type(event.type):
            return await self._audio_start(event)
        if AudioChunk.is_type(event.type):
            return await self._audio_chunk(event)
        if AudioStop.is_type(event.type):
            return await self._audio_stop()
        if Synthesize.is_type(event.type):
            return await self._synthesize(event)
        raise _BadInput(f"unexpected event {event.type[:40]!r}")

    async def _audio_start(self, event: Event) -> bool:
        await self._drop_stream()
        self.fmt = audio_format(event.data)
        self.audio_seconds = 0.0
        try:
            self.stream = await self.server.stt_factory()
        except EngineError as err:
            return await self._fail(err)
        return True

    async def _audio_chunk(self, event: Event) -> bool:
        if self.stream is None or self.fmt is None:
            raise _BadInput("audio-chunk without audio-start")
        fmt = audio_format({**_as_format_dict(self.fmt), **event.data})
        rate, width, channels = fmt
        payload = event.payload or b""
        if len(payload) % (width * channels):
            raise _BadInput("audio-chunk is not a whole number of frames")
        self.audio_seconds += len(payload) / (rate * width * channels)
        if self.audio_seconds > MAX_UTTERANCE_SECONDS:
            raise _BadInput(f"utterance longer than {MAX_UTTERANCE_SECONDS:g} s")
        if not payload:
            return True
        if fmt == (RATE, WIDTH, CHANNELS):
            pcm = payload
        else:
            if self.resampler is None or self.resampler.rate_in != rate:
                self.resampler = StreamResampler(rate, RATE)
            pcm = self.resampler.process(to_mono_int16(payload, width, channels))
        try:
            await self.stream.feed(pcm)
        except EngineError as err:
            return await self._fail(err)
        return True

    async def _audio_stop(self) -> bool:
        if self.stream is None:
            raise _BadInput("audio-stop without audio-start")
        stream, self.stream = self.stream, None
        self.fmt = None
        self.resampler = None
        try:
            transcript = await stream.finish()
        except EngineError as err:
            return await self._fail(err)
        text = "" if transcript.rejected else transcript.text
        language = self.language or self.server.language
        await self.writer.write(WyTranscript(text=text, language=language).event())
        return True

    async def _synthesize(self, event: Event) -> bool:
        tts = self.server.tts
        if tts is None:
            raise _BadInput("synthesize, but this server has no voice")
        text = event.data.get("text")
        if not isinstance(text, str):
            raise _BadInput("synthesize without text")
        try:
            audio = await tts.synthesize(text, self.server.tts_rate)
        except EngineError as err:
            return await self._fail(err)
        await self.writer.write(AudioStart(rate=audio.rate, width=WIDTH, channels=CHANNELS).event())
        step = TTS_CHUNK_SAMPLES * WIDTH
        for start in range(0, len(audio.pcm), step):
            chunk = AudioChunk(
                rate=audio.rate,
                width=WIDTH,
                channels=CHANNELS,
                audio=audio.pcm[start : start + step],
            )
            await self.writer.write(chunk.event())
        await self.writer.write(AudioStop().event())
        return True

    async def _fail(self, err: EngineError) -> bool:
        """Tell the client what went wrong, then close (Home Assistant waits otherwise)."""
        _LOGGER.warning("Wyoming client %s: %s (%s)", self.peer, err.message, err.code)
        with contextlib.suppress(Exception):
            await self.writer.write(WyError(text=err.message, code=err.code).event())
        return False

    async def _drop_stream(self) -> None:
        stream, self.stream = self.stream, None
        self.fmt = None
        self.resampler = None
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.cancel()


class StreamResampler:
    """Linear-interpolation resampling of a mono int16 stream that arrives in chunks.

    Unlike converting each chunk on its own, it carries the read position and the last input
    sample across chunks, so there are no clicks at chunk edges and no drift in length.
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in = rate_in
        self.rate_out = rate_out
        self._step = rate_in / rate_out
        self._pos = 0.0  # next output position, in input samples from the start of `_tail`
        self._tail = np.zeros(0, dtype=np.float64)

    def process(self, samples: np.ndarray) -> bytes:
        """Resample the next chunk; returns 16-bit little-endian PCM at `rate_out`."""
        x = np.concatenate([self._tail, samples.astype(np.float64)])
        if len(x) == 0:
            return b""
        last = len(x) - 1
        count = int(np.floor((last - self._pos) / self._step)) + 1 if self._pos <= last else 0
        positions = self._pos + self._step * np.arange(count)
        out = np.interp(positions, np.arange(len(x), dtype=np.float64), x)
        self._pos = self._pos + self._step * count - last
        self._tail = x[-1:]
        resampled: bytes = np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes()
        return resampled


def _as_format_dict(fmt: tuple[int, int, int]) -> dict[str, object]:
    return {"rate": fmt[0], "width": fmt[1], "channels": fmt[2]}
