"""The add-on's files against Supervisor's rules (tests/addon/supervisor_rules.py) and against the
bridge they configure: required keys, every option with a schema entry and a translation, option
choices the bridge accepts, the image's architectures and install path, the store repository
beside the integration's HACS layout."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
import yaml

from bridge import addon
from bridge.config import PREFIX, STT_SCHEMA, TTS_SCHEMA, WAKE_WORDS, validate
from bridge.protocol.hearth import SATELLITE_ID_PATTERN
from tests.addon import supervisor_rules as rules
from tests.addon import test_install_debian as debian_install

ROOT = Path(__file__).resolve().parents[2]
ADDON = ROOT / "hearth"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return load(ADDON / "config.yaml")


@pytest.fixture(scope="module")
def translations() -> dict[str, Any]:
    return load(ADDON / "translations" / "en.yaml")


def test_config_follows_supervisor_schema(config: dict[str, Any]) -> None:
    rules.SCHEMA_ADDON_CONFIG(config)
    for key in ("name", "version", "slug", "description", "arch"):
        assert config.get(key), f"config.yaml lacks {key}"
    assert set(config["arch"]) == {"amd64", "aarch64"}
    assert config["slug"] == ADDON.name
    # prebuilt images (tests/addon/test_addon_image.py checks the name against the workflow)
    assert "{arch}" in config["image"]


def test_a_broken_config_is_caught_by_these_rules(config: dict[str, Any]) -> None:
    """The restated rules refuse what Supervisor refuses (so the test above can fail)."""
    for broken in ({**config, "arch": ["amd64", "x86"]}, {k: v for k, v in config.items() if k != "slug"},
                   {**config, "services": ["mqtt:required"]}, {**config, "schema": {"x": "string"}},
                   {**config, "schema": {"x": [["str"]]}}):
        with pytest.raises(vol.Invalid):
            rules.SCHEMA_ADDON_CONFIG(broken)
    with pytest.raises(vol.Invalid):
        rules.validate_options(config["schema"], {**config["options"], "wake_word": "hey_siri"})
    with pytest.raises(vol.Invalid):
        rules.validate_options(config["schema"], {k: v for k, v in config["options"].items() if k != "log_level"})


def test_options_and_schema_agree(config: dict[str, Any]) -> None:
    options, schema = config["options"], config["schema"]
    assert set(options) <= set(schema), f"options without a schema entry: {set(options) - set(schema)}"
    for key, typ in schema.items():
        if key not in options:
            assert isinstance(typ, str) and typ.endswith("?"), f"required option {key} has no default"
    assert rules.validate_options(schema, options) == options


def test_every_option_is_translated(config: dict[str, Any], translations: dict[str, Any]) -> None:
    rules.SCHEMA_ADDON_TRANSLATIONS(translations)
    texts = translations["configuration"]
    assert set(texts) == set(config["schema"])
    for key, typ in config["schema"].items():
        assert texts[key]["name"].strip() and texts[key]["description"].strip(), key
        if isinstance(typ, list) and isinstance(typ[0], dict):
            fields = texts[key].get("fields") or {}
            assert set(fields) == set(typ[0]), f"{key}: fields translated {set(fields)} != {set(typ[0])}"
            assert all(f["name"].strip() and f["description"].strip() for f in fields.values())


def test_ingress_services_and_api_access(config: dict[str, Any]) -> None:
    assert config["ingress"] is True
    assert config["ingress_port"] == addon.STATUS_PORT
    assert config["watchdog"] == f"http://[HOST]:{addon.STATUS_PORT}/healthz"
    assert "mqtt:need" in config["services"]
    # the integration talks to the bridge over MQTT: no Home Assistant or Supervisor API access
    assert not config.get("homeassistant_api") and not config.get("hassio_api")
    # the status page only through ingress: no host port for it
    assert all(not key.startswith(f"{addon.STATUS_PORT}/") for key in config.get("ports") or {})


def test_option_choices_are_what_the_bridge_accepts(config: dict[str, Any]) -> None:
    types = rules.option_types(config["schema"])

    def choices(key: str) -> set[str]:
        match = rules.RE_SCHEMA_ELEMENT.match(types[key])
        assert match and match.group("list"), f"{key} is not a list(...) option"
        return set(match.group("list").split("|"))

    assert choices("wake_word") == choices("satellites.wake_word") == set(WAKE_WORDS)
    assert choices("log_level") == {"debug", "info", "warning", "error"}
    # the add-on's two speech-to-text engines: the bridge's own, or Wyoming when a host is given
    assert set(next(v for k, v in STT_SCHEMA.schema.items() if k == "engine").container) == {"pocketsphinx", "wyoming"}
    # the bridge's three voices: espeak, none, or wyoming when a host is given
    assert choices("tts_engine") | {"wyoming"} == set(next(v for k, v in TTS_SCHEMA.schema.items()
                                                           if k == "engine").container)
    sat_match = rules.RE_SCHEMA_ELEMENT.match(types["satellites.id"])
    assert sat_match and sat_match.group("match") == f"^{SATELLITE_ID_PATTERN}$"
    prefix_match = rules.RE_SCHEMA_ELEMENT.match(types["topic_prefix"])
    bridge_prefix = next(v for v in PREFIX.validators if hasattr(v, "pattern")).pattern
    assert prefix_match and prefix_match.group("match") == bridge_prefix.pattern


@pytest.mark.parametrize("options", [
    None,  # the defaults
    {"log_level": "debug", "wake_word": "hey_jarvis", "silence_tail": 0.05, "complete_tail": 3, "vad_tail": 5,
     "satellites": [{"id": "kitchen", "area": "kitchen", "wake_word": "alexa"}, {"id": "pi@living.room"}],
     "stt_host": "core-whisper", "stt_port": 10300, "stt_fallback": False,
     "tts_engine": "espeak", "tts_host": "core-piper", "tts_port": 10200, "tts_voice": "en_US-lessac",
     "topic_prefix": "home/hearth", "hermes": False, "wyoming_server": True},
])
def test_valid_options_make_a_valid_bridge_config(config: dict[str, Any], options: dict[str, Any] | None,
                                                  tmp_path: Path) -> None:
    options = rules.validate_options(config["schema"], options or config["options"])
    mqtt = {"host": "core-mosquitto", "port": 1883, "ssl": False, "username": "addons", "password": "x"}
    settings = validate(addon.bridge_config(options, mqtt, tmp_path))
    assert settings.data_dir == tmp_path
    assert settings.wake_model == options["wake_word"]
    assert settings.mqtt.prefix == options["topic_prefix"]
    assert settings.endpoint.silence_tail == pytest.approx(options["silence_tail"])
    assert settings.status_api.port == addon.STATUS_PORT and settings.status_api.host == "0.0.0.0"
    assert settings.mqtt.username is None and settings.mqtt.password is None  # never in the file
    assert {s["id"] for s in options["satellites"]} == set(settings.satellites)
    for sat in options["satellites"]:
        assert settings.satellite(sat["id"]).area == sat.get("area")


def test_build_matches_config_and_installs_with_the_one_recipe(config: dict[str, Any]) -> None:
    build = load(ADDON / "build.yaml")
    rules.SCHEMA_BUILD_CONFIG(build)
    assert set(build["build_from"]) == set(config["arch"])
    for arch, image in build["build_from"].items():
        # Home Assistant's Debian base for that architecture; trixie has Debian's Python 3.13
        assert image == f"ghcr.io/home-assistant/{arch}-base-debian:trixie"
    dockerfile = (ADDON / "Dockerfile").read_text()
    assert re.search(r"^ARG BUILD_FROM\nFROM \$\{BUILD_FROM\}", dockerfile, re.MULTILINE)
    install = re.search(r"^\s*&& \S*/scripts/install-bridge\.sh (/\S+)", dockerfile, re.MULTILINE)
    assert install, "the Dockerfile does not run scripts/install-bridge.sh"
    venv = install.group(1)
    # the very command the debootstrap test (test_install_debian.py) proves on a fresh Debian
    assert install.group(0).split()[1:] == debian_install.INSTALL
    assert "pip install" not in dockerfile, "a second install recipe in the Dockerfile"
    assert (ROOT / "scripts/install-bridge.sh").stat().st_mode & 0o111
    s6 = ADDON / "rootfs/etc/s6-overlay/s6-rc.d"
    run = (s6 / "hearth/run").read_text()
    assert f"exec {venv}/bin/python -m bridge.addon" in run
    assert (s6 / "hearth/run").stat().st_mode & 0o111 and (s6 / "hearth/finish").stat().st_mode & 0o111
    assert (s6 / "hearth/type").read_text().strip() == "longrun"
    assert (s6 / "user/contents.d/hearth").exists()
    assert config["init"] is False  # s6-overlay is the image's init
    # _env.sh (scripts/test, scripts/demo) installs through the same recipe
    env_sh = (ROOT / "scripts/_env.sh").read_text()
    assert 'source "$ROOT/scripts/install-bridge.sh"' in env_sh and "install_bridge --no-compile -e" in env_sh
    assert "pocketsphinx==" not in env_sh


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_store_files(config: dict[str, Any]) -> None:
    for name in ("DOCS.md", "README.md", "CHANGELOG.md"):
        assert (ADDON / name).read_text().strip(), name
    assert f"## {config['version']}" in (ADDON / "CHANGELOG.md").read_text()
    width, height = png_size(ADDON / "icon.png")
    assert width == height and width >= 128
    width, height = png_size(ADDON / "logo.png")
    assert width > height
    rules.SCHEMA_REPOSITORY_CONFIG(load(ROOT / "repository.yaml"))


def test_hacs_layout_beside_the_addon() -> None:
    """HACS still finds exactly one integration, and its hacs.json keys are ones HACS accepts."""
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert hacs["name"] and set(hacs) <= {"name", "content_in_root", "zip_release", "filename", "hide_default_branch",
                                          "country", "homeassistant", "hacs", "persistent_directory", "render_readme"}
    integrations = [p.parent.name for p in (ROOT / "custom_components").glob("*/manifest.json")]
    assert integrations == ["hearth"]
    manifest = json.loads((ROOT / "custom_components/hearth/manifest.json").read_text())
    assert manifest["domain"] == "hearth"


@pytest.mark.parametrize("stt", [{}, {"stt_host": "core-whisper"}, {"stt_host": "core-whisper", "stt_port": 10300},
                                 {"stt_port": 10300}, {"stt_fallback": False}])
@pytest.mark.parametrize("tts", [{}, {"tts_engine": "none"}, {"tts_host": "core-piper"},
                                 {"tts_host": "core-piper", "tts_voice": "en_US-lessac-medium"},
                                 {"tts_port": 10200}, {"tts_engine": "none", "tts_host": "core-piper"}])
def test_every_speech_option_set_supervisor_accepts_starts_the_bridge(config: dict[str, Any], stt: dict[str, Any],
                                                                       tts: dict[str, Any], tmp_path: Path) -> None:
    """What Supervisor's schema lets an owner save must not stop the bridge at start: a Wyoming
    speech-to-text server is chosen by giving its host (no engine option that could say wyoming
    without one)."""
    options = rules.validate_options(config["schema"], {**config["options"], **stt, **tts})
    mqtt = {"host": "core-mosquitto", "port": 1883}
    settings = validate(addon.bridge_config(options, mqtt, tmp_path))
    assert settings.stt.engine == ("wyoming" if stt.get("stt_host") else "pocketsphinx")
    assert settings.tts.engine == ("none" if tts.get("tts_engine") == "none"
                                   else "wyoming" if tts.get("tts_host") else "espeak")
    # the engine-without-host option no longer exists (Supervisor drops what its schema lacks)
    with pytest.raises(vol.Invalid, match="stt_engine"):
        rules.validate_options(config["schema"], {**config["options"], "stt_engine": "wyoming"})
    with pytest.raises(vol.Invalid):
        rules.validate_options(config["schema"], {**config["options"], "tts_engine": "wyoming"})
