"""What the bridge tells Home Assistant, parsed from MQTT payloads (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import time
from typing import Any


def parse_json(payload: str | bytes | bytearray) -> dict[str, Any] | None:
    """Return a JSON object payload, or None for anything else (including empty)."""
    if not payload:
        return None
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _int(value: Any) -> int:
    """Return a non-negative int counter, 0 for anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return max(int(value), 0)


def _protocol(value: Any) -> int | None:
    """Return an advertised protocol version (an integer, not a boolean), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(slots=True)
class BridgeStatus:
    """The retained `<prefix>/bridge/status`."""

    online: bool = False
    bridge_id: str | None = None
    version: str | None = None
    protocol: int | None = None
    engines: dict[str, Any] = field(default_factory=dict)
    status_api: str | None = None
    key_id: str | None = None
    """The public id of the bridge's pairing key (pairing.py): checks a pasted key."""

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> BridgeStatus:
        """Parse a status payload."""
        engines = data.get("engines")
        return cls(
            online=data.get("state") == "online",
            bridge_id=str(data["bridge_id"]) if data.get("bridge_id") else None,
            version=str(data["version"]) if data.get("version") else None,
            protocol=_protocol(data.get("protocol")),
            engines=engines if isinstance(engines, dict) else {},
            status_api=data.get("status_api")
            if isinstance(data.get("status_api"), str)
            else None,
            key_id=data.get("key_id") if isinstance(data.get("key_id"), str) else None,
        )


@dataclass(slots=True)
class Policy:
    """The confirmed retained `<prefix>/bridge/policy/state`.

    `epoch` names the life of the bridge's policy (a new one when the bridge had to start from
    its defaults); None from a bridge that does not send one.
    """

    local_only: bool = False
    privacy_mode: bool = False
    retention: str = "none"
    publish_transcripts: bool = True
    microphones: dict[str, dict[str, Any]] = field(default_factory=dict)
    revision: int = 0
    epoch: str | None = None

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Policy:
        """Parse a policy payload."""
        mics = data.get("microphones")
        epoch = data.get("epoch")
        return cls(
            local_only=bool(data.get("local_only", False)),
            privacy_mode=bool(data.get("privacy_mode", False)),
            retention=str(data.get("retention", "none")),
            publish_transcripts=bool(data.get("publish_transcripts", True)),
            microphones={
                str(sat): dict(value)
                for sat, value in (mics.items() if isinstance(mics, dict) else ())
                if isinstance(value, dict)
            },
            revision=_int(data.get("revision")),
            epoch=epoch if isinstance(epoch, str) and epoch else None,
        )

    def to_payload(self) -> dict[str, Any]:
        """Return the payload form (what `from_payload` reads; how Home Assistant stores it)."""
        return {
            "local_only": self.local_only,
            "privacy_mode": self.privacy_mode,
            "retention": self.retention,
            "publish_transcripts": self.publish_transcripts,
            "microphones": {sat: dict(mic) for sat, mic in self.microphones.items()},
            "revision": self.revision,
            "epoch": self.epoch,
        }

    def muted(self, satellite: str) -> bool | None:
        """Return whether the policy mutes a satellite's microphone, None if it does not say."""
        mic = self.microphones.get(satellite)
        if mic is None or "muted" not in mic:
            return None
        return bool(mic["muted"])

    def mutes_until(self, now: float) -> dict[str, float | None]:
        """Return the microphones muted at `now`: satellite → end of the mute (None: unmuted by hand).

        A mute whose `until` is not a number counts as until unmuted (fail closed).
        """
        mutes: dict[str, float | None] = {}
        for satellite, mic in self.microphones.items():
            if not mic.get("muted"):
                continue
            until = mic.get("until")
            if isinstance(until, bool) or not isinstance(until, (int, float)):
                mutes[satellite] = None
            elif until > now:
                mutes[satellite] = float(until)
        return mutes

    def silences(self, satellite: str, now: float) -> bool:
        """Whether this policy keeps a satellite from being heard at `now` (privacy mode, mute)."""
        return self.privacy_mode or satellite in self.mutes_until(now)


@dataclass(slots=True)
class Audit:
    """The retained `<prefix>/bridge/audit` counters."""

    counters: dict[str, int] = field(default_factory=dict)
    recent: list[Any] = field(default_factory=list)

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Audit:
        """Parse an audit payload."""
        counters = data.get("counters")
        recent = data.get("recent")
        return cls(
            counters={
                str(key): _int(value)
                for key, value in (
                    counters.items() if isinstance(counters, dict) else ()
                )
            },
            recent=list(recent) if isinstance(recent, list) else [],
        )


@dataclass(slots=True)
class Utterance:
    """The last transcript of a satellite, as far as Home Assistant may show it."""

    text: str | None
    private: bool
    engine: str | None
    locality: str | None
    session_id: str | None
    agent_id: str | None = None


@dataclass(slots=True)
class Satellite:
    """One satellite, from `<prefix>/satellite/<sat>/status` and `.../state`."""

    satellite_id: str
    name: str | None = None
    area: str | None = None
    status_online: bool | None = None
    state: str | None = None
    muted: bool = False
    protocol: str | None = None
    state_online: bool | None = None
    capabilities: dict[str, Any] = field(default_factory=dict)
    last_utterance: Utterance | None = None
    conversation_id: str | None = None
    conversation_at: float = 0.0
    wake_word: str | None = None
    extra_system_prompt: str | None = None
    """Context for the agent's next turn (set by an Assist start_conversation)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The settings the bridge has in force for the satellite (wake word, sensitivity)."""

    @property
    def online(self) -> bool:
        """Whether the satellite is connected.

        The satellite's own retained status (with its last will) decides; a Hermes satellite
        never publishes one, so then the bridge's view in `state` decides.
        """
        if self.status_online is not None:
            return self.status_online
        return bool(self.state_online)

    @property
    def display_name(self) -> str:
        """The name to give the satellite's device."""
        return self.name or self.satellite_id

    def update_status(self, data: dict[str, Any]) -> None:
        """Apply a status payload."""
        self.status_online = data.get("state") == "online"
        if isinstance(data.get("name"), str) and data["name"]:
            self.name = data["name"]
        if isinstance(data.get("area"), str) and data["area"]:
            self.area = data["area"]
        if isinstance(data.get("capabilities"), dict):
            self.capabilities = data["capabilities"]
        if isinstance(data.get("wake_word"), str) and data["wake_word"]:
            self.wake_word = data["wake_word"]

    def continue_conversation(
        self, conversation_id: str | None, extra_system_prompt: str | None
    ) -> None:
        """Make the next voice command continue a conversation Home Assistant started."""
        self.conversation_id = conversation_id
        self.conversation_at = time.monotonic()
        self.extra_system_prompt = extra_system_prompt

    def update_state(self, data: dict[str, Any]) -> None:
        """Apply a bridge state payload."""
        state = data.get("state")
        self.state = state if isinstance(state, str) else None
        self.muted = bool(data.get("muted", False))
        self.protocol = (
            data.get("protocol") if isinstance(data.get("protocol"), str) else None
        )
        if "online" in data:
            self.state_online = bool(data["online"])
        if isinstance(data.get("settings"), dict):
            self.settings = dict(data["settings"])
