"""The bridge's configuration as frozen, typed settings.

`bridge.config` validates the YAML file and the command line with voluptuous (and owns the
defaults and the error messages); :func:`Settings.from_validated` turns the validated mapping into
these objects once, at start-up. Everything after that reads attributes, never string keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from .pipeline.endpoint import EndpointSettings

if TYPE_CHECKING:
    from .recognition.verdict import VerdictSettings

type LogLevel = Literal["debug", "info", "warning", "error"]
type SessionControl = Literal["any", "own", "none"]


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS towards the broker."""

    enabled: bool = False
    ca_file: str | None = None  #: CA bundle that signs the broker's certificate
    cert_file: str | None = None  #: client certificate, when the broker asks for one
    key_file: str | None = None  #: the client certificate's key
    insecure: bool = False  #: skip the host name and chain checks (tests, self-signed brokers)


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Where the broker is and how the bridge logs in."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: TlsSettings = field(default_factory=TlsSettings)
    prefix: str = "hearth"  #: every Hearth topic starts with it
    client_id: str | None = None  #: None: the bridge id plus a random suffix
    keepalive: int = 30  #: seconds
    reconnect_max: float = 30.0  #: longest pause between reconnection attempts, seconds


@dataclass(frozen=True, slots=True)
class HermesSettings:
    """Hermes (Rhasspy 2.5 / ESP32 satellite firmware) compatibility."""

    enabled: bool = True
    sites: frozenset[str] = frozenset()  #: when not empty, only these site ids are served
    #: who may open and end sessions: "any" client, "own" (no client ends a session the bridge's
    #: own wake word opened), "none" (only the bridge's own wake word opens sessions)
    session_control: SessionControl = "any"


@dataclass(frozen=True, slots=True)
class SatelliteConfig:
    """What the owner configured for one satellite (each field optional)."""

    wake_word: str | None = None  #: overrides the bridge's default wake word and the announced one
    play_rate: int | None = None  #: sample rate answers are played at
    name: str | None = None
    area: str | None = None  #: the vocabulary area the satellite stands in
    #: satellites that hear the same room (besides those of the same area): their wakes compete
    neighbours: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ArbitrationSettings:
    """One answer per wake (docs/protocol.md, "Arbitration")."""

    #: seconds after the first wake of competing satellites in which the others' wakes join
    window: float = 0.08
    #: a competitor's wake this long after the first one of a decided group loses at once
    late: float = 1.0


@dataclass(frozen=True, slots=True)
class SttSettings:
    """Speech-to-text: the local recognizer, or a Wyoming server on the LAN."""

    engine: Literal["pocketsphinx", "wyoming"] = "pocketsphinx"
    workers: int = 2  #: decoder worker processes (one utterance each at a time)
    host: str | None = None  #: Wyoming server, when engine is wyoming
    port: int = 10300
    timeout: float = 15.0  #: seconds a Wyoming server may take for one utterance
    fallback: bool = True  #: the local recognizer answers when the Wyoming server cannot


@dataclass(frozen=True, slots=True)
class TtsSettings:
    """Text-to-speech for spoken answers."""

    engine: Literal["espeak", "wyoming", "none"] = "espeak"
    voice: str | None = None
    speed: int | None = None  #: words per minute (espeak-ng)
    host: str | None = None  #: Wyoming/Piper server, when engine is wyoming
    port: int = 10200
    timeout: float = 10.0
    executable: str | None = None  #: espeak-ng binary to run instead of the one on PATH


@dataclass(frozen=True, slots=True)
class LimitsSettings:
    """Bounds that keep one satellite or one message from hurting the others."""

    queue_frames: int = 256  #: audio frames queued per satellite before new ones are dropped
    max_payload: int = 65536  #: bytes, any message but the vocabulary and pipeline answers
    max_vocabulary_payload: int = 4_000_000
    max_satellites: int = 200
    #: characters of text intent matching takes (Hermes NLU queries, transcripts); longer is refused
    max_intent_text: int = 300
    intent_timeout: float = 5.0  #: seconds one intent match may take before its worker is replaced


