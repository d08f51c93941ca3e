"""The broker configuration in docs/mosquitto/ enforces who may publish and read what.

A real Mosquitto runs with docs/mosquitto/mosquitto.conf (only its listener replaced by a
loopback one and the password file pointed at a temporary one made by make-passwd.sh, which
uses `mosquitto_passwd -b`) and the exact docs/mosquitto/acl file.

"Never delivered" is proven with a sentinel: after the forbidden publish the same client
publishes an allowed message at QoS 1; Mosquitto handles one client's messages in order, so
once the sentinel arrives the forbidden message would have arrived before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest

from tests.support.broker import Mosquitto

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "docs" / "mosquitto" / "mosquitto.conf"
ACL = REPO / "docs" / "mosquitto" / "acl"
MAKE_PASSWD = REPO / "docs" / "mosquitto" / "make-passwd.sh"
USERS = ("hearth-bridge", "homeassistant", "kitchen", "bedroom")

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd not installed"
)

_ids = itertools.count()


def broker_config(passwd: Path, acl: Path = ACL) -> str:
    """docs/mosquitto/mosquitto.conf with the listener and the file paths made local."""
    lines = []
    for line in CONF.read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "listener":
            continue  # the test harness adds `listener <free port> 127.0.0.1`
        if words[0] == "password_file":
            line = f"password_file {passwd}"
        elif words[0] == "acl_file":
            line = f"acl_file {acl}"
        lines.append(line)
    body = "\n".join(lines) + "\n"
    assert "allow_anonymous false" in body
    return body


@pytest.fixture(scope="module")
def secured() -> Iterator[tuple[Mosquitto, dict[str, str]]]:
    # Mosquitto started as root drops to user "mosquitto" before reading the password file,
    # so (as docs/mosquitto/mosquitto.conf says) the files must belong to that user.
    tmp = Path(tempfile.mkdtemp(prefix="hearth-acl-"))
    passwd = tmp / "passwd"
    out = subprocess.run(
        ["sh", str(MAKE_PASSWD), str(passwd), *USERS],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    passwords = dict(line.split(" ", 1) for line in out.splitlines())
    assert set(passwords) == set(USERS)
    assert oct(passwd.stat().st_mode & 0o777) == "0o600"
    # The exact shipped ACL, copied beside the password file: the checkout itself may not be
    # readable by the `mosquitto` user (e.g. a clone in a 0700 folder).
    acl = tmp / "acl"
    shutil.copyfile(ACL, acl)
    if os.geteuid() == 0:
        with contextlib.suppress(KeyError):
            owner = pwd.getpwnam("mosquitto")
            for path in (tmp, passwd, acl):
                os.chown(path, owner.pw_uid, owner.pw_gid)
    broker = Mosquitto(extra_config=broker_config(passwd, acl), workdir=tmp).start()
    try:
        yield broker, passwords
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


Secured = tuple[Mosquitto, dict[str, str]]


def client(secured: Secured, user: str | None, password: str | None = None) -> aiomqtt.Client:
    broker, passwords = secured
    if user is not None and password is None:
        password = passwords[user]
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=user,
        password=password,
        identifier=f"acl-test-{user}-{next(_ids)}",
        timeout=5,
    )


class Recorder:
    """Collects every message one user receives on one filter."""

    def __init__(self, mqtt: aiomqtt.Client) -> None:
        self.mqtt = mqtt
        self.got: list[tuple[str, bytes]] = []
        self._new = asyncio.Event()

    async def run(self) -> None:
        async for message in self.mqtt.messages:
            raw = message.payload
            payload = raw if isinstance(raw, bytes) else str(raw).encode()
            self.got.append((message.topic.value, payload))
            self._new.set()

    async def wait_for(self, topic: str, payload: bytes, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while (topic, payload) not in self.got:
                self._new.clear()
                await self._new.wait()

    def topics(self) -> list[str]:
        return [t for t, _ in self.got]


@contextlib.asynccontextmanager
async def recording(
    secured: tuple[Mosquitto, dict[str, str]], user: str, topic_filter: str
) -> AsyncIterator[Recorder]:
    async with client(secured, user) as mqtt:
        await mqtt.subscribe(topic_filter, qos=1)
        recorder = Recorder(mqtt)
        task = asyncio.create_task(recorder.run())
        try:
            yield recorder
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def test_satellite_cannot_publish_policy_set(secured: Secured) -> None:
    async with recording(secured, "hearth-bridge", "hearth/#") as bridge:
        async with client(secured, "kitchen") as kitchen:
            await kitchen.publish("hearth/bridge/policy/set", b'{"local_only": false}', qos=1)
            await kitchen.publish("hearth/bridge/history/purge", b'{"request_id": "x"}', qos=1)
            await kitchen.publish("hearth/satellite/kitchen/status", b"sentinel-1", qos=1)
            await bridge.wait_for("hearth/satellite/kitchen/status", b"sentinel-1")
    assert "hearth/bridge/policy/set" not in bridge.topics()
    assert "hearth/bridge/history/purge" not in bridge.topics()


async def test_satellite_cannot_publish_another_satellites_audio_but_can_its_own(
    secured: tuple[Mosquitto, dict[str, str]],
) -> None:
    async with recording(secured, "hearth-bridge", "hearth/#") as bridge:
        async with client(secured, "kitchen") as kitchen:
            await kitchen.publish("hearth/satellite/bedroom/audio", b"spoofed", qos=1)
            await kitchen.publish("hearth/satellite/bedroom/status", b"spoofed", qos=1)
            await kitchen.publish("hearth/satellite/kitchen/audio", b"own-audio", qos=1)
            await bridge.wait_for("hearth/satellite/kitchen/audio", b"own-audio")
            await kitchen.publish("hearth/satellite/kitchen/event", b"own-event", qos=1)
            await bridge.wait_for("hearth/satellite/kitchen/event", b"own-event")
    assert not [t for t in bridge.topics() if t.startswith("hearth/satellite/bedroom/")]


async def test_satellite_cannot_publish_bridge_or_hermes_topics(
    secured: tuple[Mosquitto, dict[str, str]],
) -> None:
    forbidden = [
        "hearth/satellite/kitchen/command",
        "hearth/satellite/bedroom/play",
        "hearth/satellite/kitchen/transcript",
        "hearth/satellite/kitchen/ask",
        "hearth/satellite/kitchen/answer",
        "hearth/bridge/policy/state",
        "hermes/hotword/okay_nabu/detected",
        "hermes/audioServer/bedroom/audioFrame",
    ]
    async with recording(secured, "hearth-bridge", "#") as bridge:
        async with client(secured, "kitchen") as kitchen:
            for topic in forbidden:
                await kitchen.publish(topic, b"forbidden", qos=1)
            await kitchen.publish("hearth/satellite/kitchen/status", b"sentinel-3", qos=1)
            await bridge.wait_for("hearth/satellite/kitchen/status", b"sentinel-3")
    assert not set(forbidden) & set(bridge.topics())


async def test_satellite_reads_only_its_own_command_play_and_state(
    secured: tuple[Mosquitto, dict[str, str]],
) -> None:
    async with recording(secured, "kitchen", "#") as kitchen:
        async with client(secured, "hearth-bridge") as bridge:
            await bridge.publish("hearth/satellite/bedroom/command", b"other", qos=1)
            await bridge.publish("hearth/satellite/bedroom/play", b"other", qos=1)
            await bridge.publish("hearth/bridge/policy/state", b"other", qos=1)
            await bridge.publish("hearth/satellite/kitchen/transcript", b"other", qos=1)
            await bridge.publish("hearth/satellite/kitchen/play", b"mine", qos=1)
            await bridge.publish("hearth/satellite/kitchen/command", b"mine", qos=1)
            await kitchen.wait_for("hearth/satellite/kitchen/command", b"mine")
    assert kitchen.topics() == ["hearth/satellite/kitchen/play", "hearth/satellite/kitchen/command"]


async def test_home_assistant_can_publish_policy_set_and_commands(
    secured: tuple[Mosquitto, dict[str, str]],
) -> None:
    allowed = [
        "hearth/bridge/policy/set",
        "hearth/bridge/vocabulary/set",
        "hearth/bridge/history/purge",
        "hearth/satellite/kitchen/response",
        "hearth/satellite/kitchen/announce",
        "hearth/satellite/kitchen/pipeline/set",
        "hearth/satellite/kitchen/pipeline/play",
        "hearth/satellite/kitchen/settings/set",
        "hearth/satellite/kitchen/ask",
    ]
    async with recording(secured, "hearth-bridge", "hearth/#") as bridge:
        async with client(secured, "homeassistant") as ha:
            for topic in allowed:
                await ha.publish(topic, b'{"request_id": "ha"}', qos=1)
            for topic in allowed:
                await bridge.wait_for(topic, b'{"request_id": "ha"}')


async def test_home_assistant_cannot_forge_bridge_state_or_satellite_audio(
    secured: tuple[Mosquitto, dict[str, str]],
) -> None:
    forbidden = [
        "hearth/bridge/policy/state",
        "hearth/bridge/status",
        "hearth/satellite/kitchen/audio",
        "hearth/satellite/kitchen/command",
        "hearth/satellite/kitchen/settings/result",
    ]
    async with recording(secured, "hearth-bridge", "hearth/#") as bridge:
        async with client(secured, "homeassistant") as ha:
            for topic in forbidden:
                await ha.publish(topic, b"forged", qos=1)
            await ha.publish("hearth/bridge/policy/set", b"sentinel-6", qos=1)
            await bridge.wait_for("hearth/bridge/policy/set", b"sentinel-6")
    assert not set(forbidden) & set(bridge.topics())


async def test_home_assistant_reads_what_the_bridge_publishes(
    secured: tuple[Mosquitto, dict[str, str]],
) -> None:
    async with recording(secured, "homeassistant", "hearth/#") as ha:
        async with client(secured, "hearth-bridge") as bridge:
            await bridge.publish("hearth/bridge/policy/state", b'{"revision": 1}', qos=1)
            await bridge.publish("hearth/satellite/kitchen/transcript", b"{}", qos=1)
            await ha.wait_for("hearth/bridge/policy/state", b'{"revision": 1}')
            await ha.wait_for("hearth/satellite/kitchen/transcript", b"{}")


@pytest.mark.parametrize(
    ("user", "password"),
    [(None, None), ("kitchen", "wrong-password"), ("stranger", "whatever")],
    ids=["anonymous", "wrong-password", "unknown-user"],
)
async def test_unauthenticated_clients_are_refused(
    secured: tuple[Mosquitto, dict[str, str]], user: str | None, password: str | None
) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with client(secured, user, password) as mqtt:
            await mqtt.publish("hearth/bridge/policy/set", b"{}", qos=1)
