"""Media announcements: Home Assistant media as one WAV for `<prefix>/satellite/<sat>/pipeline/play`.

The audio never comes from the network. A media id is turned into bytes only from:

- a text-to-speech stream of this Home Assistant (`media-source://tts/...`, `/api/tts_proxy/...`),
  synthesized by its engine (under `local_only`, only engines of local integrations);
- a file of a local media directory (`media-source://media_source/<dir>/<path>`, `/media/<dir>/...`)
  or of Home Assistant's `www` folder (`/local/...`);
- another media source that resolves to a local file.

URLs are accepted as relative paths or on this instance's own address (its internal, external or
loopback URL); they are mapped to the sources above, never fetched. Anything else is refused.
PCM / float WAV is converted here to 16-bit mono (same rate), in plain Python in an executor thread
(never on the event loop); other formats need Home Assistant's `ffmpeg` integration (an
`after_dependency`: used when it is set up). The result is at most `MAX_PLAY_BYTES`.
"""

from __future__ import annotations

from array import array
import asyncio
from pathlib import Path
import struct
import sys
from typing import TYPE_CHECKING, Any

from yarl import URL

from homeassistant.components import media_source, tts
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.network import NoURLAvailableError, get_url
from homeassistant.util import raise_if_invalid_path

from .assist_stream import MAX_PLAY_BYTES
from .const import DOMAIN
from .voice import async_engine_locality
from .wav import build_wav, wav_parts

if TYPE_CHECKING:
    from .models import Policy

# Read at most this much source audio (compressed media may shrink when converted).
MAX_SOURCE_BYTES = 32 * 1024 * 1024
# ffmpeg's output rate for non-WAV media (the bridge resamples to the satellite's rate).
FFMPEG_RATE = 22050
FFMPEG_TIMEOUT = 30.0

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_TTS_PROXY = "/api/tts_proxy/"
_TTS_MEDIA = "media-source://tts/"


class AnnounceMediaError(HomeAssistantError):
    """A translated refusal of an announcement's media."""

    def __init__(self, key: str, media_id: str, **placeholders: str) -> None:
        """Initialize."""
        super().__init__(
            translation_domain=DOMAIN,
            translation_key=key,
            translation_placeholders={"media_id": media_id, **placeholders},
        )


def tts_message(media_id: str) -> str | None:
    """Return the message of a `media-source://tts/<engine>?message=...` id, else None."""
    if not media_id.startswith(_TTS_MEDIA):
        return None
    message = URL(media_id).query.get("message")
    return message if isinstance(message, str) else None


async def async_announcement_wav(
    hass: HomeAssistant, media_id: str, policy: Policy | None
) -> bytes:
    """Return the announcement's media as a 16-bit mono PCM WAV of at most `MAX_PLAY_BYTES`."""
    extension, data = await _async_media_bytes(hass, media_id, policy)
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        size = wav_16bit_mono_size(data)
        if size is not None and size > MAX_PLAY_BYTES:  # refused before any conversion
            raise AnnounceMediaError(
                "announce_media_too_large",
                media_id,
                size=str(size),
                limit=str(MAX_PLAY_BYTES),
            )
        wav = await hass.async_add_executor_job(wav_16bit_mono, data)
        if wav is None:
            raise AnnounceMediaError("announce_media_format", media_id, format="wav")
    else:
        wav = await _async_ffmpeg_wav(hass, media_id, extension, data)
    if len(wav) > MAX_PLAY_BYTES:
        raise AnnounceMediaError(
            "announce_media_too_large",
            media_id,
            size=str(len(wav)),
            limit=str(MAX_PLAY_BYTES),
        )
    return wav


# ---------------------------------------------------------------------------- finding the bytes


