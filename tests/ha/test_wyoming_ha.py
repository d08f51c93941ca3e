"""Home Assistant's own Wyoming integration against the real bridge's Wyoming server.

No Hearth integration here: this is how a user plugs Hearth's recognizer into any Assist
pipeline (Settings → Devices & services → Wyoming Protocol → host and port).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

import pytest

from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.support.bridge_proc import BridgeProcess
from tests.support.broker import Mosquitto

from .e2e import needs_tools, speech

pytestmark = [needs_tools, pytest.mark.timeout(180)]

COMMAND = "turn on the kitchen light"  # the demo home (bridge/data/demo_home.yaml) has it


@pytest.fixture
async def wyoming_port(
    hass: HomeAssistant, socket_enabled: None, mosquitto: Mosquitto, tmp_path: Path
) -> AsyncIterator[int]:
    """The real bridge with its Wyoming server on a free port; yields that port."""
    proc = BridgeProcess(
        "127.0.0.1",
        mosquitto.port,
        tmp_path / "bridge",
        args=[
            "--set", "stt.workers=1",
            "--set", "wyoming_server.enabled=true",
            "--set", "wyoming_server.port=0",
        ],
    )
    await hass.async_add_executor_job(lambda: proc.start(wait=False))
    status = await hass.async_add_executor_job(proc.wait_online)
    assert isinstance(status.get("wyoming_port"), int), status
    yield status["wyoming_port"]
    await hass.async_add_executor_job(proc.stop)


async def _chunks(pcm: bytes, size: int = 3200) -> AsyncIterable[bytes]:
    for offset in range(0, len(pcm), size):
        yield pcm[offset : offset + size]


async def test_wyoming_stt_entity_transcribes_through_the_bridge(
    hass: HomeAssistant, wyoming_port: int, tmp_path: Path
) -> None:
    entry = MockConfigEntry(domain="wyoming", data={"host": "127.0.0.1", "port": wyoming_port})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    entity_id = er.async_get(hass).async_get_entity_id("stt", "wyoming", f"{entry.entry_id}-stt")
    assert entity_id is not None
    provider = stt.async_get_speech_to_text_entity(hass, entity_id)
    assert provider is not None
    assert "en" in provider.supported_languages

    metadata = stt.SpeechMetadata(
        language="en",
        format=stt.AudioFormats.WAV,
        codec=stt.AudioCodecs.PCM,
        bit_rate=stt.AudioBitRates.BITRATE_16,
        sample_rate=stt.AudioSampleRates.SAMPLERATE_16000,
        channel=stt.AudioChannels.CHANNEL_MONO,
    )
    pcm = await speech(hass, tmp_path, COMMAND)
    result = await provider.async_process_audio_stream(metadata, _chunks(pcm))
    assert result.result is stt.SpeechResultState.SUCCESS, result
    assert result.text == COMMAND, f"the bridge heard {result.text!r}"

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
