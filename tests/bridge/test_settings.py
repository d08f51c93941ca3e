"""Typed settings: produced once from the voluptuous schema, frozen, defaults agreeing with it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bridge.config import validate
from bridge.pipeline.endpoint import EndpointSettings
from bridge.settings import (
    HermesSettings,
    LimitsSettings,
    MqttSettings,
    RecognitionSettings,
    SatelliteConfig,
    Settings,
    SttSettings,
    TtsSettings,
)


def test_defaults_of_the_schema_and_of_the_dataclasses_agree(tmp_path: Path) -> None:
    settings = validate({"data_dir": str(tmp_path), "bridge_id": "b"})
    assert settings.mqtt == MqttSettings()
    assert settings.hermes == HermesSettings()
    assert settings.stt == SttSettings()
    assert settings.tts == TtsSettings()
    assert settings.limits == LimitsSettings()
    assert settings.recognition == RecognitionSettings()
    assert settings.endpoint == EndpointSettings()
    assert settings == Settings(bridge_id="b", data_dir=tmp_path)


def test_values_become_typed_attributes(tmp_path: Path) -> None:
    settings = validate({
        "data_dir": str(tmp_path), "mqtt": {"port": "1884", "tls": {"enabled": True, "insecure": True}},
        "hermes": {"sites": ["a", "b"]}, "satellites": {"kitchen": {"area": "kitchen", "wake_word": "alexa"}},
        "endpoint": {"silence_tail": 0.4}, "stt": {"workers": 3}, "vocabulary": {"areas": []},
    })
    assert settings.mqtt.port == 1884 and settings.mqtt.tls.enabled and settings.mqtt.tls.insecure
    assert settings.hermes.sites == frozenset({"a", "b"})
    assert settings.satellite("kitchen") == SatelliteConfig(wake_word="alexa", area="kitchen")
    assert settings.satellite("elsewhere") == SatelliteConfig()
    assert settings.endpoint.silence_tail == 0.4 and settings.endpoint.vad_tail == EndpointSettings().vad_tail
    assert settings.stt.workers == 3
    assert settings.data_dir == tmp_path
    assert settings.vocabulary == {"areas": []}
    assert settings.bridge_id.startswith("hearth-")


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = validate({"data_dir": str(tmp_path)})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.mqtt.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.satellites["new"] = SatelliteConfig()  # type: ignore[index]