async def _async_media_bytes(
    hass: HomeAssistant, media_id: str, policy: Policy | None
) -> tuple[str, bytes]:
    if media_id.startswith(_TTS_MEDIA):
        return await _async_tts_bytes(hass, media_id, policy)
    if media_source.is_media_source_id(media_id):
        try:
            media = await media_source.async_resolve_media(hass, media_id, None)
        except HomeAssistantError as err:
            raise AnnounceMediaError(
                "announce_media_unresolved", media_id, error=str(err)
            ) from err
        if media.path is not None:
            return await _async_read_file(hass, media_id, media.path)
        url = media.url
    else:
        url = media_id
    return await _async_url_bytes(hass, media_id, url, policy)


async def _async_tts_bytes(
    hass: HomeAssistant, media_id: str, policy: Policy | None
) -> tuple[str, bytes]:
    """Synthesize a TTS media id with Home Assistant's TTS manager (as its media source does)."""
    try:
        parsed = _parse_tts_media_id(media_id)
    except HomeAssistantError as err:
        raise AnnounceMediaError(
            "announce_media_unresolved", media_id, error=str(err)
        ) from err
    stream: tts.ResultStream | None
    if "stream" in parsed:
        stream = tts.async_get_stream(hass, parsed["stream"])
    else:
        options = parsed["options"]
        if (
            engine := tts.async_resolve_engine(hass, options["engine"] or None)
        ) is None:
            raise AnnounceMediaError(
                "announce_media_unresolved", media_id, error="no TTS engine"
            )
        await _async_check_engine(
            hass, media_id, engine, policy
        )  # before anything is sent
        # WAV if the engine can (Home Assistant would convert to MP3, which needs ffmpeg).
        engine_options = {
            tts.ATTR_PREFERRED_FORMAT: "wav",
            **(options["options"] or {}),
        }
        try:
            stream = tts.async_create_stream(
                hass, engine, options["language"], engine_options
            )
            stream.async_set_message(parsed["message"])
        except HomeAssistantError as err:
            raise AnnounceMediaError(
                "announce_media_unresolved", media_id, error=str(err)
            ) from err
    if stream is None:
        raise AnnounceMediaError(
            "announce_media_unresolved", media_id, error="stream gone"
        )
    return await _async_stream_bytes(hass, media_id, stream, policy)


def _parse_tts_media_id(media_id: str) -> dict[str, Any]:
    """Split a `media-source://tts/...` id into its engine, language, options and message.

    Home Assistant has no public API for this: `tts` exports `async_get_media_source_audio`,
    which synthesizes at once, but a cloud engine must be refused under `local_only` before
    anything is sent to it. Its parser lives in the `tts.media_source` module; isolated here.
    """
    from homeassistant.components.tts.media_source import parse_media_source_id  # noqa: PLC0415

    return dict(parse_media_source_id(media_id[len(_TTS_MEDIA) :]))


async def _async_check_engine(
    hass: HomeAssistant, media_id: str, engine: str, policy: Policy | None
) -> None:
    """Under `local_only`, a TTS engine of a cloud integration is refused (before synthesis)."""
    if policy is not None and policy.local_only:
        locality = await async_engine_locality(hass, engine, legacy_provider=True)
        if not locality.local:
            raise AnnounceMediaError(
                "announce_media_cloud_tts", media_id, engine=locality.name
            )


async def _async_stream_bytes(
    hass: HomeAssistant, media_id: str, stream: tts.ResultStream, policy: Policy | None
) -> tuple[str, bytes]:
    """Return the whole audio of a TTS stream; under `local_only` only of a local engine."""
    await _async_check_engine(hass, media_id, stream.engine, policy)
    try:
        data = b"".join([chunk async for chunk in stream.async_stream_result()])
    except HomeAssistantError as err:
        raise AnnounceMediaError(
            "announce_media_unresolved", media_id, error=str(err)
        ) from err
    return stream.extension, data


def _own_origins(hass: HomeAssistant) -> set[tuple[str, str, int | None]]:
    origins: set[tuple[str, str, int | None]] = set()
    for kwargs in ({"prefer_external": False}, {"allow_internal": False}):
        try:
            url = URL(get_url(hass, allow_cloud=False, **kwargs))
        except NoURLAvailableError:
            continue
        origins.add((url.scheme, (url.host or "").lower(), url.port))
    for configured in (hass.config.internal_url, hass.config.external_url):
        if configured:
            url = URL(configured)
            origins.add((url.scheme, (url.host or "").lower(), url.port))
    return origins


