"""The add-on path: docs/mosquitto/addon/ on a Mosquitto configured like the Mosquitto add-on.

Home Assistant OS users cannot edit /etc/mosquitto; the Mosquitto add-on reads extra
configuration from its `customize` folder (/share/mosquitto, `include_dir`, loaded last) instead.
A real Mosquitto runs with that shape: logins from a password file (the add-on's `homeassistant`
and `addons` logins and two satellites; the add-on's own authentication plugin cannot run here)
and `include_dir` of a folder holding exactly docs/mosquitto/addon/acl.conf (its /share/mosquitto
path pointed at the test's folder) and hearth-acl.

The bridge logs in as `addons`, the login Supervisor hands the Hearth add-on. "Never delivered"
is proven with a sentinel, as in test_acl.py.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bridge.test_acl import Secured, client, recording
from tests.support.broker import Mosquitto

ADDON = Path(__file__).resolve().parents[2] / "docs" / "mosquitto" / "addon"

pytestmark = pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd not installed")


@pytest.fixture(scope="module")
def addon_broker() -> Iterator[Secured]:
    passwords = {user: uuid.uuid4().hex for user in ("homeassistant", "addons", "kitchen", "bedroom")}
    broker = Mosquitto(users=passwords)
    share = broker.workdir / "share" / "mosquitto"
    share.mkdir(parents=True)
    conf = (ADDON / "acl.conf").read_text()
    assert "acl_file /share/mosquitto/hearth-acl" in conf
    (share / "acl.conf").write_text(conf.replace("/share/mosquitto/", f"{share}/"))
    shutil.copyfile(ADDON / "hearth-acl", share / "hearth-acl")
    if os.geteuid() == 0:  # Mosquitto started as root reads the ACL file as user `mosquitto`
        with contextlib.suppress(KeyError):
            owner = pwd.getpwnam("mosquitto")
            os.chown(share / "hearth-acl", owner.pw_uid, owner.pw_gid)
    broker.extra_config = f"include_dir {share}\n"  # what `customize: {active: true}` adds
    broker.start()
    try:
        yield broker, passwords
    finally:
        broker.close()


async def test_a_satellite_login_publishes_its_own_audio_but_no_policy_command(addon_broker: Secured) -> None:
    async with recording(addon_broker, "addons", "#") as bridge:
        async with client(addon_broker, "kitchen") as kitchen:
            await kitchen.publish("hearth/bridge/policy/set", b'{"local_only": false}', qos=1)
            await kitchen.publish("hearth/bridge/history/purge", b'{"request_id": "x"}', qos=1)
            await kitchen.publish("hearth/satellite/kitchen/settings/set", b"{}", qos=1)
            await kitchen.publish("hearth/satellite/bedroom/audio", b"spoofed", qos=1)
            await kitchen.publish("hearth/satellite/kitchen/command", b"forged", qos=1)
            await kitchen.publish("hearth/satellite/kitchen/audio", b"own-audio", qos=1)
            await bridge.wait_for("hearth/satellite/kitchen/audio", b"own-audio")
            await kitchen.publish("hearth/satellite/kitchen/status", b"sentinel", qos=1)
            await bridge.wait_for("hearth/satellite/kitchen/status", b"sentinel")
    assert bridge.topics() == ["hearth/satellite/kitchen/audio", "hearth/satellite/kitchen/status"]


async def test_the_add_on_login_and_home_assistant_publish_policy_commands(addon_broker: Secured) -> None:
    async with recording(addon_broker, "addons", "hearth/bridge/#") as bridge:
        async with client(addon_broker, "homeassistant") as ha:
            await ha.publish("hearth/bridge/policy/set", b'{"request_id": "ha"}', qos=1)
            await bridge.wait_for("hearth/bridge/policy/set", b'{"request_id": "ha"}')
    async with recording(addon_broker, "homeassistant", "hearth/#") as ha_reads:
        async with client(addon_broker, "addons") as addon:
            await addon.publish("hearth/bridge/policy/set", b'{"request_id": "addon"}', qos=1)
            await addon.publish("hearth/bridge/policy/state", b'{"revision": 1}', qos=1)
            await ha_reads.wait_for("hearth/bridge/policy/set", b'{"request_id": "addon"}')
            await ha_reads.wait_for("hearth/bridge/policy/state", b'{"revision": 1}')


async def test_a_satellite_reads_only_its_own_topics(addon_broker: Secured) -> None:
    async with recording(addon_broker, "kitchen", "#") as kitchen:
        async with client(addon_broker, "addons") as bridge:
            await bridge.publish("hearth/satellite/bedroom/command", b"other", qos=1)
            await bridge.publish("hearth/bridge/policy/state", b"other", qos=1)
            await bridge.publish("hearth/satellite/kitchen/transcript", b"other", qos=1)
            await bridge.publish("hearth/satellite/kitchen/command", b"mine", qos=1)
            await kitchen.wait_for("hearth/satellite/kitchen/command", b"mine")
    assert kitchen.topics() == ["hearth/satellite/kitchen/command"]


async def test_without_the_acl_every_login_could_publish_policy_commands(addon_broker: Secured) -> None:
    """The control: the same broker without the customize folder lets a satellite publish
    `policy/set` (so the tests above prove the ACL, not the broker's defaults)."""
    plain = Mosquitto(users=addon_broker[1]).start()
    try:
        unguarded: Secured = (plain, addon_broker[1])
        async with recording(unguarded, "addons", "hearth/bridge/#") as bridge:
            async with client(unguarded, "kitchen") as kitchen:
                await kitchen.publish("hearth/bridge/policy/set", b'{"local_only": false}', qos=1)
                await bridge.wait_for("hearth/bridge/policy/set", b'{"local_only": false}')
    finally:
        plain.close()
