"""Bridge configuration: a YAML file plus command-line overrides, validated with voluptuous.

This module owns the schema, its defaults and its error messages; what it produces is a frozen
:class:`bridge.settings.Settings`. A wrong key or value stops start-up with one line naming the
key and what was expected.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
import socket
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml

from .privacy.auth import normalize_key
from .protocol.hearth import SATELLITE_ID_RULE, WAKE_WORDS, is_satellite_id
from .settings import Settings

__all__ = ["WAKE_WORDS", "ConfigError", "Settings", "load", "parse_set_option", "validate"]



class ConfigError(ValueError):
    """Invalid configuration; str() is one line that names the key."""


def _port(value: object) -> int:
    port = int(vol.Coerce(int)(value))
    if not 0 <= port <= 65535:
        raise vol.Invalid("expected a port number 0-65535")
    return port


def _link(value: object) -> str:
    """A device link Home Assistant can open: http(s) or its own homeassistant:// pages."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://", "homeassistant://")) \
            or any(c.isspace() for c in value) or len(value) > 512:
        raise vol.Invalid("must be an http://, https:// or homeassistant:// URL")
    return value


def _ip_address(value: object) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise vol.Invalid(f"expected an IP address, got {value!r}") from None


def _positive(value: object) -> float:
    number = float(vol.Coerce(float)(value))
    if number <= 0:
        raise vol.Invalid("expected a number greater than 0")
    return number


def _satellite_id(value: object) -> str:
    """The one satellite id rule (bridge.protocol.hearth), matched whole."""
    if not is_satellite_id(value):
        raise vol.Invalid(f"expected a satellite id: {SATELLITE_ID_RULE}")
    assert isinstance(value, str)
    return value


def _satellite_keys(value: dict[object, object]) -> dict[object, object]:
    """`satellites`: every key a satellite id, checked before what is configured under it."""
    for key in value:
        if not is_satellite_id(key):
            raise vol.Invalid(f"{key!r} is not a satellite id ({SATELLITE_ID_RULE})")
    return value


PREFIX = vol.All(str, vol.Match(r"^[A-Za-z0-9_][A-Za-z0-9_/-]{0,63}$", msg="expected an MQTT topic prefix without wildcards"))

#: the files TLS reads, each checked only when TLS is on (_check_tls_files): a configuration
#: that names them with TLS off (the documented example) starts
TLS_FILES = {"ca_file": "CA file", "cert_file": "client certificate", "key_file": "client certificate's key"}

TLS_SCHEMA = vol.Schema({
    vol.Optional("enabled", default=False): bool,
    **{vol.Optional(key): vol.Any(None, vol.All(str, vol.Length(min=1)), msg="expected a file path")
       for key in TLS_FILES},
    vol.Optional("insecure", default=False): bool,
})

MQTT_SCHEMA = vol.Schema({
    vol.Optional("host", default="127.0.0.1"): vol.All(str, vol.Length(min=1)),
    vol.Optional("port", default=1883): _port,
    vol.Optional("username", default=None): vol.Any(None, str),
    vol.Optional("password", default=None): vol.Any(None, str),
    vol.Optional("tls", default={}): TLS_SCHEMA,
    vol.Optional("prefix", default="hearth"): PREFIX,
    vol.Optional("client_id", default=None): vol.Any(None, str),
    vol.Optional("keepalive", default=30): vol.All(vol.Coerce(int), vol.Range(min=5, max=600)),
    vol.Optional("reconnect_max", default=30.0): _positive,
})

SATELLITE_SCHEMA = vol.Schema({
    vol.Optional("wake_word"): vol.In(WAKE_WORDS),
    vol.Optional("play_rate"): vol.All(vol.Coerce(int), vol.Range(min=8000, max=48000)),
    vol.Optional("name"): str,
    # The vocabulary area the satellite stands in: "turn on the lights" means this area's lights.
    vol.Optional("area"): vol.All(str, vol.Length(min=1, max=100)),
    # Satellites that hear the same room besides those of its area: their wakes compete, and
    # only the best-heard one answers (docs/protocol.md, "Arbitration").
    vol.Optional("neighbours"): vol.All([_satellite_id], vol.Length(max=64)),
})