def _is_own_url(hass: HomeAssistant, url: URL) -> bool:
    host = (url.host or "").lower().strip("[]")
    port = hass.http.server_port if getattr(hass, "http", None) is not None else None
    if host in _LOOPBACK and url.port == (port or 8123):
        return True
    return (url.scheme, host, url.port) in _own_origins(hass)


async def _async_url_bytes(
    hass: HomeAssistant, media_id: str, raw_url: str, policy: Policy | None
) -> tuple[str, bytes]:
    url = URL(raw_url)
    if url.is_absolute() and (
        url.scheme not in ("http", "https") or not _is_own_url(hass, url)
    ):
        raise AnnounceMediaError("announce_media_not_local", media_id)
    path = url.path
    if path.startswith(_TTS_PROXY):
        token = path[len(_TTS_PROXY) :]
        if (stream := tts.async_get_stream(hass, token)) is None:
            raise AnnounceMediaError(
                "announce_media_unresolved", media_id, error="stream gone"
            )
        return await _async_stream_bytes(hass, media_id, stream, policy)
    for prefix, base in _local_dirs(hass):
        if path.startswith(prefix):
            location = path[len(prefix) :]
            try:
                raise_if_invalid_path(location)
            except ValueError as err:
                raise AnnounceMediaError("announce_media_not_local", media_id) from err
            full = Path(base, location)
            full.relative_to(base)
            return await _async_read_file(hass, media_id, full)
    raise AnnounceMediaError("announce_media_not_local", media_id)


def _local_dirs(hass: HomeAssistant) -> list[tuple[str, str]]:
    dirs = [(f"/media/{name}/", base) for name, base in hass.config.media_dirs.items()]
    dirs.append(("/local/", hass.config.path("www")))
    return dirs


async def _async_read_file(
    hass: HomeAssistant, media_id: str, path: Path
) -> tuple[str, bytes]:
    def read() -> bytes | None:
        with path.open("rb") as file:
            data = file.read(MAX_SOURCE_BYTES + 1)
        return None if len(data) > MAX_SOURCE_BYTES else data

    try:
        data = await hass.async_add_executor_job(read)
    except OSError as err:
        raise AnnounceMediaError(
            "announce_media_unresolved", media_id, error=str(err)
        ) from err
    if data is None:
        raise AnnounceMediaError(
            "announce_media_too_large",
            media_id,
            size=f"> {MAX_SOURCE_BYTES}",
            limit=str(MAX_PLAY_BYTES),
        )
    return path.suffix.lstrip("."), data


# ---------------------------------------------------------------------------- conversion


