"""`assist_satellite.announce` with media: Home Assistant's media as one WAV on `pipeline/play`."""

from __future__ import annotations

import asyncio
import io
import wave
from pathlib import Path

import numpy as np
import pytest
from homeassistant.components import tts
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.hearth.announce_media import wav_16bit_mono

from . import test_assist_stream
from .fake_bridge import HassBridge
from .test_assist_stream import LocalTts, engines  # noqa: F401  # fixture

ENTITY = "assist_satellite.kitchen"
PLAY = "/satellite/kitchen/pipeline/play"


async def _announce(hass: HomeAssistant, **data: object) -> None:
    await hass.services.async_call(
        "assist_satellite", "announce", {"entity_id": ENTITY, **data}, blocking=True
    )


def _wav(path: Path, pcm: bytes, rate: int, width: int, channels: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setframerate(rate)
        out.setsampwidth(width)
        out.setnchannels(channels)
        out.writeframes(pcm)


def _read(played: bytes) -> tuple[tuple[int, int, int], bytes]:
    with wave.open(io.BytesIO(played)) as wav:
        return (
            (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()),
            wav.readframes(wav.getnframes()),
        )


@pytest.fixture
async def media_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A local media folder (`media-source://media_source/local/...`, `/media/local/...`)."""
    hass.config.media_dirs["local"] = str(tmp_path)
    assert await async_setup_component(hass, "media_source", {})
    return tmp_path


async def test_local_wav_is_converted_and_played(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, media_dir: Path
) -> None:
    # 16 kHz, 24-bit stereo: left and right differ, the bridge gets their mean as 16-bit mono.
    left = np.arange(-8000, 8000, dtype=np.int32) * 256
    right = left // 2
    stereo = np.stack([left, right], axis=1).reshape(-1)
    pcm24 = b"".join(int(v).to_bytes(3, "little", signed=True) for v in stereo)
    _wav(media_dir / "chime.wav", pcm24, 16000, 3, 2)

    bridge.answer = False
    task = hass.async_create_task(
        # Without the pre-announce chime (tests/ha/test_satellite_features.py): one WAV.
        _announce(
            hass, media_id="media-source://media_source/local/chime.wav", preannounce=False
        )
    )
    for _ in range(50):
        await asyncio.sleep(0.02)
        if bridge.messages(PLAY):
            break
    (played,) = bridge.messages(PLAY)
    fmt, frames = _read(played)
    assert fmt == (16000, 2, 1)
    expected = np.round((left + right) / 2 / 256).astype("<i2").tobytes()
    assert frames == expected
    assert len(played) == 44 + 2 * 16000
    # The action waits for the bridge to play it.
    await bridge.satellite_state("kitchen", "responding")
    await asyncio.sleep(0.05)
    assert not task.done()
    await bridge.satellite_state("kitchen", "idle")
    await asyncio.wait_for(task, 2)
    assert hass.states.get(ENTITY).state == "idle"
    assert bridge.messages("/satellite/kitchen/announce") == []


async def test_own_url_of_local_media_is_played(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, media_dir: Path
) -> None:
    _wav(media_dir / "bell.wav", bytes(range(256)) * 100, 22050, 2, 1)
    await _announce(hass, media_id="/media/local/bell.wav", preannounce=False)
    (played,) = bridge.messages(PLAY)
    assert _read(played) == ((22050, 2, 1), bytes(range(256)) * 100)
    assert hass.states.get(ENTITY).state == "idle"


async def test_tts_media_of_the_message_is_played(
    hass: HomeAssistant,
    bridge: HassBridge,
    loaded: MockConfigEntry,
    engines: tuple[object, LocalTts],  # noqa: F811
) -> None:
    _, voice = engines
    media_id = tts.generate_media_source_id(
        hass, "Dinner is ready", engine=test_assist_stream.TTS_ENGINE
    )
    await _announce(hass, message="Dinner is ready", media_id=media_id, preannounce=False)
    (played,) = bridge.messages(PLAY)
    assert _read(played) == ((22050, 2, 1), voice.pcm)
    assert voice.messages == ["Dinner is ready"]
    assert bridge.messages("/satellite/kitchen/announce") == []
    assert hass.states.get(ENTITY).state == "idle"


async def test_message_with_other_media_is_spoken_by_the_bridge(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, media_dir: Path
) -> None:
    _wav(media_dir / "bell.wav", bytes(200), 16000, 2, 1)
    await _announce(
        hass,
        message="Dinner is ready",
        media_id="media-source://media_source/local/bell.wav",
        preannounce=False,
    )
    assert bridge.messages("/satellite/kitchen/announce")[0]["text"] == "Dinner is ready"
    assert bridge.messages(PLAY) == []


@pytest.mark.parametrize(
    "media_id",
    [
        "http://example.com/chime.wav",
        "https://192.168.1.50:8123/local/chime.wav",
        "http://127.0.0.1:9000/local/chime.wav",
        "ftp://127.0.0.1:8123/local/chime.wav",
        "/api/camera_proxy/camera.door",
    ],
)
async def test_media_elsewhere_is_refused(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, media_id: str
) -> None:
    with pytest.raises(HomeAssistantError) as err:
        await _announce(hass, media_id=media_id, preannounce=False)
    assert err.value.translation_key == "announce_media_not_local"
    assert media_id in str(err.value)
    assert bridge.messages(PLAY) == []
    assert bridge.messages("/satellite/kitchen/announce") == []


async def test_oversized_and_unsupported_media_are_refused(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, media_dir: Path
) -> None:
    _wav(media_dir / "long.wav", bytes(2_000_000), 16000, 2, 1)
    (media_dir / "chime.mp3").write_bytes(b"ID3" + bytes(500))
    (media_dir / "alaw.wav").write_bytes(
        b"RIFF" + (36 + 4).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
        + bytes([6, 0, 1, 0]) + (8000).to_bytes(4, "little") + (8000).to_bytes(4, "little")
        + bytes([1, 0, 8, 0]) + b"data" + (4).to_bytes(4, "little") + bytes(4)
    )
    for name, key in (
        ("long.wav", "announce_media_too_large"),
        ("chime.mp3", "announce_media_format"),  # no ffmpeg integration set up
        ("alaw.wav", "announce_media_format"),
        ("missing.wav", "announce_media_unresolved"),
    ):
        with pytest.raises(HomeAssistantError) as err:
            await _announce(
                hass, media_id=f"media-source://media_source/local/{name}", preannounce=False
            )
        assert err.value.translation_key == key, name
        assert name in str(err.value)
    assert bridge.messages(PLAY) == []


def test_wav_16bit_mono_formats() -> None:
    def wav(tag: int, width: int, channels: int, raw: bytes) -> bytes:
        fmt = (
            tag.to_bytes(2, "little") + channels.to_bytes(2, "little")
            + (8000).to_bytes(4, "little") + (8000 * width * channels).to_bytes(4, "little")
            + (width * channels).to_bytes(2, "little") + (8 * width).to_bytes(2, "little")
        )
        return (
            b"RIFF" + (36 + len(raw)).to_bytes(4, "little") + b"WAVEfmt "
            + (16).to_bytes(4, "little") + fmt + b"data" + len(raw).to_bytes(4, "little") + raw
        )

    def pcm(data: bytes) -> list[int]:
        out = wav_16bit_mono(data)
        assert out is not None
        return np.frombuffer(out[44:], "<i2").tolist()

    assert pcm(wav(1, 1, 1, bytes([0, 128, 255]))) == [-32768, 0, 32512]
    assert pcm(wav(1, 2, 2, np.array([100, 300, -100, -300], "<i2").tobytes())) == [200, -200]
    assert pcm(wav(1, 4, 1, np.array([1 << 30], "<i4").tobytes())) == [16384]
    assert pcm(wav(3, 4, 1, np.array([0.5, -2.0], "<f4").tobytes())) == [16384, -32768]
    assert pcm(wav(3, 8, 1, np.array([0.25, 1.5, -1.0], "<f8").tobytes())) == [8192, 32767, -32767]
    # Not a number and infinities are clipped, never an error.
    assert pcm(wav(3, 4, 1, np.array([np.nan, np.inf, -np.inf], "<f4").tobytes())) == [
        -32768, 32767, -32768
    ]
    assert pcm(wav(1, 3, 1, (-(1 << 22)).to_bytes(3, "little", signed=True))) == [-16384]
    # Half to even, as numpy rounds: (1 + 2) / 2 = 1.5 -> 2, (1 + 0) / 2 = 0.5 -> 0.
    assert pcm(wav(1, 2, 2, np.array([1, 2, 1, 0], "<i2").tobytes())) == [2, 0]
    assert pcm(wav(1, 2, 1, np.array([5, -5], "<i2").tobytes())) == [5, -5]
    assert wav_16bit_mono(wav(2, 2, 1, bytes(4))) is None  # ADPCM
    assert wav_16bit_mono(wav(1, 5, 1, bytes(5))) is None  # 40-bit integers
    assert wav_16bit_mono(wav(3, 2, 1, bytes(2))) is None  # 16-bit float
    assert wav_16bit_mono(b"not a wav") is None


async def test_cloud_tts_media_under_local_only_is_refused(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    from homeassistant.components.tts.const import DATA_TTS_MANAGER
    from pytest_homeassistant_custom_component.common import MockModule, mock_integration

    mock_integration(hass, MockModule("cloudvoice", partial_manifest={"iot_class": "cloud_push"}))
    voice = LocalTts()
    hass.data[DATA_TTS_MANAGER].async_register_legacy_engine("cloudvoice", voice, {})
    await hass.services.async_call(
        "switch",
        "turn_on",
        {"entity_id": "switch.hearth_bridge_local_only_processing"},
        blocking=True,
    )
    await hass.async_block_till_done()
    media_id = tts.generate_media_source_id(hass, "Hello", engine="cloudvoice")
    with pytest.raises(HomeAssistantError) as err:
        await _announce(hass, media_id=media_id, preannounce=False)
    assert err.value.translation_key == "announce_media_cloud_tts"
    assert voice.messages == []  # nothing was sent to the cloud engine
    assert bridge.messages(PLAY) == []


async def test_other_formats_are_converted_with_ffmpeg(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, media_dir: Path, tmp_path: Path
) -> None:
    """With Home Assistant's FFmpeg integration, MP3 is decoded by its binary (a stand-in here)."""
    from types import SimpleNamespace

    from homeassistant.components.ffmpeg import DATA_FFMPEG

    (media_dir / "chime.mp3").write_bytes(b"ID3" + bytes(500))
    decoded = tmp_path / "decoded.wav"
    # ffmpeg to a pipe writes a streaming header (data size 0xFFFFFFFF).
    pcm = np.array([1000, -1000] * 50, "<i2").tobytes()
    header = (
        b"RIFF" + b"\xff\xff\xff\xff" + b"WAVEfmt " + (16).to_bytes(4, "little")
        + bytes([1, 0, 1, 0]) + (22050).to_bytes(4, "little") + (44100).to_bytes(4, "little")
        + bytes([2, 0, 16, 0]) + b"data" + b"\xff\xff\xff\xff"
    )
    decoded.write_bytes(header + pcm)
    args = tmp_path / "args"
    binary = tmp_path / "ffmpeg"
    binary.write_text(f'#!/bin/sh\necho "$@" > {args}\ncat > /dev/null\ncat {decoded}\n')
    binary.chmod(0o755)
    hass.data[DATA_FFMPEG] = SimpleNamespace(binary=str(binary))  # type: ignore[assignment]

    await _announce(hass, media_id="media-source://media_source/local/chime.mp3", preannounce=False)
    (played,) = bridge.messages(PLAY)
    assert _read(played) == ((22050, 2, 1), pcm)
    assert "pcm_s16le" in args.read_text() and "-ac 1" in args.read_text()


async def test_conversion_does_not_block_the_event_loop(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, media_dir: Path
) -> None:
    """The largest WAV that fits (here 24-bit stereo, 0.9 M frames) is converted in an executor
    thread: the event loop keeps running meanwhile."""
    import threading
    import time
    from unittest.mock import patch

    from custom_components.hearth import announce_media

    frames = 900_000
    left = (np.arange(frames, dtype=np.int32) % 20000 - 10000) * 256
    stereo = np.stack([left, -left], axis=1).reshape(-1).astype("<i4")
    pcm24 = stereo.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()  # little-endian low 3 bytes
    _wav(media_dir / "big.wav", pcm24, 16000, 3, 2)

    convert = announce_media._to_16bit_mono
    runs: list[tuple[int, float, float]] = []

    def timed(fmt: bytes, raw: bytes) -> bytes | None:
        start = time.monotonic()
        try:
            return convert(fmt, raw)
        finally:
            runs.append((threading.get_ident(), start, time.monotonic()))

    ticks: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    bridge.answer = True
    tick_task = asyncio.create_task(ticker())
    try:
        with patch.object(announce_media, "_to_16bit_mono", timed):
            await _announce(hass, media_id="media-source://media_source/local/big.wav",
                            preannounce=False)
    finally:
        stop.set()
        await tick_task
    ((thread, start, end),) = runs
    assert thread != hass.loop_thread_id
    assert end - start > 0.05  # long enough to matter
    assert [tick for tick in ticks if start < tick < end]  # the loop ran during it
    (played,) = bridge.messages(PLAY)
    fmt, out = _read(played)
    assert fmt == (16000, 2, 1) and len(out) == 2 * frames
    assert set(np.frombuffer(out, "<i2")[:1000].tolist()) == {0}  # (l + -l) / 2
