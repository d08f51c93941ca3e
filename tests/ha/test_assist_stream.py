"""Assist pipeline streaming, Home Assistant side.

A satellite whose chosen Assist pipeline is allowed is told to stream (`pipeline/set` assist);
the (fake) bridge publishes `pipeline/start` and the command's audio frames; the integration
feeds them into the satellite's Assist pipeline (local test STT and TTS providers, the built-in
conversation agent) and publishes the spoken answer back as one WAV on `pipeline/play`.
A pipeline with a cloud engine under local-only is refused before any audio is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
import io
import json
import random
import string
from typing import Any
import wave

import pytest

from homeassistant.components import stt, tts
from homeassistant.components.stt.const import DATA_PROVIDERS
from homeassistant.components.tts.const import DATA_TTS_MANAGER
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from bridge.audio.wav import make_wav
from bridge.protocol.hearth import encode_frame
from custom_components.hearth.assist_stream import wav_for_bridge
from custom_components.hearth.const import DOMAIN
from pytest_homeassistant_custom_component.typing import MqttMockHAClient
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockModule,
    async_fire_mqtt_message,
    mock_integration,
)

from tests.support.speech import have_espeak, read_pcm, synthesize

from .fake_bridge import HassBridge
from .test_pipeline import _choose_pipeline, _pipeline
from .test_voice import _agent, kitchen_light  # noqa: F401  # fixture

COMMAND = "turn on the kitchen light"
TTS_ENGINE = "local_tts"
ENTITY = "assist_satellite.kitchen"


class LocalStt(stt.Provider):
    """A legacy STT provider of a local integration: records the audio, returns fixed text."""

    def __init__(self) -> None:
        self.audio = bytearray()
        self.runs = 0

    @property
    def supported_languages(self) -> list[str]:
        return ["en"]

    @property
    def supported_formats(self) -> list[stt.AudioFormats]:
        return [stt.AudioFormats.WAV]

    @property
    def supported_codecs(self) -> list[stt.AudioCodecs]:
        return [stt.AudioCodecs.PCM]

    @property
    def supported_bit_rates(self) -> list[stt.AudioBitRates]:
        return [stt.AudioBitRates.BITRATE_16]

    @property
    def supported_sample_rates(self) -> list[stt.AudioSampleRates]:
        return [stt.AudioSampleRates.SAMPLERATE_16000]

    @property
    def supported_channels(self) -> list[stt.AudioChannels]:
        return [stt.AudioChannels.CHANNEL_MONO]

    async def async_process_audio_stream(
        self, metadata: stt.SpeechMetadata, stream: AsyncIterable[bytes]
    ) -> stt.SpeechResult:
        self.runs += 1
        async for chunk in stream:
            self.audio += chunk
        return stt.SpeechResult(COMMAND, stt.SpeechResultState.SUCCESS)


class LocalTts(tts.Provider):
    """A legacy TTS provider of a local integration: a 22.05 kHz WAV of known length."""

    def __init__(self) -> None:
        self.name = "Local TTS"
        self.messages: list[str] = []
        self.pcm = bytes(range(256)) * 172  # 44,032 bytes ≈ 1 s at 22,050 Hz

    @property
    def default_language(self) -> str:
        return "en"

    @property
    def supported_languages(self) -> list[str]:
        return ["en"]

    async def async_get_tts_audio(
        self, message: str, language: str, options: dict[str, Any]
    ) -> tts.TtsAudioType:
        self.messages.append(message)
        return "wav", make_wav(self.pcm, rate=22050)


@pytest.fixture(autouse=True)
def micro_vad_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """Home Assistant 2026.2 pins pymicro-vad 1.0.1 (`Process10ms`); this shared environment
    has the bridge's 2.x (`process_10ms`). Give Assist's VAD the name it calls."""
    import pymicro_vad

    if not hasattr(pymicro_vad.MicroVad, "Process10ms"):
        monkeypatch.setattr(
            pymicro_vad.MicroVad, "Process10ms", pymicro_vad.MicroVad.process_10ms, raising=False
        )


@pytest.fixture
def engines(hass: HomeAssistant) -> tuple[LocalStt, LocalTts]:
    """Local STT and TTS engines, as Home Assistant's Assist pipelines find them."""
    mock_integration(hass, MockModule("local_stt", partial_manifest={"iot_class": "local_push"}))
    # A fresh engine name per test: Home Assistant's TTS file cache outlives test runs.
    global TTS_ENGINE  # noqa: PLW0603
    TTS_ENGINE = "localtts" + "".join(random.choices(string.ascii_lowercase, k=8))
    mock_integration(hass, MockModule(TTS_ENGINE, partial_manifest={"iot_class": "local_push"}))
    speech = LocalStt()
    speech.hass = hass
    speech.name = "Local STT"
    hass.data[DATA_PROVIDERS]["local_stt"] = speech
    voice = LocalTts()
    hass.data[DATA_TTS_MANAGER].async_register_legacy_engine(TTS_ENGINE, voice, {})
    return speech, voice


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Real speech (Home Assistant's VAD ends the command after it)."""
    if not have_espeak():
        pytest.skip("needs espeak-ng and sox")
    return read_pcm(synthesize(COMMAND, tmp_path_factory.mktemp("speech") / "cmd.wav"))


async def _stream(hass: HomeAssistant, pcm: bytes, session_id: str = "fw1", stream_id: int = 5) -> None:
    """What the bridge publishes for a forwarded session: start, then 30 ms frames, last flagged."""
    async_fire_mqtt_message(
        hass,
        "hearth/satellite/kitchen/pipeline/start",
        json.dumps({"session_id": session_id, "wake_word": "okay_nabu", "stream_id": stream_id}),
    )
    audio = pcm + bytes(32000)
    chunks = [audio[i : i + 960] for i in range(0, len(audio), 960)]
    for seq, chunk in enumerate(chunks):
        async_fire_mqtt_message(
            hass,
            "hearth/satellite/kitchen/pipeline/audio",
            encode_frame(stream_id, seq, chunk, last=seq == len(chunks) - 1),
        )
        if seq % 20 == 0:
            await asyncio.sleep(0)


def _modes(mqtt_mock: MqttMockHAClient) -> list[dict[str, Any]]:
    """The modes Home Assistant published for the kitchen, in order.

    (Read from the mocked client: the mock delivers a retained topic only once per subscriber.)
    """
    return [
        json.loads(call.args[1])
        for call in mqtt_mock.async_publish.call_args_list
        if call.args[0] == "hearth/satellite/kitchen/pipeline/set"
    ]


async def _until(hass: HomeAssistant, condition, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await hass.async_block_till_done(wait_background_tasks=False)
            await asyncio.sleep(0.05)


async def test_allowed_pipeline_streams_and_the_answer_is_played(
    hass: HomeAssistant,
    bridge: HassBridge,
    mqtt_mock: MqttMockHAClient,
    transcripts_enabled: None,
    loaded: MockConfigEntry,
    engines: tuple[LocalStt, LocalTts],
    kitchen_light: list,  # noqa: F811
    spoken: bytes,
) -> None:
    speech, voice = engines
    pipeline = await _pipeline(hass, "Local", stt_engine="local_stt", tts_engine=TTS_ENGINE)
    _choose_pipeline(hass, loaded, pipeline.id)
    await loaded.runtime_data.voice.async_update_modes()
    await hass.async_block_till_done()
    assert _modes(mqtt_mock)[-1] == {"mode": "assist"}

    states: list[str] = []
    hass.bus.async_listen(
        "state_changed",
        lambda event: states.append(event.data["new_state"].state)
        if event.data["entity_id"] == ENTITY and event.data["new_state"]
        else None,
    )
    await _stream(hass, spoken)
    await _until(hass, lambda: bridge.messages("/satellite/kitchen/pipeline/play"))
    await hass.async_block_till_done(wait_background_tasks=True)

    # Home Assistant's STT engine heard the satellite's audio, in order (its VAD may stop
    # reading shortly after the speech ends).
    assert speech.runs == 1
    assert len(speech.audio) >= len(spoken) - 0.7 * 32000
    assert bytes(speech.audio) == (spoken + bytes(32000))[: len(speech.audio)]
    # The conversation ran (the built-in agent turned the light on) and the answer was spoken.
    assert len(kitchen_light) == 1
    print("DBG", voice.messages, [len(p) for p in bridge.messages("/satellite/kitchen/pipeline/play")], len(voice.pcm))
    assert len(voice.messages) == 1
    # The answer went back as one WAV for the bridge to play.
    (played,) = bridge.messages("/satellite/kitchen/pipeline/play")
    with wave.open(io.BytesIO(played)) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (22050, 2, 1)
        assert wav.readframes(wav.getnframes()) == voice.pcm
    # Nothing else was asked of the bridge: no text response.
    assert not bridge.messages("/satellite/kitchen/response")
    # The satellite went through Assist's states and is idle again after the answer played.
    assert "listening" in states and "responding" in states
    assert hass.states.get(ENTITY).state == "idle"
    # The words, as Home Assistant heard them, show on the satellite's transcript sensor.
    assert hass.states.get("sensor.kitchen_last_transcript").attributes["text"] == COMMAND


async def test_pipeline_without_tts_answers_with_text(
    hass: HomeAssistant,
    bridge: HassBridge,
    mqtt_mock: MqttMockHAClient,
    loaded: MockConfigEntry,
    engines: tuple[LocalStt, LocalTts],
    kitchen_light: list,  # noqa: F811
    spoken: bytes,
) -> None:
    pipeline = await _pipeline(hass, "No voice", stt_engine="local_stt")
    _choose_pipeline(hass, loaded, pipeline.id)
    await loaded.runtime_data.voice.async_update_modes()
    await _stream(hass, spoken)
    await _until(hass, lambda: bridge.messages("/satellite/kitchen/response"))
    response = bridge.messages("/satellite/kitchen/response")[-1]
    assert response["session_id"] == "fw1" and response["text"]
    assert not bridge.messages("/satellite/kitchen/pipeline/play")
    assert len(kitchen_light) == 1


async def test_cloud_pipeline_under_local_only_is_refused_before_audio(
    hass: HomeAssistant,
    bridge: HassBridge,
    mqtt_mock: MqttMockHAClient,
    loaded: MockConfigEntry,
    engines: tuple[LocalStt, LocalTts],
    spoken: bytes,
) -> None:
    speech, voice = engines
    cloud_agent, cloud_entry = _agent(hass, "cloudy", "cloud_polling")
    pipeline = await _pipeline(
        hass,
        "Cloudy",
        stt_engine="local_stt",
        conversation_engine=cloud_entry.entry_id,
        tts_engine=TTS_ENGINE,
    )
    _choose_pipeline(hass, loaded, pipeline.id)
    await loaded.runtime_data.voice.async_update_modes()
    await hass.async_block_till_done()
    # Without local-only the pipeline is allowed: the bridge is told to stream.
    assert _modes(mqtt_mock)[-1] == {"mode": "assist"}

    await hass.services.async_call(
        "switch",
        "turn_on",
        {"entity_id": "switch.hearth_bridge_local_only_processing"},
        blocking=True,
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    # The confirmed policy turns it back to Hearth's own before any audio is sent...
    assert _modes(mqtt_mock)[-1] == {"mode": "hearth"}
    # ... with the repair issue naming the refused engine, not yet counted as a blocked request.
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, f"cloud_pipeline_blocked_{loaded.entry_id}_{pipeline.id}"
    )
    assert issue is not None
    assert issue.translation_placeholders["stage"] == "conversation"
    assert hass.states.get("sensor.hearth_bridge_blocked_cloud_requests").state == "2"

    # A bridge that streams anyway (a stale retained mode): the audio reaches no engine.
    await _stream(hass, spoken)
    await hass.async_block_till_done(wait_background_tasks=True)
    await asyncio.sleep(0.1)
    assert speech.runs == 0 and not speech.audio
    assert cloud_agent.inputs == []
    assert voice.messages == []
    assert not bridge.messages("/satellite/kitchen/pipeline/play")
    assert hass.states.get("sensor.hearth_bridge_blocked_cloud_requests").state == "3"

    # Allowing the cloud again: streaming resumes and the repair is withdrawn.
    await hass.services.async_call(
        "switch",
        "turn_off",
        {"entity_id": "switch.hearth_bridge_local_only_processing"},
        blocking=True,
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    assert _modes(mqtt_mock)[-1] == {"mode": "assist"}
    assert (
        ir.async_get(hass).async_get_issue(
            DOMAIN, f"cloud_pipeline_blocked_{loaded.entry_id}_{pipeline.id}"
        )
        is None
    )


async def test_modes_published_when_the_bridge_comes_online(
    hass: HomeAssistant,
    bridge: HassBridge,
    mqtt_mock: MqttMockHAClient,
    loaded: MockConfigEntry,
    engines: tuple[LocalStt, LocalTts],
) -> None:
    pipeline = await _pipeline(hass, "Local", stt_engine="local_stt", tts_engine=TTS_ENGINE)
    _choose_pipeline(hass, loaded, pipeline.id)
    await bridge.go_offline()
    await hass.async_block_till_done()
    mqtt_mock.async_publish.reset_mock()
    await bridge.announce()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert _modes(mqtt_mock) == [{"mode": "assist"}]
    # Hearth's own pipeline chosen again: the satellite is told to stop streaming.
    _choose_pipeline(hass, loaded, "hearth")
    await loaded.runtime_data.voice.async_update_modes()
    assert _modes(mqtt_mock)[-1] == {"mode": "hearth"}


async def test_session_ended_by_the_bridge_abandons_the_run(
    hass: HomeAssistant,
    bridge: HassBridge,
    mqtt_mock: MqttMockHAClient,
    loaded: MockConfigEntry,
    engines: tuple[LocalStt, LocalTts],
    spoken: bytes,
) -> None:
    speech, voice = engines
    pipeline = await _pipeline(hass, "Local", stt_engine="local_stt", tts_engine=TTS_ENGINE)
    _choose_pipeline(hass, loaded, pipeline.id)
    await loaded.runtime_data.voice.async_update_modes()
    async_fire_mqtt_message(
        hass,
        "hearth/satellite/kitchen/pipeline/start",
        json.dumps({"session_id": "cut", "wake_word": "okay_nabu", "stream_id": 9}),
    )
    for seq in range(10):
        async_fire_mqtt_message(
            hass, "hearth/satellite/kitchen/pipeline/audio", encode_frame(9, seq, spoken[seq * 960 : (seq + 1) * 960])
        )
    await asyncio.sleep(0.1)
    await bridge.send(
        "satellite/kitchen/error",
        {"session_id": "cut", "satellite": "kitchen", "code": "muted", "message": "microphone muted", "fatal": True},
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    assert voice.messages == []
    assert not bridge.messages("/satellite/kitchen/pipeline/play")
    assert hass.states.get(ENTITY).state == "idle"


def test_wav_for_bridge() -> None:
    wav = make_wav(b"\x01\x00" * 100, rate=16000)
    assert wav_for_bridge("wav", wav) == wav
    streamed = wav[:40] + b"\xff\xff\xff\xff" + wav[44:]  # data length unknown while streaming
    assert wav_for_bridge("wav", streamed) == wav
    assert wav_for_bridge("mp3", b"ID3...") is None
    assert wav_for_bridge("wav", b"RIFF....WAVEjunk") is None
    assert wav_for_bridge("wav", make_wav(bytes(2_000_000))) is None

