"""Speech to text on a Wyoming ASR server (faster-whisper, speech-to-phrase, ...), and the
Wyoming wire helpers Hearth's Wyoming client and server share.

Privacy: the server's name is resolved and its addresses classified *before* anything connects
(``bridge.privacy.locality``). Under local-only a server that resolves to a public address is
refused without a socket ever being created, and the connection goes to the exact address that
was checked, so a DNS answer cannot change between the check and the connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping

from wyoming.asr import Transcribe
from wyoming.asr import Transcript as WyTranscript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error as WyError
from wyoming.event import Event
from wyoming.version import __version__ as WYOMING_VERSION

from bridge.engines import EngineError, Locality, SpeechToText, SttStream, Transcript
from bridge.privacy.gate import LocalityGate
from bridge.privacy.locality import (
    CheckedEndpoint,
    CloudRefused,
    classify_address,
    resolve_endpoint,
)

_LOGGER = logging.getLogger(__name__)

RATE = 16000
WIDTH = 2
CHANNELS = 1
MAX_HEADER_BYTES = 64 * 1024
MAX_DATA_BYTES = 64 * 1024
MAX_PAYLOAD_BYTES = 1024 * 1024  # one event's binary payload (about 32 s of 16 kHz audio)
FEED_CHUNK_BYTES = 4096  # audio-chunk size sent upstream (128 ms at 16 kHz)


# --------------------------------------------------------------------------- wire helpers


class WyomingProtocolError(Exception):
    """The peer sent something that is not a well-formed, acceptable Wyoming event."""


def encode_event(event: Event) -> bytes:
    """One Wyoming event as bytes on the wire: JSON header line, then data, then payload.

    Same framing as ``wyoming.event.async_write_event``; returning the bytes lets callers count
    exactly what they send.
    """
    header: dict[str, object] = {"type": event.type, "version": WYOMING_VERSION}
    data_bytes = b""
    if event.data:
        data_bytes = json.dumps(event.data, ensure_ascii=False).encode("utf-8")
        header["data_length"] = len(data_bytes)
    payload = event.payload or b""
    if payload:
        header["payload_length"] = len(payload)
    line = json.dumps(header, ensure_ascii=False).encode("utf-8") + b"\n"
    return line + data_bytes + payload


async def read_event(
    reader: asyncio.StreamReader,
    *,
    max_data: int = MAX_DATA_BYTES,
    max_payload: int = MAX_PAYLOAD_BYTES,
) -> Event | None:
    """Read one Wyoming event, refusing oversized parts before reading them.

    Returns None at a clean end of stream; raises WyomingProtocolError for anything malformed,
    truncated or larger than the limits (``wyoming.event.async_read_event`` would allocate
    whatever length the peer announces).
    """
    try:
        line = await reader.readline()
    except ValueError as err:  # the StreamReader's line limit was exceeded
        raise WyomingProtocolError("event header line too long") from err
    if not line:
        return None
    if len(line) > MAX_HEADER_BYTES or not line.endswith(b"\n"):
        raise WyomingProtocolError("event header truncated or too long")
    try:
        header = json.loads(line)
    except ValueError as err:
        raise WyomingProtocolError("event header is not JSON") from err
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise WyomingProtocolError("event header has no type")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise WyomingProtocolError("event data is not an object")
    data_length = _length(header, "data_length", max_data)
    payload_length = _length(header, "payload_length", max_payload)
    try:
        if data_length:
            extra = json.loads(await reader.readexactly(data_length))
            if not isinstance(extra, dict):
                raise WyomingProtocolError("event data is not an object")
            data.update(extra)
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError as err:
        raise WyomingProtocolError("connection closed in the middle of an event") from err
    except ValueError as err:
        raise WyomingProtocolError("event data is not JSON") from err
    return Event(type=header["type"], data=data, payload=payload)


def _length(header: Mapping[str, object], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise WyomingProtocolError(f"{key} is not a non-negative integer")
    if value > limit:
        raise WyomingProtocolError(f"{key} {value} exceeds the limit of {limit} bytes")
    return value


class EventWriter:
    """Writes Wyoming events to a stream and counts the bytes sent."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.bytes_sent = 0

    async def write(self, event: Event) -> None:
        """Send one event and wait until the transport has taken it."""
        data = encode_event(event)
        self.writer.write(data)
        self.bytes_sent += len(data)
        await self.writer.drain()

    async def close(self) -> None:
        """Close the connection; never raises."""
        with contextlib.suppress(Exception):
            self.writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self.writer.wait_closed()


