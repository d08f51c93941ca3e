"""Plays the bridge's side of docs/protocol.md over MQTT, for the integration's tests.

The logic is transport-free; `HassBridge` speaks through Home Assistant's (mocked) MQTT client,
`BrokerBridge` through its own aiomqtt connection to a real Mosquitto.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import contextlib
import copy
import json
from typing import Any
import uuid

import hmac

import aiomqtt

from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant, callback

from pytest_homeassistant_custom_component.common import async_fire_mqtt_message

from bridge.privacy import auth

BRIDGE_ID = "test-bridge"
#: The pairing key the fake bridge holds and the test config entries carry (64 hex digits).
PAIRING_KEY = "5e" * 32
SIGNED_LEAVES = ("/bridge/policy/set", "/bridge/history/purge", "/settings/set")


def verify(key: str, topic: str, raw: str | bytes, last_seq: int) -> tuple[bytes, int] | str:
    """As the bridge (bridge/privacy/auth.py): (body, seq) of a command signed with `key` for
    `topic` with a seq after `last_seq`, else why not."""
    data = raw.encode() if isinstance(raw, str) else bytes(raw)
    header, newline, body = data.partition(b"\n")
    parts = header.split(b" ")
    if not newline or len(parts) != 4 or parts[0] != b"hearth-auth1":
        return "unsigned"
    secret = bytes.fromhex(key)
    if parts[1].decode() != auth.key_id(secret):
        return "unknown_key"
    seq = int(parts[2])
    if not hmac.compare_digest(parts[3].decode(), auth.mac(secret, topic, parts[1].decode(), seq, body)):
        return "bad_mac"
    if seq <= last_seq:
        return "replayed"
    return body, seq


class FakeBridge:
    """A bridge that answers policy commands and purges; records what Home Assistant sent."""

    def __init__(self, prefix: str = "hearth", bridge_id: str = BRIDGE_ID) -> None:
        self.prefix = prefix
        self.bridge_id = bridge_id
        self.policy: dict[str, Any] = {
            "local_only": False,
            "privacy_mode": False,
            "retention": "none",
            "publish_transcripts": True,
            "microphones": {},
            "revision": 1,
            "epoch": "fake0epoch000001",
        }
        self.answer = True
        """False: ignore commands (Home Assistant must time out)."""
        self.refuse: str | None = None
        """An error to answer with (`ok: false`)."""
        self.received: list[tuple[str, Any]] = []
        self.purges = 0
        self.settings: dict[str, dict[str, Any]] = {}
        """Per-satellite settings in force (`settings/set`), shown in the satellite's state."""
        self.publish: Callable[[str, str, bool], Awaitable[None]]
        self.key = PAIRING_KEY
        """The pairing key the bridge holds (change it to re-pair)."""
        self.last_seq = 0
        self.refused: list[tuple[str, str]] = []
        """(topic, reason) of every command refused as unauthenticated."""

    def topic(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    # -- what Home Assistant sends

    @property
    def listen_topics(self) -> list[str]:
        return [
            self.topic("bridge", "policy", "set"),
            self.topic("bridge", "history", "purge"),
            self.topic("bridge", "vocabulary", "set"),
            self.topic("satellite", "+", "response"),
            self.topic("satellite", "+", "announce"),
            self.topic("satellite", "+", "pipeline", "set"),
            self.topic("satellite", "+", "settings", "set"),
        ]

    @property
    def binary_topics(self) -> list[str]:
        return [self.topic("satellite", "+", "pipeline", "play")]

    def messages(self, suffix: str) -> list[Any]:
        """Payloads Home Assistant sent on topics ending with `suffix`."""
        return [payload for topic, payload in self.received if topic.endswith(suffix)]

    async def handle(self, topic: str, raw: str | bytes) -> None:
        if topic.endswith("/pipeline/play"):
            # A WAV to play: speak (responding), then idle, as the bridge does.
            self.received.append((topic, bytes(raw) if isinstance(raw, (bytes, bytearray)) else raw))
            if self.answer:
                await self.satellite_state(topic.split("/")[-3], "responding")
                await self.satellite_state(topic.split("/")[-3], "idle")
            return
        if topic.endswith(SIGNED_LEAVES):
            checked = verify(self.key, topic, raw, self.last_seq)
            if isinstance(checked, str):
                await self._refuse(topic, raw, checked)
                return
            raw, self.last_seq = checked
        payload = json.loads(raw) if raw else None
        self.received.append((topic, payload))
        if topic.endswith("/policy/set"):
            await self._policy_set(payload)
        elif topic.endswith("/history/purge"):
            await self._purge(payload)
        elif topic.endswith("/announce"):
            await self._announce(topic.split("/")[-2], payload)
        elif topic.endswith("/settings/set"):
            await self._settings_set(topic.split("/")[-3], payload)

    async def _refuse(self, topic: str, raw: str | bytes, reason: str) -> None:
        """As the bridge: not applied, reported on `bridge/error`, answered `unauthenticated`."""
        self.refused.append((topic, reason))
        body = (raw.encode() if isinstance(raw, str) else bytes(raw)).partition(b"\n")
        request_id = json.loads(body[2] or body[0]).get("request_id")
        message = f"{reason}: the command is not signed with the pairing key"
        await self.send("bridge/error", {"code": "unauthenticated", "message": message, "topic": topic})
        result = "bridge/policy/result" if "/bridge/" in topic else topic.removeprefix(f"{self.prefix}/")[:-4] + "/result"
        await self.send(result, {"request_id": request_id, "ok": False, "code": "unauthenticated", "error": message})

    async def _settings_set(self, satellite: str, command: dict[str, Any]) -> None:
        """As the bridge: refuse an unknown wake word or sensitivity, else apply and confirm."""
        if not self.answer:
            return
        settings = self.settings.setdefault(
            satellite, {"wake_word": None, "sensitivity": "default"}
        )
        code = None
        if "wake_word" in command and command["wake_word"] not in (
            "okay_nabu", "hey_jarvis", "hey_mycroft", "alexa",
        ):
            code = "unknown_wake_word"
        elif command.get("sensitivity", "default") not in ("relaxed", "default", "aggressive"):
            code = "bad_sensitivity"
        else:
            settings.update({k: v for k, v in command.items() if k != "request_id"})
            await self.satellite_state(satellite, "idle")
        await self.send(
            f"satellite/{satellite}/settings/result",
            {
                "request_id": command["request_id"],
                "ok": code is None,
                "code": code,
                "error": code and f"refused: {code}",
                "settings": dict(settings),
            },
        )

    async def _policy_set(self, command: dict[str, Any]) -> None:
        if not self.answer:
            return
        if self.refuse:
            await self.send(
                "bridge/policy/result",
                {"request_id": command["request_id"], "ok": False, "error": self.refuse},
            )
            return
        for key in ("local_only", "privacy_mode", "retention", "publish_transcripts"):
            if key in command:
                self.policy[key] = command[key]
        for satellite, mic in command.get("microphones", {}).items():
            if not mic["muted"]:  # as the bridge does: an unmute removes the entry
                self.policy["microphones"].pop(satellite, None)
                continue
            entry = {"muted": True, "until": None}
            if "duration" in mic:
                entry["until"] = 1764100000.0 + mic["duration"]
            self.policy["microphones"][satellite] = entry
        self.policy["revision"] += 1
        # The retained state first, then the answer (as the bridge does).
        await self.send("bridge/policy/state", self.policy, retain=True)
        await self.send(
            "bridge/policy/result",
            {"request_id": command["request_id"], "ok": True, "error": None, "policy": None},
        )

    async def _announce(self, satellite: str, command: dict[str, Any]) -> None:
        """Speak (responding), then idle, or listen when a conversation was started."""
        if not self.answer:
            return
        await self.satellite_state(satellite, "responding")
        await self.satellite_state(
            satellite, "listening" if command.get("start_conversation") else "idle"
        )

    async def _purge(self, command: dict[str, Any]) -> None:
        if not self.answer:
            return
        self.purges += 1
        await self.send(
            "bridge/policy/result",
            {
                "request_id": command["request_id"],
                "ok": self.refuse is None,
                "error": self.refuse,
                "policy": None,
            },
        )

    # -- what the bridge publishes

    async def send(self, subtopic: str, payload: Any, retain: bool = False) -> None:
        raw = payload if isinstance(payload, str) else json.dumps(payload)
        await self.publish(self.topic(*subtopic.split("/")), raw, retain)

    def status_payload(self, online: bool = True) -> dict[str, Any]:
        if not online:
            return {"state": "offline", "protocol": 1, "bridge_id": self.bridge_id}
        return {
            "state": "online",
            "protocol": 1,
            "version": "0.1.0",
            "bridge_id": self.bridge_id,
            "engines": {"stt": {"name": "pocketsphinx", "locality": "in_process"}},
            "status_api": "http://127.0.0.1:10500/status",
            "key_id": auth.key_id(bytes.fromhex(self.key)),
        }

    async def announce(self, audit: dict[str, Any] | None = None) -> None:
        """Go online and publish the retained policy and audit."""
        await self.send("bridge/status", self.status_payload(), retain=True)
        await self.send("bridge/policy/state", self.policy, retain=True)
        await self.send(
            "bridge/audit",
            audit or {"counters": {"blocked_cloud_requests": 2, "bytes_off_lan": 0}, "recent": []},
            retain=True,
        )

    def lose_policy(self) -> None:
        """The bridge lost its policy file: the defaults at revision 0 under a new epoch (publish
        them with `announce`, as a restarted bridge does)."""
        self.policy = {
            "local_only": True,
            "privacy_mode": False,
            "retention": "none",
            "publish_transcripts": True,
            "microphones": {},
            "revision": 0,
            "epoch": uuid.uuid4().hex[:16],
        }

    async def go_offline(self) -> None:
        await self.send("bridge/status", self.status_payload(online=False), retain=True)

    async def satellite(
        self, satellite: str, name: str | None = "Kitchen", state: str = "idle", online: bool = True
    ) -> None:
        """A satellite announces itself and the bridge publishes its state."""
        status: dict[str, Any] = {"state": "online" if online else "offline", "protocol": 1}
        if name:
            status.update({"name": name, "area": "kitchen", "capabilities": {"mute": True}})
        await self.send(f"satellite/{satellite}/status", status, retain=True)
        await self.satellite_state(satellite, state)

    async def satellite_state(self, satellite: str, state: str, muted: bool = False) -> None:
        await self.send(
            f"satellite/{satellite}/state",
            {
                "state": state,
                "session_id": "s1",
                "muted": muted,
                "protocol": "hearth",
                "online": True,
                "settings": self.settings.get(
                    satellite, {"wake_word": None, "sensitivity": "default"}
                ),
            },
            retain=True,
        )

    async def transcript(
        self, satellite: str, text: str, private: bool = False, rejected: bool = False,
        session_id: str = "s1",
    ) -> None:
        payload = {
            "session_id": session_id,
            "satellite": satellite,
            "text": text,
            "confidence": 0.9,
            "audio_seconds": 1.5,
            "latency_ms": 120,
            "engine": "pocketsphinx",
            "locality": "in_process",
            "private": private,
        }
        if rejected:
            payload["rejected"] = True
        await self.send(f"satellite/{satellite}/transcript", payload)


class HassBridge(FakeBridge):
    """Talks through Home Assistant's MQTT integration (used with the `mqtt_mock` fixture)."""

    def __init__(self, hass: HomeAssistant, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hass = hass

        async def publish(topic: str, payload: str, retain: bool) -> None:
            # Delivered live, as a broker delivers to existing subscribers (retain flag off).
            async_fire_mqtt_message(hass, topic, payload)

        self.publish = publish

    async def start(self) -> None:
        for topic in self.listen_topics:

            @callback
            def received(msg: mqtt.ReceiveMessage) -> None:
                self.hass.async_create_task(self.handle(msg.topic, msg.payload))

            await mqtt.async_subscribe(self.hass, topic, received)
        for topic in self.binary_topics:

            @callback
            def received_bytes(msg: mqtt.ReceiveMessage) -> None:
                self.hass.async_create_task(self.handle(msg.topic, msg.payload))

            await mqtt.async_subscribe(self.hass, topic, received_bytes, encoding=None)


class BrokerBridge(FakeBridge):
    """Talks to a real broker through its own client, like the real bridge process."""

    def __init__(self, port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.port = port
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stack = contextlib.AsyncExitStack()

        async def publish(topic: str, payload: str, retain: bool) -> None:
            assert self._client is not None
            await self._client.publish(topic, payload, qos=1, retain=retain)

        self.publish = publish

    async def start(self) -> None:
        self._client = await self._stack.enter_async_context(
            aiomqtt.Client("127.0.0.1", self.port, identifier="fake-bridge")
        )
        for topic in [*self.listen_topics, *self.binary_topics]:
            await self._client.subscribe(topic, qos=1)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        assert self._client is not None
        async for message in self._client.messages:
            await self.handle(str(message.topic), message.payload)  # type: ignore[arg-type]

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._stack.aclose()
