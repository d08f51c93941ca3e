"""The satellite experience of ESPHome and Wyoming satellites: per-satellite selects (Assist
pipeline, finished-speaking detection, wake word), the assist_satellite wake word configuration,
the pre-announce chime and timers that ring on the satellite they were set on.

Driven through Home Assistant's own actions, websocket commands and conversation agent; the
bridge is the fake one on Home Assistant's MQTT mock (its real counterpart, over a real
Mosquitto: tests/ha/test_satellite_settings_e2e.py).
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any
from unittest.mock import patch
import wave

from homeassistant.components import conversation
from homeassistant.components import intent as intent_component
from homeassistant.components.assist_pipeline import (
    OPTION_PREFERRED,
    async_get_pipelines,
    async_update_pipeline,
)
from homeassistant.components.assist_satellite import AssistSatelliteAnnouncement
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import intent
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import MqttMockHAClient, WebSocketGenerator

from custom_components.hearth import system_health
from custom_components.hearth.assist_satellite import timer_finished_message
from custom_components.hearth.chime import HA_CHIME_PATH, chime_wav, is_default_chime
from custom_components.hearth.const import DOMAIN

from .fake_bridge import BRIDGE_ID, HassBridge
from .test_pipeline import _pipeline
from .test_voice import _agent

SATELLITE = "assist_satellite.kitchen"
PIPELINE = "select.kitchen_assistant"
SENSITIVITY = "select.kitchen_finished_speaking_detection"
WAKE_WORD = "select.kitchen_wake_word"
CONFIRM = "select.kitchen_ask_before_acting"
PLAY = "/satellite/kitchen/pipeline/play"


def _state(hass: HomeAssistant, entity_id: str) -> str | None:
    state = hass.states.get(entity_id)
    return state.state if state else None


async def _select(hass: HomeAssistant, entity_id: str, option: str) -> None:
    await hass.services.async_call(
        "select", "select_option", {"entity_id": entity_id, "option": option}, blocking=True
    )


def _frames(wav: bytes) -> tuple[tuple[int, int, int], bytes]:
    with wave.open(io.BytesIO(wav)) as read:
        return (
            (read.getframerate(), read.getsampwidth(), read.getnchannels()),
            read.readframes(read.getnframes()),
        )


# ---------------------------------------------------------------------------- selects


async def test_satellite_selects_are_config_entities_of_the_satellite(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    registry = er.async_get(hass)
    device_id = registry.async_get(SATELLITE).device_id
    for entity_id, key in (
        (PIPELINE, "pipeline"),
        (SENSITIVITY, "vad_sensitivity"),
        (WAKE_WORD, "wake_word"),
    ):
        entry = registry.async_get(entity_id)
        assert entry is not None, entity_id
        assert entry.unique_id == f"{BRIDGE_ID}-kitchen-{key}"
        assert entry.entity_category == "config"
        assert entry.device_id == device_id
    assert _state(hass, PIPELINE) == OPTION_PREFERRED
    assert _state(hass, SENSITIVITY) == "default"
    # Nothing chosen, nothing announced: the bridge's default wake word.
    assert _state(hass, WAKE_WORD) == "okay_nabu"
    assert hass.states.get(WAKE_WORD).attributes["options"] == [
        "okay_nabu",
        "hey_jarvis",
        "hey_mycroft",
        "alexa",
    ]
    await bridge.go_offline()
    await hass.async_block_till_done()
    assert _state(hass, WAKE_WORD) == "unavailable"
    assert _state(hass, SENSITIVITY) == "unavailable"


async def test_wake_word_select_is_applied_by_the_bridge(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    await _select(hass, WAKE_WORD, "hey_jarvis")
    (command,) = bridge.messages("/satellite/kitchen/settings/set")
    assert command["wake_word"] == "hey_jarvis" and command["request_id"]
    assert "sensitivity" not in command
    assert _state(hass, WAKE_WORD) == "hey_jarvis"
    # What is shown is the bridge's: its retained state says otherwise (another client set it).
    bridge.settings["kitchen"]["wake_word"] = "alexa"
    await bridge.satellite_state("kitchen", "idle")
    await hass.async_block_till_done()
    assert _state(hass, WAKE_WORD) == "alexa"


async def test_sensitivity_select_is_applied_by_the_bridge(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    await _select(hass, SENSITIVITY, "relaxed")
    (command,) = bridge.messages("/satellite/kitchen/settings/set")
    assert command == {"request_id": command["request_id"], "sensitivity": "relaxed"}
    assert _state(hass, SENSITIVITY) == "relaxed"
    assert bridge.settings["kitchen"]["sensitivity"] == "relaxed"


async def test_confirm_select_is_applied_by_the_bridge(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    entry = er.async_get(hass).async_get(CONFIRM)
    assert entry is not None and entry.entity_category == "config"
    assert entry.unique_id == f"{BRIDGE_ID}-kitchen-confirm"
    assert hass.states.get(CONFIRM).attributes["options"] == ["unsure", "sensitive", "never"]
    assert _state(hass, CONFIRM) == "unknown"  # the bridge has not said yet
    await _select(hass, CONFIRM, "sensitive")
    (command,) = bridge.messages("/satellite/kitchen/settings/set")
    assert command == {"request_id": command["request_id"], "confirm": "sensitive"}
    assert _state(hass, CONFIRM) == "sensitive"
    bridge.settings["kitchen"]["confirm"] = "never"  # another client changed it: the bridge's shows
    await bridge.satellite_state("kitchen", "idle")
    await hass.async_block_till_done()
    assert _state(hass, CONFIRM) == "never"


async def test_a_setting_the_bridge_does_not_confirm_is_not_shown(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    bridge.answer = False
    with (
        patch("custom_components.hearth.satellite_settings.REQUEST_TIMEOUT", 0.2),
        pytest.raises(HomeAssistantError) as err,
    ):
        await _select(hass, SENSITIVITY, "aggressive")
    assert err.value.translation_key == "bridge_timeout"
    assert _state(hass, SENSITIVITY) == "default"


async def test_a_setting_the_bridge_refuses_raises_its_code(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    with pytest.raises(HomeAssistantError) as err:
        await loaded.runtime_data.settings.async_set("kitchen", wake_word="hey_siri")
    assert err.value.translation_key == "setting_refused"
    assert err.value.translation_placeholders["code"] == "unknown_wake_word"
    assert _state(hass, WAKE_WORD) == "okay_nabu"


def _modes(mqtt_mock: MqttMockHAClient) -> list[dict[str, Any]]:
    """The pipeline modes published for the kitchen (the mock delivers a retained topic only
    once per subscriber, so they are read from the mocked client)."""
    return [
        json.loads(call.args[1])
        for call in mqtt_mock.async_publish.call_args_list
        if call.args[0] == "hearth/satellite/kitchen/pipeline/set"
    ]


async def test_pipeline_select_routes_the_satellite_to_the_pipeline(
    hass: HomeAssistant,
    mqtt_mock: MqttMockHAClient,
    bridge: HassBridge,
    loaded: MockConfigEntry,
) -> None:
    pipeline = await _pipeline(hass, "Local assist")
    await hass.async_block_till_done()
    assert "Local assist" in hass.states.get(PIPELINE).attributes["options"]
    voice = loaded.runtime_data.voice
    assert voice.pipeline_for("kitchen") is None
    await _select(hass, PIPELINE, "Local assist")
    await hass.async_block_till_done()
    assert voice.pipeline_for("kitchen") == pipeline.id
    # The bridge is told to stream this satellite's commands to Home Assistant's pipeline.
    assert _modes(mqtt_mock)[-1] == {"mode": "assist"}
    await _select(hass, PIPELINE, OPTION_PREFERRED)
    await hass.async_block_till_done()
    assert voice.pipeline_for("kitchen") is None
    assert _modes(mqtt_mock)[-1] == {"mode": "hearth"}


# ---------------------------------------------------------------------------- wake word API


async def test_wake_word_configuration_through_assist_satellite(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    bridge: HassBridge,
    loaded: MockConfigEntry,
) -> None:
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "assist_satellite/get_configuration", "entity_id": SATELLITE}
    )
    config = (await client.receive_json())["result"]
    assert [w["id"] for w in config["available_wake_words"]] == [
        "okay_nabu",
        "hey_jarvis",
        "hey_mycroft",
        "alexa",
    ]
    assert config["available_wake_words"][1]["wake_word"] == "Hey Jarvis"
    assert config["active_wake_words"] == ["okay_nabu"]
    assert config["max_active_wake_words"] == 1

    await client.send_json_auto_id(
        {
            "type": "assist_satellite/set_wake_words",
            "entity_id": SATELLITE,
            "wake_word_ids": ["hey_mycroft"],
        }
    )
    assert (await client.receive_json())["success"]
    (command,) = bridge.messages("/satellite/kitchen/settings/set")
    assert command["wake_word"] == "hey_mycroft"
    await client.send_json_auto_id(
        {"type": "assist_satellite/get_configuration", "entity_id": SATELLITE}
    )
    assert (await client.receive_json())["result"]["active_wake_words"] == ["hey_mycroft"]
    assert _state(hass, WAKE_WORD) == "hey_mycroft"


async def test_announced_wake_word_is_active_until_one_is_chosen(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    await bridge.send(
        "satellite/kitchen/status",
        {"state": "online", "protocol": 1, "name": "Kitchen", "wake_word": "alexa"},
        retain=True,
    )
    await hass.async_block_till_done()
    entity = hass.data["entity_components"]["assist_satellite"].get_entity(SATELLITE)
    assert entity.async_get_configuration().active_wake_words == ["alexa"]
    with pytest.raises(HomeAssistantError) as err:
        await entity.async_set_configuration(
            type(entity.async_get_configuration())(
                available_wake_words=[],
                active_wake_words=["alexa", "hey_jarvis"],
                max_active_wake_words=1,
            )
        )
    assert err.value.translation_key == "wake_word_unsupported"
    assert bridge.messages("/satellite/kitchen/settings/set") == []


# ---------------------------------------------------------------------------- pre-announce chime


async def _until_played(bridge: HassBridge, count: int) -> None:
    for _ in range(100):
        if len(bridge.messages(PLAY)) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} plays expected, got {len(bridge.messages(PLAY))}")


async def test_announcement_plays_the_chime_first(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    order: list[str] = []
    original = bridge.handle

    async def handle(topic: str, raw: Any) -> None:
        order.append(topic.rsplit("/", 1)[-1])
        await original(topic, raw)

    bridge.handle = handle  # type: ignore[method-assign]
    await hass.services.async_call(
        "assist_satellite",
        "announce",
        {"entity_id": SATELLITE, "message": "Dinner is ready"},
        blocking=True,
    )
    (chime,) = bridge.messages(PLAY)
    assert chime == chime_wav()
    fmt, frames = _frames(chime)
    assert fmt == (16000, 2, 1)
    assert 0.4 < len(frames) / 32000 < 1.0
    assert (
        max(
            abs(int.from_bytes(frames[i : i + 2], "little", signed=True))
            for i in range(0, len(frames), 2)
        )
        > 5000
    )
    (announce,) = bridge.messages("/satellite/kitchen/announce")
    assert announce["text"] == "Dinner is ready"
    assert [leaf for leaf in order if leaf in ("play", "announce")] == ["play", "announce"]


async def test_announcement_without_preannounce_has_no_chime(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    await hass.services.async_call(
        "assist_satellite",
        "announce",
        {"entity_id": SATELLITE, "message": "Quiet one", "preannounce": False},
        blocking=True,
    )
    assert bridge.messages(PLAY) == []
    assert len(bridge.messages("/satellite/kitchen/announce")) == 1


async def test_preannounce_media_id_is_played_before_the_message(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry, tmp_path: Path
) -> None:
    hass.config.media_dirs["local"] = str(tmp_path)
    assert await async_setup_component(hass, "media_source", {})
    pcm = bytes(range(256)) * 40
    with wave.open(str(tmp_path / "ding.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm)
    await hass.services.async_call(
        "assist_satellite",
        "announce",
        {
            "entity_id": SATELLITE,
            "message": "Door bell",
            "preannounce_media_id": "media-source://media_source/local/ding.wav",
        },
        blocking=True,
    )
    (played,) = bridge.messages(PLAY)
    assert _frames(played) == ((16000, 2, 1), pcm)
    assert bridge.messages("/satellite/kitchen/announce")[0]["text"] == "Door bell"


async def test_start_conversation_plays_the_chime_first(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    # Home Assistant starts conversations only with an agent that can hold them.
    _agent_object, agent_entry = _agent(hass, "llama", "local_polling")
    pipeline = async_get_pipelines(hass)[0]
    await async_update_pipeline(hass, pipeline, conversation_engine=agent_entry.entry_id)
    await hass.services.async_call(
        "assist_satellite",
        "start_conversation",
        {"entity_id": SATELLITE, "start_message": "Shall I close the blinds?"},
        blocking=True,
    )
    assert bridge.messages(PLAY) == [chime_wav()]
    (announce,) = bridge.messages("/satellite/kitchen/announce")
    assert announce["start_conversation"] is True


def test_default_chime_is_recognized_as_path_or_url() -> None:
    assert is_default_chime(HA_CHIME_PATH)
    assert is_default_chime(f"http://192.168.1.2:8123{HA_CHIME_PATH}")
    assert not is_default_chime("/media/local/ding.wav")
    announcement = AssistSatelliteAnnouncement(
        message="x", media_id="", original_media_id="", tts_token=None, media_id_source="tts"
    )
    assert announcement.preannounce_media_id is None


# ---------------------------------------------------------------------------- timers


async def test_timer_set_on_the_satellite_rings_on_it(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    """ "Set a timer" said to a Hearth satellite (Home Assistant's own timer intents): when it
    ends, the chime and the message are played on that satellite."""
    assert await async_setup_component(hass, "intent", {})
    device_id = er.async_get(hass).async_get(SATELLITE).device_id
    assert intent_component.async_device_supports_timers(hass, device_id)
    result = await conversation.async_converse(
        hass, "set a timer for 2 seconds", None, Context(), "en", device_id=device_id
    )
    assert result.response.response_type is intent.IntentResponseType.ACTION_DONE, (
        result.response.speech
    )
    assert bridge.messages("/satellite/kitchen/announce") == []
    for _ in range(100):
        await asyncio.sleep(0.05)
        if bridge.messages("/satellite/kitchen/announce"):
            break
    await hass.async_block_till_done()
    (announce,) = bridge.messages("/satellite/kitchen/announce")
    assert announce["text"] == "Your 2 second timer is done."
    assert bridge.messages(PLAY) == [chime_wav()]
    assert _state(hass, SATELLITE) == "idle"


async def test_timer_on_a_muted_satellite_does_not_ring(
    hass: HomeAssistant,
    bridge: HassBridge,
    loaded: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await hass.services.async_call(
        "switch", "turn_off", {"entity_id": "switch.kitchen_microphone"}, blocking=True
    )
    entity = hass.data["entity_components"]["assist_satellite"].get_entity(SATELLITE)
    timer = intent_component.TimerInfo(
        id="t1",
        name="pasta",
        seconds=0,
        device_id=None,
        start_hours=None,
        start_minutes=10,
        start_seconds=None,
        created_at=0,
        updated_at=0,
        language="en",
    )
    entity._async_timer_event(intent_component.TimerEventType.FINISHED, timer)  # noqa: SLF001
    entity._async_timer_event(intent_component.TimerEventType.STARTED, timer)  # noqa: SLF001
    await hass.async_block_till_done()
    assert bridge.messages("/satellite/kitchen/announce") == []
    assert "could not ring" in caplog.text


def test_timer_messages() -> None:
    def timer(**kwargs: Any) -> intent_component.TimerInfo:
        fields: dict[str, Any] = {
            "id": "t",
            "name": None,
            "seconds": 0,
            "device_id": None,
            "start_hours": None,
            "start_minutes": None,
            "start_seconds": None,
            "created_at": 0,
            "updated_at": 0,
            "language": "en",
        }
        return intent_component.TimerInfo(**(fields | kwargs))

    assert timer_finished_message(timer(name="pasta")) == "The pasta timer is done."
    assert timer_finished_message(timer(start_minutes=5)) == "Your 5 minute timer is done."
    assert (
        timer_finished_message(timer(start_hours=1, start_minutes=30))
        == "Your 1 hour and 30 minute timer is done."
    )
    assert timer_finished_message(timer()) == "Your timer is done."
    assert DOMAIN == "hearth"


async def test_answers_that_are_not_for_a_pending_request_are_ignored(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    """Malformed or stray `settings/result` messages change nothing; an unload ends a wait."""
    settings = loaded.runtime_data.settings
    for topic, payload in (
        ("satellite/bad id/settings/result", {"request_id": "x", "ok": True}),
        ("satellite/kitchen/settings/result", {"ok": True}),
        ("satellite/kitchen/settings/result", {"request_id": "unknown", "ok": True}),
        ("satellite/kitchen/settings/result", "not json"),
    ):
        await bridge.send(topic, payload)
    await hass.async_block_till_done()
    assert _state(hass, WAKE_WORD) == "okay_nabu"

    bridge.answer = False
    waiting = hass.async_create_task(settings.async_set("kitchen", wake_word="alexa"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    assert await hass.config_entries.async_unload(loaded.entry_id)
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_system_health_lists_every_bridge(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    other = HassBridge(hass, prefix="upstairs", bridge_id="second-bridge")
    await other.start()
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Hearth bridge second-bridge",
        unique_id="second-bridge",
        data={"prefix": "upstairs", "bridge_id": "second-bridge"},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await other.announce()
    await hass.async_block_till_done()
    info = await system_health.system_health_info(hass)
    assert info["bridge_reachable"] == "True, True"
    assert info["satellites_online"] == "1/1, 0/0"
    assert info["bridge_version"] == "0.1.0, 0.1.0"


async def test_home_assistants_own_vad_follows_the_sensitivity_select(
    hass: HomeAssistant, bridge: HassBridge, loaded: MockConfigEntry
) -> None:
    """A streamed pipeline run's voice activity detection uses the same choice as the bridge."""
    entity = hass.data["entity_components"]["assist_satellite"].get_entity(SATELLITE)
    assert entity.vad_sensitivity_entity_id == SENSITIVITY
    await _select(hass, SENSITIVITY, "relaxed")
    assert entity._resolve_vad_sensitivity() == 1.25  # noqa: SLF001
    await bridge.go_offline()
    await hass.async_block_till_done()
    # An unavailable select is no choice: Home Assistant's default is used.
    assert entity.vad_sensitivity_entity_id is None
