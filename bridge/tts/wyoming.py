"""Text to speech on a Wyoming TTS server (Piper and friends).

The server's address is resolved and classified before anything connects, and the connection
goes through the locality gate (``bridge.privacy.gate``): under local-only a server that resolves
to a public address is refused (and counted) without a socket being created.
"""

from __future__ import annotations

import asyncio
import logging

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error as WyError
from wyoming.tts import Synthesize, SynthesizeVoice

from bridge.audio.resample import convert
from bridge.engines import EngineError, Locality, SynthesizedAudio, TextToSpeech
from bridge.privacy.gate import LocalityGate
from bridge.privacy.locality import CheckedEndpoint
from bridge.stt.wyoming import (
    EventWriter,
    WyomingProtocolError,
    audio_format,
    check_server_args,
    connect_checked,
    guess_locality,
    read_event,
)
from bridge.tts.espeak import MAX_TEXT_CHARS, check_rate

_LOGGER = logging.getLogger(__name__)

MAX_AUDIO_BYTES = 64 * 1024 * 1024  # all chunks of one answer together (~25 min at 22 kHz)


class WyomingTts(TextToSpeech):
    """A Wyoming TTS server as Hearth's voice.

    Args:
        host: server name or address.
        port: server TCP port (10200 is the usual one for Piper).
        gate: the locality gate every connection goes through (it reads the policy on every
            synthesis and counts refusals).
        voice: voice name to request (None lets the server choose).
        speaker: speaker within a multi-speaker voice.
        timeout: seconds allowed to connect, and again for the whole answer to arrive.
    """

    def __init__(
        self,
        host: str,
        port: int,
        gate: LocalityGate,
        voice: str | None = None,
        speaker: str | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.port = check_server_args(host, port, timeout)
        self.host = host
        self.gate = gate
        self.voice = voice
        self.speaker = speaker
        self.timeout = timeout
        self.name = f"wyoming:{host}"
        self.locality: Locality = guess_locality(host)
        self.address_class = "none"

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "host": self.host,
            "port": self.port,
            "voice": self.voice,
            "address_class": self.address_class,
        }

    def _resolved(self, endpoint: CheckedEndpoint) -> None:
        self.locality = endpoint.locality
        self.address_class = endpoint.address_class

    async def synthesize(self, text: str, rate: int) -> SynthesizedAudio:
        """Ask the server to speak `text`; returns mono 16-bit PCM at `rate` Hz.

        Raises EngineError ``tts_empty_text``, ``tts_bad_rate``, ``cloud_refused`` (before any
        connection), ``tts_unreachable``, ``tts_timeout`` or ``tts_failed``.
        """
        if not isinstance(text, str) or not text.strip():
            raise EngineError("tts_empty_text", "nothing to say: the text is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise EngineError(
                "tts_text_too_long",
                f"text has {len(text)} characters; the limit is {MAX_TEXT_CHARS}",
            )
        check_rate(rate)
        endpoint, reader, raw_writer = await connect_checked(
            self.host, self.port, self.gate, self.name, self.timeout, "tts",
            self._resolved,
        )
        writer = EventWriter(raw_writer)
        try:
            async with asyncio.timeout(self.timeout):
                voice = None
                if self.voice is not None:
                    voice = SynthesizeVoice(name=self.voice, speaker=self.speaker)
                await writer.write(Synthesize(text=text.strip(), voice=voice).event())
                pcm, src_rate = await self._collect(reader, rate)
        except TimeoutError:
            raise EngineError(
                "tts_timeout", f"{self.name}: no complete answer within {self.timeout:g} s"
            ) from None
        except WyomingProtocolError as err:
            raise EngineError("tts_failed", f"{self.name}: bad reply from server: {err}") from err
        except (OSError, RuntimeError) as err:
            raise EngineError("tts_failed", f"{self.name}: connection lost: {err}") from err
        finally:
            await writer.close()
        if not pcm:
            raise EngineError("tts_failed", f"{self.name}: the server sent no audio")
        return SynthesizedAudio(
            pcm=pcm,
            rate=rate,
            engine=self.name,
            locality=endpoint.locality,
            bytes_sent=writer.bytes_sent,
            extra={"source_rate": src_rate, "address_class": endpoint.address_class},
        )

    async def _collect(self, reader: asyncio.StreamReader, rate: int) -> tuple[bytes, int]:
        """Read audio-start/chunk.../audio-stop; returns PCM converted to `rate`."""
        parts: list[bytes] = []
        pending = bytearray()  # consecutive chunks in one format, converted together
        fmt: tuple[int, int, int] | None = None
        total = 0
        first_rate = 0
        while True:
            event = await read_event(reader)
            if event is None:
                raise EngineError("tts_failed", f"{self.name}: server closed before audio-stop")
            if AudioStart.is_type(event.type) or AudioChunk.is_type(event.type):
                new_fmt = audio_format(event.data)
                if fmt is not None and new_fmt != fmt and pending:
                    parts.append(await _convert(bytes(pending), fmt, rate))
                    pending.clear()
                fmt = new_fmt
                first_rate = first_rate or fmt[0]
                if AudioChunk.is_type(event.type) and event.payload:
                    total += len(event.payload)
                    if total > MAX_AUDIO_BYTES:
                        raise EngineError("tts_failed", f"{self.name}: answer too long")
                    pending += event.payload
            elif AudioStop.is_type(event.type):
                break
            elif WyError.is_type(event.type):
                message = str(event.data.get("text", ""))[:200]
                raise EngineError("tts_failed", f"{self.name}: server error: {message}")
        if fmt is not None and pending:
            parts.append(await _convert(bytes(pending), fmt, rate))
        return b"".join(parts), first_rate


async def _convert(pcm: bytes, fmt: tuple[int, int, int], rate: int) -> bytes:
    src_rate, width, channels = fmt
    frame = width * channels
    pcm = pcm[: len(pcm) - len(pcm) % frame]
    return await asyncio.to_thread(convert, pcm, src_rate, width, channels, rate)