ENDPOINT_SCHEMA = vol.Schema({
    # Silence (by frame energy) after speech that ends the utterance.
    vol.Optional("silence_tail", default=0.30): _positive,
    # Shorter tail when the recognizer's partial hypothesis is already a complete command.
    vol.Optional("complete_tail", default=0.10): _positive,
    vol.Optional("pause_tail", default=0.70): _positive,  # no whole command heard yet: a pause
    # Fallback when the room is too noisy for energy: the VAD's own silence.
    vol.Optional("vad_tail", default=0.70): _positive,
    vol.Optional("max_utterance", default=8.0): _positive,
    vol.Optional("no_speech_timeout", default=4.0): _positive,
})

STT_SCHEMA = vol.Schema({
    vol.Optional("engine", default="pocketsphinx"): vol.In(("pocketsphinx", "wyoming")),
    vol.Optional("workers", default=2): vol.All(vol.Coerce(int), vol.Range(min=1, max=16)),
    vol.Optional("host"): vol.Any(None, str),
    vol.Optional("port", default=10300): _port,
    vol.Optional("timeout", default=15.0): _positive,
    vol.Optional("fallback", default=True): bool,
})

TTS_SCHEMA = vol.Schema({
    vol.Optional("engine", default="espeak"): vol.In(("espeak", "wyoming", "none")),
    vol.Optional("voice"): str,
    vol.Optional("speed"): vol.All(vol.Coerce(int), vol.Range(min=80, max=450)),
    vol.Optional("host"): vol.Any(None, str),
    vol.Optional("port", default=10200): _port,
    vol.Optional("timeout", default=10.0): _positive,
    vol.Optional("executable"): vol.All(str, vol.Length(min=1)),
}, extra=vol.PREVENT_EXTRA)

LIMITS_SCHEMA = vol.Schema({
    vol.Optional("queue_frames", default=256): vol.All(vol.Coerce(int), vol.Range(min=8, max=100000)),
    vol.Optional("max_payload", default=65536): vol.All(vol.Coerce(int), vol.Range(min=1024)),
    vol.Optional("max_vocabulary_payload", default=4_000_000): vol.All(vol.Coerce(int), vol.Range(min=65536)),
    vol.Optional("max_satellites", default=200): vol.All(vol.Coerce(int), vol.Range(min=1)),
    vol.Optional("max_intent_text", default=300): vol.All(vol.Coerce(int), vol.Range(min=20, max=65536)),
    vol.Optional("intent_timeout", default=5.0): vol.All(vol.Coerce(float), vol.Range(min=0.1, max=600)),
})

def _pairing_key(value: object) -> str:
    try:
        return normalize_key(str(value))
    except ValueError as err:
        raise vol.Invalid(str(err)) from None


CONFIG_SCHEMA = vol.Schema({
    vol.Optional("bridge_id", default=None): vol.Any(None, vol.Match(r"^[A-Za-z0-9_-]{1,64}$")),
    vol.Optional("data_dir", default=None): vol.Any(None, str),
    # The key Home Assistant signs commands with (docs/security.md); None: the one made in data_dir.
    vol.Optional("pairing_key", default=None): vol.Any(None, _pairing_key),
    vol.Optional("log_level", default="info"): vol.In(("debug", "info", "warning", "error")),
    vol.Optional("mqtt", default={}): MQTT_SCHEMA,
    vol.Optional("hermes", default={}): vol.Schema({
        vol.Optional("enabled", default=True): bool,
        vol.Optional("sites", default=[]): [_satellite_id],
        # Who may open and end listening sessions with startListening, stopListening and
        # hotword/<id>/detected (docs/security.md, "Hermes"): "any" client (Rhasspy's dialogue
        # manager), "own" (clients open sessions, but never end one the bridge's own wake word
        # opened), or "none" (only the bridge's own wake word opens sessions).
        vol.Optional("session_control", default="any"): vol.In(("any", "own", "none")),
    }),
    vol.Optional("wake", default={}): vol.Schema({
        vol.Optional("model", default="okay_nabu"): vol.In(WAKE_WORDS),
    }),
    vol.Optional("satellites", default={}): vol.All(dict, _satellite_keys, {str: SATELLITE_SCHEMA}),
    vol.Optional("arbitration", default={}): vol.Schema({
        # Seconds after the first of competing satellites' wakes in which the others' join; the
        # best-heard one then answers. The winner's answer comes at most this much later.
        vol.Optional("window", default=0.08): vol.All(vol.Coerce(float), vol.Range(min=0.0, max=0.15)),
        # A competitor's wake this long after the first one of a decided group is the same
        # utterance heard late: it loses at once.
        vol.Optional("late", default=1.0): vol.All(vol.Coerce(float), vol.Range(min=0.0, max=5.0)),
    }),
    vol.Optional("endpoint", default={}): ENDPOINT_SCHEMA,
    vol.Optional("stt", default={}): STT_SCHEMA,
    vol.Optional("tts", default={}): TTS_SCHEMA,
    vol.Optional("vocabulary", default=None): vol.Any(None, str, dict),
    vol.Optional("limits", default={}): LIMITS_SCHEMA,
    vol.Optional("recognition", default={}): vol.Schema({
        # Unlocking, opening a garage door or gate, alarm panels: acted on only when the
        # recognizer is at least this sure (0-1); otherwise the bridge says it did not understand.
        vol.Optional("sensitive_confidence", default=0.6): vol.All(vol.Coerce(float), vol.Range(min=0.0, max=1.0)),
        # Actions on devices none of which was named (a whole area, floor or the home; "light
        # up", "turn off the lights"): chatter bent into a command mostly lands there.
        vol.Optional("broad_confidence", default=0.55): vol.All(vol.Coerce(float), vol.Range(min=0.0, max=1.0)),
    }),
    vol.Optional("status_api", default={}): vol.Schema({
        vol.Optional("enabled", default=True): bool,
        vol.Optional("host", default="127.0.0.1"): str,
        vol.Optional("port", default=8765): _port,
        vol.Optional("ingress_source", default=None): vol.Any(None, _ip_address),
        vol.Optional("link", default=None): vol.Any(None, _link),
    }),
    vol.Optional("wyoming_server", default={}): vol.Schema({
        vol.Optional("enabled", default=False): bool,
        vol.Optional("host", default="127.0.0.1"): str,
        vol.Optional("port", default=10700): _port,
    }),
})


