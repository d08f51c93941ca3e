"""Proof: policy, purge and settings commands prove they come from Home Assistant, whatever the
broker allows (docs/security.md, promise 6; bridge/privacy/auth.py).

In process first (each kind of forgery, the key's life: made, kept, lost, rotated, configured),
then a real bridge on a real Mosquitto where every login is allowed: a satellite's client
publishes commands unsigned, signed with a wrong key, replayed, with a changed body and moved to
another topic; none is applied and each is counted; Home Assistant's signed commands are applied,
and after kill -9 the accepted ones are all in force and a replay of them is still refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.privacy.auth import PAIRING_FILE, AuthError, CommandAuth, key_id, normalize_key, rotate, sign
from bridge.service import Bridge
from tests.support.bridge_proc import BridgeProcess, Probe
from tests.support.broker import Mosquitto
from tests.support.inprocess import close_in_process, in_process_bridge, on, send_signed, sent
from tests.support.signing import next_seq, pairing_key, signed

SET, RESULT, PURGE = "hearth/bridge/policy/set", "hearth/bridge/policy/result", "hearth/bridge/history/purge"
KITCHEN_SETTINGS = "hearth/satellite/kitchen/settings/set"
UNMUTE = {"request_id": "forged", "local_only": False, "microphones": {"kitchen": {"muted": False}}}


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    made = in_process_bridge(tmp_path / "data")
    yield made
    await close_in_process(made)


def key_of(bridge: Bridge) -> bytes:
    assert bridge.auth.pairing.key is not None
    return bridge.auth.pairing.key


def forgeries(key: bytes) -> list[tuple[str, str, bytes]]:
    """(reason, topic, payload): every way a client without the key might try."""
    body = json.dumps(UNMUTE).encode()
    good = sign(key, SET, next_seq(), body)
    header, _, _ = good.partition(b"\n")
    settings = sign(key, KITCHEN_SETTINGS, next_seq(), b'{"request_id": "moved", "wake_word": "alexa"}')
    return [
        ("unsigned", SET, body),
        ("unknown_key", SET, sign(secrets.token_bytes(32), SET, next_seq(), body)),
        ("bad_mac", SET, header + b"\n" + body.replace(b"false", b"true ")),  # the body changed after signing
        ("bad_mac", SET, sign(key, PURGE, next_seq(), body)),  # signed for another topic
        ("bad_mac", "hearth/satellite/bedroom/settings/set", settings),  # another satellite's settings
        ("malformed", SET, b"hearth-auth1 nothing here\n" + body),
    ]


async def test_forged_commands_are_refused_counted_and_answered(bridge: Bridge) -> None:
    key = key_of(bridge)
    send_signed(bridge, SET, json.dumps({"request_id": "mute", "microphones": {"kitchen": {"muted": True}}}).encode())
    sent(bridge)
    before = bridge.policy
    cases = forgeries(key)
    errors: list[dict[str, object]] = []
    for reason, topic, payload in cases:
        bridge.dispatch(topic, payload)
        out = sent(bridge)
        errors += on(out, "hearth/bridge/error")
        answers = on(out, RESULT) or on(out, topic.removesuffix("/set") + "/result")
        assert len(answers) == 1 and answers[0]["ok"] is False and answers[0]["code"] == "unauthenticated", answers
        assert not on(out, "hearth/bridge/policy/state"), f"{reason}: a refused command changed the policy"
    # `bridge/error` tells Home Assistant at once (the first; the rest are counted and summarized)
    assert errors[0]["code"] == "unauthenticated" and str(errors[0]["message"]).startswith("unsigned:"), errors
    assert bridge.errors.counts["unauthenticated"] == len(cases)
    assert bridge.policy == before and bridge.policy.is_muted("kitchen", 0) and bridge.policy.local_only
    assert bridge.preferences.wake_word("bedroom") is None
    assert bridge.auth.refused == len(cases)
    assert bridge.auth.refused_by == {"unsigned": 1, "unknown_key": 1, "bad_mac": 3, "malformed": 1}
    assert bridge.audit.counters["refused_commands"] == len(cases)
    assert bridge.stats()["refused_commands"]["refused"] == len(cases)


async def test_a_replayed_or_older_command_is_refused_and_the_seq_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = in_process_bridge(data)
    key = key_of(first)
    unmute = sign(key, SET, next_seq(), b'{"request_id": "u1", "microphones": {"kitchen": {"muted": false}}}')
    older = sign(key, SET, next_seq(), b'{"request_id": "old", "privacy_mode": true}')
    mute = sign(key, SET, next_seq(), b'{"request_id": "m1", "microphones": {"kitchen": {"muted": true}}}')
    first.dispatch(SET, mute)
    assert first.policy.is_muted("kitchen", 0)
    first.dispatch(SET, older)  # signed, but before the last accepted one
    first.dispatch(SET, unmute)
    out = sent(first)
    assert [r["request_id"] for r in on(out, RESULT) if r.get("code") == "unauthenticated"] == ["old", "u1"]
    assert first.policy.is_muted("kitchen", 0) and not first.policy.privacy_mode
    assert first.auth.refused_by == {"replayed": 2}
    await close_in_process(first)
    # The last accepted sequence number was saved before the mute was applied: a restart (any
    # restart, kill -9 included) does not open a replay window.
    second = in_process_bridge(data)
    second.dispatch(SET, mute)
    assert second.auth.refused_by == {"replayed": 1}
    assert pairing_key(data) == key and second.auth.key_id == key_id(key)
    await close_in_process(second)


async def test_the_key_is_made_once_kept_private_and_named_in_the_status(bridge: Bridge, tmp_path: Path) -> None:
    path = tmp_path / "data" / PAIRING_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key_of(bridge)) == 32
    assert bridge._status(True).to_json()["key_id"] == key_id(key_of(bridge))  # noqa: SLF001
    assert CommandAuth(tmp_path / "data").pairing.key == key_of(bridge)  # kept, not made again


async def test_a_lost_key_fails_closed_and_re_pairing_recovers(bridge: Bridge, tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = key_of(bridge)
    send_signed(bridge, SET, b'{"request_id": "m", "microphones": {"kitchen": {"muted": true}}}')
    (data / PAIRING_FILE).write_text("{torn")  # damaged while the bridge runs
    sent(bridge)
    bridge.dispatch(SET, sign(old, SET, next_seq(), b'{"request_id": "u", "microphones": {"kitchen": {"muted": false}}}'))
    (answer,) = on(sent(bridge), RESULT)
    assert answer["code"] == "unauthenticated" and "no usable pairing key" in answer["error"], answer
    assert bridge.policy.is_muted("kitchen", 0), "the policy in force must stay"
    assert (data / PAIRING_FILE).read_text() == "{torn", "a damaged pairing file is never replaced silently"
    new = rotate(data)  # `hearth-bridge pair --rotate`
    bridge.dispatch(SET, sign(old, SET, next_seq(), b'{"request_id": "u2", "privacy_mode": true}'))
    bridge.dispatch(SET, sign(new, SET, next_seq(), b'{"request_id": "u3", "privacy_mode": true}'))
    out = sent(bridge)
    answers = {r["request_id"]: r for r in on(out, RESULT)}
    assert answers["u2"]["code"] == "unauthenticated" and answers["u3"]["ok"] is True
    # The status announces the new key's id at once, so Home Assistant can check the pasted key.
    assert [s["key_id"] for s in on(out, "hearth/bridge/status")] == [key_id(new)]
    assert bridge.auth.refused_by == {"no_key": 1, "unknown_key": 1}


async def test_a_key_in_the_config_is_used_and_never_written(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    pasted = "-".join(key.hex()[i:i + 16].upper() for i in range(0, 64, 16))
    assert normalize_key(pasted) == key.hex()
    made = in_process_bridge(tmp_path / "data", pairing_key=pasted)
    made.dispatch(SET, sign(key, SET, next_seq(), b'{"request_id": "p", "privacy_mode": true}'))
    assert made.policy.privacy_mode
    assert "key" not in json.loads((tmp_path / "data" / PAIRING_FILE).read_text())
    await close_in_process(made)


def test_auth_error_code() -> None:
    auth_error = AuthError("unsigned", "x")
    assert (auth_error.code, auth_error.reason) == ("unauthenticated", "unsigned")


# -- a real bridge, a broker that lets every login publish anything ---------------------------------

@pytest.fixture(scope="module")
def open_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, BridgeProcess]]:
    broker = Mosquitto().start()  # anonymous and every topic allowed: the add-on's broker as shipped
    bridge = BridgeProcess(broker.host, broker.port, tmp_path_factory.mktemp("signed") / "data")
    try:
        bridge.start()
        yield broker, bridge
    finally:
        bridge.stop()
        broker.close()


async def wait_result(probe: Probe, request_id: str) -> dict[str, Any]:
    return await probe.wait_for(RESULT, lambda d: d.get("request_id") == request_id)


async def test_a_satellite_login_cannot_change_the_policy(open_broker: tuple[Mosquitto, BridgeProcess]) -> None:
    broker, bridge = open_broker
    key = pairing_key(bridge.data_dir)
    async with Probe(broker.host, broker.port, ["hearth/bridge/#"]) as ha, \
            Probe(broker.host, broker.port, []) as satellite:
        mute = signed(key, SET, {"request_id": "ha-mute", "privacy_mode": True,
                                 "microphones": {"kitchen": {"muted": True}}})
        await ha.client.publish(SET, mute, qos=1)
        applied = await wait_result(ha, "ha-mute")
        assert applied["ok"] is True and applied["policy"]["privacy_mode"] is True, applied
        revision = applied["policy"]["revision"]
        cases = forgeries(key) + [("replayed", SET, mute)]  # the captured command of Home Assistant, again
        for _reason, topic, payload in cases:
            await satellite.client.publish(topic, payload, qos=1)
        # Home Assistant's next command is answered after every forgery before it (one connection in order).
        await ha.client.publish(SET, signed(key, SET, {"request_id": "ha-sentinel"}), qos=1)
        await wait_result(ha, "ha-sentinel")
        refused = [r for r in ha.json("/bridge/policy/result") if r.get("code") == "unauthenticated"]
        assert len(refused) == len(cases) - 1  # the moved settings command is answered on its own topic
        states = ha.json("/bridge/policy/state")
        assert states[-1]["revision"] == revision + 1  # only the sentinel counted (every accepted command does)
        assert states[-1]["privacy_mode"] is True
        assert states[-1]["microphones"]["kitchen"]["muted"] is True and states[-1]["local_only"] is True
        stats = await ha.wait_for("/bridge/stats", lambda d: d["refused_commands"]["refused"] >= len(cases), timeout=15)
        assert stats["refused_commands"]["by_reason"] == {"unsigned": 1, "unknown_key": 1, "bad_mac": 3,
                                                          "malformed": 1, "replayed": 1}
        audit = await ha.wait_for("/bridge/audit", lambda d: d["counters"]["refused_commands"] >= len(cases))
        assert audit["counters"]["refused_commands"] == len(cases)

    # kill -9 right after an accepted command: it is in force after the restart, and replaying it
    # (or any command before it) is still refused.
    async with Probe(broker.host, broker.port, ["hearth/bridge/#"]) as ha:
        unmute = signed(key, SET, {"request_id": "ha-unmute", "microphones": {"kitchen": {"muted": False}}})
        await ha.client.publish(SET, unmute, qos=1)
        assert (await wait_result(ha, "ha-unmute"))["ok"] is True
    await asyncio.to_thread(bridge.stop, signal.SIGKILL)
    await asyncio.to_thread(bridge.start)
    async with Probe(broker.host, broker.port, ["hearth/bridge/#"]) as ha:
        state = await ha.wait_for("/bridge/policy/state", lambda d: True)
        assert "kitchen" not in state["microphones"] and state["privacy_mode"] is True, state
        await ha.client.publish(SET, mute, qos=1)  # an older accepted command
        assert (await wait_result(ha, "ha-mute"))["code"] == "unauthenticated"
        await ha.client.publish(SET, unmute, qos=1)
        assert (await wait_result(ha, "ha-unmute"))["code"] == "unauthenticated"
    assert os.path.exists(bridge.data_dir / PAIRING_FILE)


def test_hearth_bridge_pair_prints_rotates_and_respects_a_configured_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bridge.cli import main

    def pair(*args: str) -> tuple[int, str]:
        with pytest.raises(SystemExit) as done:
            main(["pair", *args])
        return int(done.value.code or 0), capsys.readouterr().out

    data = tmp_path / "data"
    code, out = pair("--data-dir", str(data))
    first = pairing_key(data)
    assert code == 0 and out.split()[-1] == first.hex() and key_id(first) in out
    assert pair("--data-dir", str(data))[1].split()[-1] == first.hex()  # shown again, not remade
    code, out = pair("--data-dir", str(data), "--rotate")
    assert code == 0 and out.splitlines()[1] == pairing_key(data).hex() != first.hex()
    config = tmp_path / "bridge.yaml"
    config.write_text(f"data_dir: {data}\npairing_key: {'ab' * 32}\n")
    assert pair("--config", str(config))[1].split()[-1] == "ab" * 32
    assert pair("--config", str(config), "--rotate")[0] == 2
    (data / PAIRING_FILE).write_text("{torn")
    assert pair("--data-dir", str(data))[0] == 1