@dataclass(frozen=True, slots=True)
class RecognitionSettings:
    """How sure the recognizer must be before some actions are taken."""

    sensitive_confidence: float = 0.6  #: unlocking, opening a garage door or gate, alarm panels
    broad_confidence: float = 0.55  #: actions on a whole area, floor or home with no device named

    def verdict(self) -> VerdictSettings:
        """The verdict's settings (bridge.recognition.verdict) these config keys map onto."""
        from .recognition.verdict import VerdictSettings  # the recognizer loads only when used

        return VerdictSettings(sensitive_min=self.sensitive_confidence, broad_min=self.broad_confidence)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """A listening server of the bridge's (the status API, the Wyoming server)."""

    enabled: bool
    host: str
    port: int
    #: The status API only: the address Home Assistant's ingress proxy (Supervisor) connects from.
    #: Its requests carry the browser's Host header, so they skip the Host check; other
    #: addresses than it and loopback are refused. None: no ingress.
    ingress_source: str | None = None
    #: The status API only: the address Home Assistant shows as the bridge's device link, when
    #: the address it listens on is not one a browser reaches (the add-on's ingress page:
    #: ``homeassistant://hassio/ingress/<add-on slug>``). None: the address it listens on.
    link: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the bridge is configured with."""

    bridge_id: str
    data_dir: Path  #: the policy and the audit counters live here
    #: the key commands are signed with (None: the one made in `data_dir`, privacy/auth.py)
    pairing_key: str | None = None
    log_level: LogLevel = "info"
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    hermes: HermesSettings = field(default_factory=HermesSettings)
    wake_model: str = "okay_nabu"  #: the default wake word the bridge listens for
    satellites: Mapping[str, SatelliteConfig] = field(default_factory=lambda: MappingProxyType({}))
    arbitration: ArbitrationSettings = field(default_factory=ArbitrationSettings)
    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    stt: SttSettings = field(default_factory=SttSettings)
    tts: TtsSettings = field(default_factory=TtsSettings)
    #: the home's vocabulary: None (the demo home), a file path, or the vocabulary itself
    vocabulary: str | Mapping[str, Any] | None = None
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    recognition: RecognitionSettings = field(default_factory=RecognitionSettings)
    status_api: ServerSettings = field(default_factory=lambda: ServerSettings(True, "127.0.0.1", 8765))
    wyoming_server: ServerSettings = field(default_factory=lambda: ServerSettings(False, "127.0.0.1", 10700))

    def satellite(self, sat_id: str) -> SatelliteConfig:
        """The owner's settings for one satellite (all defaults when it is not configured)."""
        return self.satellites.get(sat_id) or SatelliteConfig()

    @classmethod
    def from_validated(cls, config: Mapping[str, Any]) -> Settings:
        """Builds the settings from a mapping that `bridge.config`'s schema has validated."""
        mqtt = dict(config["mqtt"])
        tls = TlsSettings(**mqtt.pop("tls"))
        vocabulary = config["vocabulary"]
        return cls(
            bridge_id=config["bridge_id"],
            data_dir=Path(config["data_dir"]),
            pairing_key=config.get("pairing_key"),
            log_level=config["log_level"],
            mqtt=MqttSettings(tls=tls, **mqtt),
            hermes=HermesSettings(enabled=config["hermes"]["enabled"], sites=frozenset(config["hermes"]["sites"]),
                                  session_control=config["hermes"]["session_control"]),
            wake_model=config["wake"]["model"],
            satellites=MappingProxyType({sid: SatelliteConfig(**{**sat, "neighbours": tuple(sat.get("neighbours", ()))})
                                         for sid, sat in config["satellites"].items()}),
            arbitration=ArbitrationSettings(**config["arbitration"]),
            endpoint=EndpointSettings(**config["endpoint"]),
            stt=SttSettings(**config["stt"]),
            tts=TtsSettings(**config["tts"]),
            vocabulary=MappingProxyType(dict(vocabulary)) if isinstance(vocabulary, Mapping) else vocabulary,
            limits=LimitsSettings(**config["limits"]),
            recognition=RecognitionSettings(**config["recognition"]),
            status_api=ServerSettings(**config["status_api"]),
            wyoming_server=ServerSettings(**config["wyoming_server"]),
        )