def audio_format(data: Mapping[str, object]) -> tuple[int, int, int]:
    """``(rate, width, channels)`` from an audio event's data; WyomingProtocolError if absurd."""
    rate, width, channels = data.get("rate"), data.get("width"), data.get("channels")
    if not (isinstance(rate, int) and 4000 <= rate <= 192000):
        raise WyomingProtocolError(f"bad audio rate {rate!r}")
    if not (isinstance(width, int) and 1 <= width <= 4):
        raise WyomingProtocolError(f"bad audio width {width!r}")
    if not (isinstance(channels, int) and 1 <= channels <= 8):
        raise WyomingProtocolError(f"bad audio channels {channels!r}")
    return rate, width, channels


def check_server_args(host: str, port: int, timeout: float) -> int:
    """Validate a Wyoming server's settings (ValueError); returns the port as an int."""
    if not host:
        raise ValueError("host is required")
    if isinstance(port, bool) or not 0 < int(port) < 65536:
        raise ValueError(f"invalid port {port!r}")
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    return int(port)


def guess_locality(host: str) -> Locality:
    """Locality from the configured host alone, before any lookup (names count as CLOUD).

    Only a first estimate for ``describe()``; every connection resolves and checks for real.
    """
    if host == "localhost":
        return Locality.LAN
    return classify_address(host)  # an IP literal, or CLOUD for anything else


async def connect_checked(
    host: str,
    port: int,
    gate: LocalityGate,
    engine: str,
    timeout: float,
    code_prefix: str,
    on_resolved: Callable[[CheckedEndpoint], None] | None = None,
) -> tuple[CheckedEndpoint, asyncio.StreamReader, asyncio.StreamWriter]:
    """Resolve and classify ``host``, then connect to the checked address through ``gate``
    (which refuses CLOUD under local-only and counts the refusal). ``on_resolved`` sees the
    endpoint before the gate decides.

    Raises EngineError ``cloud_refused`` (nothing was connected), ``<prefix>_unreachable`` or
    ``<prefix>_timeout``.
    """
    try:
        async with asyncio.timeout(timeout):
            endpoint = await resolve_endpoint(host, port)
    except TimeoutError:
        raise EngineError(
            f"{code_prefix}_timeout", f"{engine}: resolving {host} took more than {timeout:g} s"
        ) from None
    except (OSError, ValueError) as err:
        raise EngineError(
            f"{code_prefix}_unreachable", f"{engine}: cannot resolve {host}: {err}"
        ) from err
    if on_resolved is not None:
        on_resolved(endpoint)
    try:
        reader, writer = await gate.connect(endpoint, engine, timeout)
    except CloudRefused as err:
        raise EngineError(
            "cloud_refused",
            f"{engine}: {host} is a {endpoint.locality} address and the policy is local-only",
        ) from err
    except TimeoutError:
        raise EngineError(
            f"{code_prefix}_timeout",
            f"{engine}: connecting to {host}:{port} took more than {timeout:g} s",
        ) from None
    except OSError as err:
        raise EngineError(
            f"{code_prefix}_unreachable", f"{engine}: cannot connect to {host}:{port}: {err}"
        ) from err
    return endpoint, reader, writer


# --------------------------------------------------------------------------- the engine


class WyomingStt(SpeechToText):
    """A Wyoming ASR server as Hearth's speech-to-text engine.

    Args:
        host: server name or address.
        port: server TCP port (10300 is the usual one for Wyoming ASR).
        gate: the locality gate every connection goes through (it reads the policy on every
            ``open()`` and counts refusals).
        language: sent in the ``transcribe`` event, e.g. ``"en"``.
        timeout: seconds allowed to connect, and again to wait for the transcript after the
            last audio was sent.
        model: optional model name for ``transcribe`` (None lets the server choose).
    """

    def __init__(
        self,
        host: str,
        port: int,
        gate: LocalityGate,
        language: str = "en",
        timeout: float = 10.0,
        model: str | None = None,
    ) -> None:
        self.port = check_server_args(host, port, timeout)
        self.host = host
        self.gate = gate
        self.language = language
        self.timeout = timeout
        self.model = model
        self.name = f"wyoming:{host}"
        # An estimate until the first connection; then what the last check found.
        self.locality = guess_locality(host)
        self.address_class = "none"

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "host": self.host,
            "port": self.port,
            "language": self.language,
            "address_class": self.address_class,
        }

    def _resolved(self, endpoint: CheckedEndpoint) -> None:
        self.locality = endpoint.locality
        self.address_class = endpoint.address_class

    async def open(self, session_id: str, *, area: str | None = None) -> SttStream:
        """Check the endpoint, connect and start an utterance (`area` is not used).

        Raises EngineError ``cloud_refused`` (before any connection), ``stt_unreachable`` or
        ``stt_timeout``.
        """
        endpoint, reader, writer = await connect_checked(
            self.host, self.port, self.gate, self.name, self.timeout, "stt",
            self._resolved,
        )
        stream = _WyomingSttStream(self, endpoint, reader, EventWriter(writer), session_id)
        try:
            await stream.start()
        except BaseException:
            await stream.cancel()
            raise
        return stream


