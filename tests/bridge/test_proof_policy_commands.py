"""Proof: only Home Assistant changes the policy, and a bad command changes nothing.

A real Mosquitto runs with the shipped ACL (docs/mosquitto/, set up exactly as
tests/bridge/test_acl.py does: `allow_anonymous false`, passwords from make-passwd.sh), and the
real bridge logs in as `hearth-bridge`. A satellite user's policy commands are dropped by the
broker: the bridge never answers them and the policy revision does not move. Home Assistant's
malformed commands (signed with the pairing key, tests/support/signing.py) reach the bridge and are refused on `policy/result` with an error naming
the field, leaving the policy, its revision and the saved file as they were. A good command
from Home Assistant is applied, so the test can fail.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.bridge.test_acl import Recorder, Secured, client, recording, secured  # noqa: F401 - `secured` is a fixture
from tests.support.bridge_proc import BridgeProcess
from tests.support.signing import signed

if shutil.which("mosquitto_passwd") is None:  # the ACL broker needs it; CI has it
    pytest.fail("proof 5 needs mosquitto_passwd (package mosquitto)", pytrace=False)

SET, RESULT, STATE = "hearth/bridge/policy/set", "hearth/bridge/policy/result", "hearth/bridge/policy/state"


def messages(recorder: Recorder, topic: str) -> list[dict[str, Any]]:
    return [json.loads(p) for t, p in recorder.got if t == topic and p]


async def wait_json(recorder: Recorder, topic: str, predicate: Any, after: int = 0, timeout: float = 10.0) -> dict[str, Any]:
    """The first JSON message on `topic`, among those after the first `after`, that matches."""
    async with asyncio.timeout(timeout):
        while True:
            for data in messages(recorder, topic)[after:]:
                if predicate(data):
                    return data
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def acl_bridge(secured: Secured, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:  # noqa: F811
    broker, passwords = secured
    bridge = BridgeProcess(broker.host, broker.port, tmp_path_factory.mktemp("acl-bridge") / "data",
                           args=["--mqtt-username", "hearth-bridge", "--mqtt-password", passwords["hearth-bridge"]])
    bridge.start(wait=False)

    async def online() -> None:
        async with recording(secured, "homeassistant", "hearth/bridge/#") as ha:
            await wait_json(ha, "hearth/bridge/status", lambda d: d.get("state") == "online", timeout=60)
            await wait_json(ha, STATE, lambda d: True)

    try:
        asyncio.run(online())
    except TimeoutError:
        bridge.stop(signal.SIGKILL)
        pytest.fail(f"the bridge did not come online as hearth-bridge:\n{bridge.log()}")
    try:
        yield bridge
    finally:
        bridge.stop()


@pytest.fixture
async def ha(secured: Secured, acl_bridge: BridgeProcess) -> AsyncIterator[Recorder]:  # noqa: F811
    async with recording(secured, "homeassistant", "hearth/bridge/#") as recorder:
        await wait_json(recorder, STATE, lambda d: True)  # the retained, confirmed policy
        yield recorder


async def command(secured: Secured, ha: Recorder, payload: bytes, match: Any,  # noqa: F811
                  bridge: BridgeProcess) -> dict[str, Any]:
    """Home Assistant's command, signed with the pairing key (the broker ACL is the other wall)."""
    seen = len(messages(ha, RESULT))
    async with client(secured, "homeassistant") as mqtt:
        await mqtt.publish(SET, signed(bridge.data_dir, SET, payload), qos=1)
    return await wait_json(ha, RESULT, match, after=seen)