def _describe(err: vol.Invalid) -> str:
    key = ".".join(str(p) for p in err.path) or "(top level)"
    msg = err.msg
    if msg == "extra keys not allowed":
        return f"{key}: unknown key"
    return f"{key}: {msg}"


def validate(raw: object) -> Settings:
    """Validates a config mapping into typed settings; raises ConfigError with one clear line."""
    return Settings.from_validated(_validated_mapping(raw))


def _validated_mapping(raw: object) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("config: expected a mapping at the top level")
    try:
        config: dict[str, Any] = CONFIG_SCHEMA(raw)
    except vol.MultipleInvalid as err:
        raise ConfigError(_describe(err.errors[0])) from None
    except vol.Invalid as err:
        raise ConfigError(_describe(err)) from None
    _check_tls_files(config["mqtt"]["tls"])
    if config["stt"]["engine"] == "wyoming" and not config["stt"].get("host"):
        raise ConfigError("stt.host: required when stt.engine is wyoming")
    if config["tts"]["engine"] == "wyoming" and not config["tts"].get("host"):
        raise ConfigError("tts.host: required when tts.engine is wyoming")
    if config["bridge_id"] is None:
        host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40] or "bridge"
        config["bridge_id"] = f"hearth-{host}"
    if config["data_dir"] is None:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        config["data_dir"] = str(Path(base) / "hearth")
    return config


def _check_tls_files(tls: dict[str, Any]) -> None:
    """With TLS on, each file named must be a readable file; the error names the key and why."""
    if not tls["enabled"]:
        return
    for key, what in TLS_FILES.items():
        path = tls.get(key)
        if path and not os.path.isfile(path):
            raise ConfigError(f"mqtt.tls.{key}: {path} is not a file (the {what}, read because "
                              "mqtt.tls.enabled is true)")


def _set_path(raw: dict[str, Any], dotted: str, value: object) -> None:
    node = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{dotted}: cannot set inside a non-mapping value")
        node = nxt
    node[parts[-1]] = value


def load(path: str | Path | None, overrides: Mapping[str, object] | None = None) -> Settings:
    """Reads the YAML file (if any), applies dotted-key overrides, validates."""
    raw: Any = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"config file {path}: {err.strerror}") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"config file {path}{where}: not valid YAML") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path}: expected a mapping at the top level")
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_path(raw, dotted, value)
    return validate(raw)


def parse_set_option(item: str) -> tuple[str, object]:
    """`--set key.path=value`: the value is parsed as YAML (numbers, booleans, lists)."""
    if "=" not in item:
        raise ConfigError(f"--set {item}: expected key.path=value")
    key, _, value = item.partition("=")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        return key.strip(), value