class _WyomingSttStream(SttStream):
    """One utterance streamed to the Wyoming server as it is fed."""

    def __init__(
        self,
        engine: WyomingStt,
        endpoint: CheckedEndpoint,
        reader: asyncio.StreamReader,
        writer: EventWriter,
        session_id: str,
    ) -> None:
        self._engine = engine
        self._endpoint = endpoint
        self._reader = reader
        self._writer = writer
        self._session_id = session_id
        self._audio_bytes = 0
        self._closed = False

    async def start(self) -> None:
        transcribe = Transcribe(name=self._engine.model, language=self._engine.language)
        await self._send(transcribe.event())
        await self._send(AudioStart(rate=RATE, width=WIDTH, channels=CHANNELS).event())

    async def feed(self, pcm: bytes) -> None:
        """Send 16 kHz mono 16-bit PCM to the server now."""
        if self._closed:
            raise EngineError("stt_failed", f"{self._engine.name}: the stream is closed")
        for start in range(0, len(pcm), FEED_CHUNK_BYTES):
            piece = pcm[start : start + FEED_CHUNK_BYTES]
            chunk = AudioChunk(rate=RATE, width=WIDTH, channels=CHANNELS, audio=piece)
            await self._send(chunk.event())
            self._audio_bytes += len(piece)

    async def finish(self) -> Transcript:
        """End the audio and wait for the server's transcript."""
        if self._closed:
            raise EngineError("stt_failed", f"{self._engine.name}: the stream is closed")
        name = self._engine.name
        try:
            await self._send(AudioStop().event())
            try:
                async with asyncio.timeout(self._engine.timeout):
                    text = await self._read_transcript()
            except TimeoutError:
                raise EngineError(
                    "stt_timeout", f"{name}: no transcript within {self._engine.timeout:g} s"
                ) from None
        finally:
            await self.cancel()
        text = text.strip()
        return Transcript(
            text=text,
            confidence=1.0 if text else 0.0,  # Wyoming reports no confidence
            rejected=not text,
            engine=name,
            locality=self._endpoint.locality,
            audio_seconds=self._audio_bytes / (RATE * WIDTH * CHANNELS),
            bytes_sent=self._writer.bytes_sent,
            address_class=self._endpoint.address_class,
        )

    async def cancel(self) -> None:
        """Drop the connection; the server gets no audio-stop. Safe to call twice."""
        if not self._closed:
            self._closed = True
            await self._writer.close()

    @property
    def bytes_sent(self) -> int:
        """Bytes written to the server so far on this stream."""
        return self._writer.bytes_sent

    async def _send(self, event: Event) -> None:
        try:
            async with asyncio.timeout(self._engine.timeout):
                await self._writer.write(event)
        except TimeoutError:
            await self.cancel()
            raise EngineError(
                "stt_timeout", f"{self._engine.name}: the server is not taking audio"
            ) from None
        except (OSError, RuntimeError) as err:  # RuntimeError: write after close
            await self.cancel()
            raise EngineError(
                "stt_failed", f"{self._engine.name}: connection lost while sending: {err}"
            ) from err

    async def _read_transcript(self) -> str:
        name = self._engine.name
        while True:
            try:
                event = await read_event(self._reader)
            except WyomingProtocolError as err:
                raise EngineError("stt_failed", f"{name}: bad reply from server: {err}") from err
            except OSError as err:
                raise EngineError("stt_failed", f"{name}: connection lost: {err}") from err
            if event is None:
                raise EngineError("stt_failed", f"{name}: server closed before the transcript")
            if WyTranscript.is_type(event.type):
                text = event.data.get("text")
                if not isinstance(text, str):
                    raise EngineError("stt_failed", f"{name}: transcript without text")
                return text
            if WyError.is_type(event.type):
                message = str(event.data.get("text", ""))[:200]
                raise EngineError("stt_failed", f"{name}: server error: {message}")
            # transcript-start/-chunk and anything else: wait for the final transcript