async def test_satellite_policy_commands_are_dropped_by_the_broker(secured: Secured, ha: Recorder,  # noqa: F811
                                                                   acl_bridge: BridgeProcess) -> None:
    before = messages(ha, STATE)[-1]
    async with client(secured, "kitchen") as kitchen, client(secured, "bedroom") as bedroom:
        await kitchen.publish(SET, json.dumps({"request_id": "sat-1", "local_only": False}), qos=1)
        await kitchen.publish(SET, json.dumps({"request_id": "sat-2", "microphones": {"bedroom": {"muted": False}},
                                               "privacy_mode": True}), qos=1)
        await bedroom.publish(SET, json.dumps({"request_id": "sat-3", "retention": "memory"}), qos=1)
        await bedroom.publish("hearth/bridge/history/purge", json.dumps({"request_id": "sat-4"}), qos=1)
    # Sentinel: Home Assistant's command, sent after the satellites' were acknowledged by the
    # broker. The bridge answers commands in order, so by its answer any of theirs would be in.
    result = await command(secured, ha, json.dumps({"request_id": "ha-sentinel", "publish_transcripts":
                                                     not before["publish_transcripts"]}).encode(),
                           lambda d: d.get("request_id") == "ha-sentinel", acl_bridge)
    assert result["ok"] is True, result
    answered = {d.get("request_id") for d in messages(ha, RESULT)}
    assert not answered & {"sat-1", "sat-2", "sat-3", "sat-4"}, answered
    after = await wait_json(ha, STATE, lambda d: d["revision"] > before["revision"])
    assert after["revision"] == before["revision"] + 1  # only Home Assistant's command counted
    assert {k: after[k] for k in ("local_only", "privacy_mode", "retention", "microphones")} == \
        {k: before[k] for k in ("local_only", "privacy_mode", "retention", "microphones")}
    assert after["local_only"] is True


BAD_COMMANDS = [  # (id, payload, request_id echoed, words the error must contain)
    ("bad-json", b'{"request_id": "bad-json", "local_only": fal', None, ["not valid JSON"]),
    ("not-an-object", b'["local_only", false]', None, ["JSON object"]),
    ("unknown-field", b'{"request_id": "unknown-field", "local_onyl": false}', "unknown-field", ["local_onyl"]),
    ("wrong-type", b'{"request_id": "wrong-type", "local_only": "false"}', "wrong-type", ["local_only"]),
    ("number-for-bool", b'{"request_id": "number-for-bool", "privacy_mode": 0}', "number-for-bool", ["privacy_mode"]),
    ("bad-duration", b'{"request_id": "bad-duration", "microphones": {"kitchen": {"muted": true, "duration": -5}}}',
     "bad-duration", ["microphones.kitchen.duration"]),
    ("all-or-nothing", b'{"request_id": "all-or-nothing", "privacy_mode": true, "retention": "forever"}',
     "all-or-nothing", ["retention"]),
    ("revision", b'{"request_id": "revision", "revision": 99}', "revision", ["revision"]),
]


@pytest.mark.parametrize(("payload", "request_id", "words"), [c[1:] for c in BAD_COMMANDS], ids=[c[0] for c in BAD_COMMANDS])
async def test_malformed_command_is_refused_with_a_clear_error_and_changes_nothing(
        secured: Secured, ha: Recorder, acl_bridge: BridgeProcess, payload: bytes, request_id: str | None,  # noqa: F811
        words: list[str]) -> None:
    before = messages(ha, STATE)[-1]
    saved = acl_bridge.data_dir / "policy.json"
    saved_before = saved.read_bytes() if saved.exists() else None
    states = len(messages(ha, STATE))
    result = await command(secured, ha, payload, lambda d: d.get("request_id") == request_id, acl_bridge)
    assert result["ok"] is False, result
    for word in words:
        assert word in result["error"], result["error"]
    assert result["policy"] == before, result
    assert len(messages(ha, STATE)) == states, "a refused command published a new policy state"
    assert (saved.read_bytes() if saved.exists() else None) == saved_before


async def test_home_assistant_good_command_is_applied(secured: Secured, ha: Recorder,  # noqa: F811
                                                      acl_bridge: BridgeProcess) -> None:
    before = messages(ha, STATE)[-1]
    result = await command(secured, ha, b'{"request_id": "ha-good", "privacy_mode": true}',
                           lambda d: d.get("request_id") == "ha-good", acl_bridge)
    assert result["ok"] is True and result["error"] is None, result
    assert result["policy"]["privacy_mode"] is True and result["policy"]["revision"] == before["revision"] + 1
    state = await wait_json(ha, STATE, lambda d: d["revision"] == before["revision"] + 1)
    assert state["privacy_mode"] is True
    restored = await command(secured, ha, b'{"request_id": "ha-restore", "privacy_mode": false}',
                             lambda d: d.get("request_id") == "ha-restore", acl_bridge)
    assert restored["ok"] is True and restored["policy"]["privacy_mode"] is False