async def _async_ffmpeg_wav(
    hass: HomeAssistant, media_id: str, extension: str, data: bytes
) -> bytes:
    """Convert non-WAV audio with Home Assistant's ffmpeg, when that integration is set up."""
    # Imported here: `ffmpeg` is an after_dependency, its library may be absent when unused.
    from homeassistant.components.ffmpeg import get_ffmpeg_manager  # noqa: PLC0415

    try:
        manager = get_ffmpeg_manager(hass)
    except ValueError as err:  # the ffmpeg integration is not set up
        raise AnnounceMediaError(
            "announce_media_format", media_id, format=extension or "?"
        ) from err
    try:
        process = await asyncio.create_subprocess_exec(
            manager.binary,
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-i",
            "pipe:0",
            "-vn",
            "-ac",
            "1",
            "-ar",
            str(FFMPEG_RATE),
            "-acodec",
            "pcm_s16le",
            "-f",
            "wav",
            "pipe:1",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError as err:
        raise AnnounceMediaError(
            "announce_media_format", media_id, format=extension
        ) from err
    try:
        async with asyncio.timeout(FFMPEG_TIMEOUT):
            out, _ = await process.communicate(data)
    except TimeoutError as err:
        process.kill()
        await process.wait()
        raise AnnounceMediaError(
            "announce_media_format", media_id, format=extension
        ) from err
    wav = (
        await hass.async_add_executor_job(wav_16bit_mono, out)
        if process.returncode == 0
        else None
    )
    if wav is None:
        raise AnnounceMediaError("announce_media_format", media_id, format=extension)
    return wav


def wav_16bit_mono_size(data: bytes) -> int | None:
    """Return the size `wav_16bit_mono` would return for a PCM WAV (None: not one)."""
    parts = wav_parts(data)
    if parts is None:
        return None
    fmt, raw = parts
    channels = int.from_bytes(fmt[2:4], "little")
    bits = int.from_bytes(fmt[14:16], "little")
    if channels < 1 or bits % 8 or not 8 <= bits <= 64:
        return None
    return 44 + 2 * (len(raw) // (bits // 8 * channels))


def wav_16bit_mono(data: bytes) -> bytes | None:
    """Convert a PCM (8/16/24/32-bit integer, 32/64-bit float) WAV to 16-bit mono, same rate.

    None when it is not such a WAV. Streamed headers (data size 0 or 0xFFFFFFFF) are accepted.
    Plain Python (array, no numpy): seconds of CPU for the largest media, so callers on the event
    loop run it in an executor.
    """
    parts = wav_parts(data)
    if parts is None:
        return None
    fmt, raw = parts
    pcm = _to_16bit_mono(fmt, raw)
    if pcm is None:
        return None
    (rate,) = struct.unpack_from("<I", fmt, 4)
    return build_wav(struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16), pcm)


# (format tag, sample width) -> array type code and the factor to 16-bit full scale
_ARRAY_FORMATS: dict[tuple[int, int], tuple[str, float]] = {
    (1, 2): ("h", 1.0),
    (1, 4): ("i", 1.0 / 65536.0),
    (3, 4): ("f", 32767.0),
    (3, 8): ("d", 32767.0),
}


def _samples(tag: int, width: int, raw: bytes) -> list[float] | array[Any] | None:
    """Every sample of `raw` on a 16-bit scale (not yet rounded), or None if not supported."""
    if tag == 1 and width == 1:
        return [(byte - 128) * 256.0 for byte in raw]
    if tag == 1 and width == 3:
        return [
            int.from_bytes(raw[i : i + 3], "little", signed=True) / 256.0
            for i in range(0, len(raw), 3)
        ]
    if (found := _ARRAY_FORMATS.get((tag, width))) is None:
        return None
    code, factor = found
    values = array(code)
    if (
        values.itemsize != width
    ):  # pragma: no cover - a platform with other C type sizes
        return None
    values.frombytes(raw)
    if sys.byteorder == "big":  # pragma: no cover - big-endian hosts only
        values.byteswap()
    return values if factor == 1.0 else [value * factor for value in values]


def _to_16bit_mono(fmt: bytes, raw: bytes) -> bytes | None:
    tag, channels, _rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == 0xFFFE and len(fmt) >= 26:
        (tag,) = struct.unpack_from(
            "<H", fmt, 24
        )  # the sub-format GUID begins with the tag
    if channels < 1 or bits % 8 or not 8 <= bits <= 64:
        return None
    width = bits // 8
    frame = width * channels
    raw = raw[: len(raw) - len(raw) % frame]
    if tag == 1 and width == 2 and channels == 1 and sys.byteorder == "little":
        return raw  # already 16-bit mono
    if (samples := _samples(tag, width, raw)) is None:
        return None
    mono = (
        samples
        if channels == 1
        else [
            sum(values) / channels
            for values in zip(
                *(samples[c::channels] for c in range(channels)), strict=True
            )
        ]
    )
    # Clipped before rounding (also NaN and infinities), then half to even like numpy's round.
    out = array("h", [round(min(32767.0, max(-32768.0, value))) for value in mono])
    if sys.byteorder == "big":  # pragma: no cover - big-endian hosts only
        out.byteswap()
    return out.tobytes()
