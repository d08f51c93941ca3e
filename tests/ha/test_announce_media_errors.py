"""Announcement media that cannot be played: each refusal names its reason, nothing is sent."""

from __future__ import annotations

import io
import wave
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.components import tts
from homeassistant.components.ffmpeg import DATA_FFMPEG
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.hearth import announce_media
from custom_components.hearth.announce_media import (
    async_announcement_wav,
    wav_16bit_mono,
    wav_16bit_mono_size,
)

from . import test_assist_stream
from .fake_bridge import HassBridge
from .test_assist_stream import LocalTts, engines  # noqa: F401  # fixture


def _wav_bytes(pcm: bytes, rate: int = 16000, width: int = 2, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setframerate(rate)
        wav.setsampwidth(width)
        wav.setnchannels(channels)
        wav.writeframes(pcm)
    return out.getvalue()


async def _refused(hass: HomeAssistant, media_id: str) -> str:
    with pytest.raises(HomeAssistantError) as err:
        await async_announcement_wav(hass, media_id, None)
    assert err.value.translation_placeholders["media_id"] == media_id
    return str(err.value.translation_key)


@pytest.fixture
async def media_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    hass.config.media_dirs["local"] = str(tmp_path)
    assert await async_setup_component(hass, "media_source", {})
    return tmp_path


async def test_unresolvable_ids(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    media_dir: Path,
    engines: tuple[object, LocalTts],  # noqa: F811
) -> None:
    engine = test_assist_stream.TTS_ENGINE
    for media_id in (
        "media-source://media_source/nowhere/x.wav",  # no such media folder
        "media-source://tts/" + engine,  # no message
        "media-source://tts/-stream-/nosuchtoken",  # a stream that is gone
        "media-source://tts/nosuchengine?message=hello",  # no such engine
        f"media-source://tts/{engine}?message=hello&language=xx",  # a language it lacks
        "/api/tts_proxy/nosuchtoken",  # a stream that is gone
    ):
        assert await _refused(hass, media_id) == "announce_media_unresolved", media_id


async def test_tts_engine_failing(
    hass: HomeAssistant, loaded: MockConfigEntry, engines: tuple[object, LocalTts]  # noqa: F811
) -> None:
    _, voice = engines

    async def fail(message: str, language: str, options: dict[str, Any]) -> tts.TtsAudioType:
        raise HomeAssistantError("engine broke")

    voice.async_get_tts_audio = fail  # type: ignore[method-assign]
    media_id = tts.generate_media_source_id(hass, "Hi", engine=test_assist_stream.TTS_ENGINE)
    assert await _refused(hass, media_id) == "announce_media_unresolved"


async def test_tts_proxy_url_of_a_stream(
    hass: HomeAssistant, loaded: MockConfigEntry, engines: tuple[object, LocalTts]  # noqa: F811
) -> None:
    """A TTS stream's own URL (as Home Assistant's announcements hand out) is played."""
    _, voice = engines
    stream = tts.async_create_stream(
        hass, test_assist_stream.TTS_ENGINE, "en", {tts.ATTR_PREFERRED_FORMAT: "wav"}
    )
    stream.async_set_message("Tea is ready")
    wav = await async_announcement_wav(hass, stream.url, None)
    with wave.open(io.BytesIO(wav)) as out:
        assert out.readframes(out.getnframes()) == voice.pcm
    assert voice.messages == ["Tea is ready"]


async def test_own_configured_url_and_www(
    hass: HomeAssistant, loaded: MockConfigEntry, tmp_path: Path
) -> None:
    """`/local/...` is the `www` folder; an absolute URL on the configured internal URL is ours."""
    www = Path(hass.config.path("www"))
    www.mkdir(parents=True, exist_ok=True)
    pcm = bytes(range(200))
    (www / "bell.wav").write_bytes(_wav_bytes(pcm))
    hass.config.internal_url = "http://homeassistant.home.lan:8123"
    wav = await async_announcement_wav(
        hass, "http://homeassistant.home.lan:8123/local/bell.wav", None
    )
    assert wav.endswith(pcm)
    # This instance on the loopback address, at Home Assistant's port.
    assert (await async_announcement_wav(hass, "http://127.0.0.1:8123/local/bell.wav", None)) == wav
    assert await _refused(hass, "http://elsewhere.home.lan:8123/local/bell.wav") == (
        "announce_media_not_local"
    )


async def test_paths_outside_media_folders(
    hass: HomeAssistant, loaded: MockConfigEntry, media_dir: Path
) -> None:
    assert await _refused(hass, "/media/local/../secret.wav") == "announce_media_not_local"


async def test_source_too_large(
    hass: HomeAssistant, loaded: MockConfigEntry, media_dir: Path
) -> None:
    (media_dir / "big.wav").write_bytes(_wav_bytes(bytes(100)))
    with patch.object(announce_media, "MAX_SOURCE_BYTES", 50):
        assert await _refused(hass, "/media/local/big.wav") == "announce_media_too_large"


def _ffmpeg(hass: HomeAssistant, tmp_path: Path, script: str) -> None:
    binary = tmp_path / "ffmpeg"
    binary.write_text("#!/bin/sh\n" + script)
    binary.chmod(0o755)
    hass.data[DATA_FFMPEG] = SimpleNamespace(binary=str(binary))  # type: ignore[assignment]


async def test_ffmpeg_refusals(
    hass: HomeAssistant, loaded: MockConfigEntry, media_dir: Path, tmp_path: Path
) -> None:
    (media_dir / "chime.mp3").write_bytes(b"ID3" + bytes(500))
    media_id = "/media/local/chime.mp3"

    # The ffmpeg integration is not set up.
    with patch(
        "homeassistant.components.ffmpeg.get_ffmpeg_manager", side_effect=ValueError("no")
    ):
        assert await _refused(hass, media_id) == "announce_media_format"
    # ffmpeg fails.
    _ffmpeg(hass, tmp_path, "cat > /dev/null\nexit 1\n")
    assert await _refused(hass, media_id) == "announce_media_format"
    # ffmpeg hangs.
    _ffmpeg(hass, tmp_path, "cat > /dev/null\nexec sleep 30\n")
    with patch.object(announce_media, "FFMPEG_TIMEOUT", 0.3):
        assert await _refused(hass, media_id) == "announce_media_format"
    # ffmpeg's output is larger than the bridge plays.
    decoded = tmp_path / "decoded.wav"
    decoded.write_bytes(_wav_bytes(bytes(2_000_000)))
    _ffmpeg(hass, tmp_path, f"cat > /dev/null\ncat {decoded}\n")
    assert await _refused(hass, media_id) == "announce_media_too_large"


async def test_wav_sizes_and_layouts(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    assert wav_16bit_mono_size(b"not a wav") is None
    no_channels = bytearray(_wav_bytes(bytes(4)))
    no_channels[22:24] = (0).to_bytes(2, "little")
    assert wav_16bit_mono_size(bytes(no_channels)) is None
    assert wav_16bit_mono(bytes(no_channels)) is None
    assert wav_16bit_mono_size(_wav_bytes(bytes(8), width=2, channels=2)) == 44 + 4
    # WAVE_FORMAT_EXTENSIBLE: the sample format is the sub-format GUID's first two bytes.
    pcm = (1000).to_bytes(2, "little", signed=True) + (3000).to_bytes(2, "little", signed=True)
    fmt = (
        (0xFFFE).to_bytes(2, "little") + (2).to_bytes(2, "little")
        + (8000).to_bytes(4, "little") + (32000).to_bytes(4, "little")
        + (4).to_bytes(2, "little") + (16).to_bytes(2, "little")
        + (22).to_bytes(2, "little") + (16).to_bytes(2, "little") + (3).to_bytes(4, "little")
        + (1).to_bytes(2, "little") + bytes(14)
    )
    data = (
        b"RIFF" + (4 + 8 + len(fmt) + 8 + len(pcm)).to_bytes(4, "little") + b"WAVE"
        + b"fmt " + len(fmt).to_bytes(4, "little") + fmt
        + b"data" + len(pcm).to_bytes(4, "little") + pcm
    )
    out = wav_16bit_mono(data)
    assert out is not None and out[44:] == (2000).to_bytes(2, "little", signed=True)
