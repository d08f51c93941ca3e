"""A lost or corrupt policy file is a reset nobody can miss: a new epoch and a `policy_reset` error.

In process (`build_bridge` on a data folder, what the bridge would publish on connecting read
from the MQTT link's queue) and with the real bridge process on a real Mosquitto: a normal
restart keeps the epoch and the revision and reports nothing; a deleted or torn `policy.json`
gives the defaults under a new epoch at revision 0, published retained on `policy/state`, and
one `policy_reset` on `bridge/error` naming the cause.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from bridge.config import validate
from bridge.service import Bridge, build_bridge
from tests.support.bridge_proc import BridgeProcess, Probe
from tests.support.broker import Mosquitto
from tests.support.inprocess import send_signed
from tests.support.signing import signed

STATE, ERROR, SET = "hearth/bridge/policy/state", "hearth/bridge/error", "hearth/bridge/policy/set"
MUTE_KITCHEN = json.dumps({"request_id": "m1", "microphones": {"kitchen": {"muted": True}}}).encode()


def make_bridge(data_dir: Path) -> Bridge:
    return build_bridge(validate({"data_dir": str(data_dir), "bridge_id": "test", "status_api": {"enabled": False},
                                  "tts": {"engine": "none"}}))


def sent(bridge: Bridge) -> list[tuple[str, dict[str, Any]]]:
    """The JSON messages queued for the broker so far (and the queue emptied)."""
    out = []
    queue = bridge.link._outgoing  # noqa: SLF001 - the test reads what would go out
    while not queue.empty():
        topic, data, _retain = queue.get_nowait()
        out.append((topic, json.loads(data)))
    return out


def on(messages: list[tuple[str, dict[str, Any]]], topic: str) -> list[dict[str, Any]]:
    return [data for t, data in messages if t == topic]


def connect(bridge: Bridge) -> list[tuple[str, dict[str, Any]]]:
    """What the bridge publishes on (re)connecting."""
    sent(bridge)
    bridge._republish_retained()  # noqa: SLF001 - the connection's entry point without a broker
    return sent(bridge)


def first_run_with_kitchen_muted(data_dir: Path) -> dict[str, Any]:
    """A bridge's first run: no error, the kitchen muted, the audit counters saved (as the bridge
    does within seconds of starting). Returns the confirmed policy."""
    bridge = make_bridge(data_dir)
    out = connect(bridge)
    assert on(out, ERROR) == []
    send_signed(bridge, SET, MUTE_KITCHEN)
    (state,) = on(sent(bridge), STATE)
    assert state["microphones"]["kitchen"]["muted"] is True and state["revision"] == 1
    bridge.audit_store.save(bridge.audit.counters_to_json())
    return state


async def test_a_restart_keeps_the_epoch_and_the_revision_and_reports_nothing(tmp_path: Path) -> None:
    before = first_run_with_kitchen_muted(tmp_path)
    bridge = make_bridge(tmp_path)
    out = connect(bridge)
    assert on(out, STATE) == [before]
    assert on(out, ERROR) == []
    assert bridge.is_muted("kitchen")
    assert bridge.errors.counts["policy_reset"] == 0


@pytest.mark.parametrize("damage", ["deleted", "torn"])
async def test_a_lost_or_corrupt_policy_file_is_a_new_epoch_and_a_reported_reset(tmp_path: Path,
                                                                               damage: str) -> None:
    before = first_run_with_kitchen_muted(tmp_path)
    policy_file = tmp_path / "policy.json"
    if damage == "deleted":
        policy_file.unlink()
    else:
        text = policy_file.read_text()
        policy_file.write_text(text[: len(text) // 2])
    bridge = make_bridge(tmp_path)
    assert not bridge.is_muted("kitchen")  # the mute is lost with the file: the defaults
    out = connect(bridge)
    (state,) = on(out, STATE)
    assert state["epoch"] != before["epoch"] and len(state["epoch"]) == 16
    assert state["revision"] == 0 and state["microphones"] == {} and state["local_only"] is True
    (error,) = on(out, ERROR)
    assert error["code"] == "policy_reset" and error["topic"] == STATE
    assert ("missing" if damage == "deleted" else "corrupt or truncated") in error["message"]
    assert state["epoch"] in error["message"]
    assert bridge.errors.counts["policy_reset"] == 1
    # Reported once: a reconnect republishes the state, not the error.
    again = connect(bridge)
    assert on(again, STATE) == [state] and on(again, ERROR) == []
    # The new epoch is saved at once: the next restart is not another reset.
    restarted = make_bridge(tmp_path)
    out = connect(restarted)
    assert on(out, STATE) == [state] and on(out, ERROR) == []


async def test_the_first_start_is_not_a_reset(tmp_path: Path) -> None:
    bridge = make_bridge(tmp_path / "new")
    out = connect(bridge)
    (state,) = on(out, STATE)
    assert state["revision"] == 0 and state["epoch"]
    assert on(out, ERROR) == []


# -- the real bridge on a real broker ---------------------------------------------------------------


async def start_and_listen(broker: Mosquitto, data_dir: Path) -> tuple[BridgeProcess, Probe]:
    """Start the bridge with a probe already listening (the error is not retained). The previous
    bridge's retained `policy/state` is cleared first, so every state the probe sees is new."""
    async with Probe(broker.host, broker.port, []) as clearing:
        await clearing.client.publish(STATE, b"", qos=1, retain=True)
    probe = Probe(broker.host, broker.port, ["hearth/bridge/#"])
    await probe.__aenter__()
    bridge = BridgeProcess(broker.host, broker.port, data_dir)
    try:
        await asyncio.to_thread(bridge.start)
        await probe.wait_for("/bridge/policy/state", timeout=90)
    except BaseException:
        await asyncio.to_thread(bridge.stop, signal.SIGKILL)
        await probe.__aexit__(None, None, None)
        raise
    return bridge, probe


async def stop(bridge: BridgeProcess, probe: Probe, sig: int = signal.SIGTERM) -> None:
    await asyncio.to_thread(bridge.stop, sig)
    await probe.__aexit__(None, None, None)


@pytest.mark.timeout(300)
async def test_real_bridge_restart_keeps_the_epoch_and_a_lost_or_torn_file_is_a_reported_reset(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    bridge, probe = await start_and_listen(mosquitto, data_dir)
    first = probe.json("/bridge/policy/state")[-1]
    await probe.client.publish(SET, signed(data_dir, SET, MUTE_KITCHEN), qos=1)
    muted = await probe.wait_for("/bridge/policy/state", lambda d: d["revision"] == first["revision"] + 1)
    assert muted["epoch"] == first["epoch"] and muted["microphones"]["kitchen"]["muted"] is True
    await stop(bridge, probe)

    # A normal restart: the same epoch and revision, the mute kept, no reset reported.
    bridge, probe = await start_and_listen(mosquitto, data_dir)
    assert probe.json("/bridge/policy/state")[-1] == muted
    await asyncio.sleep(1.0)  # the error would come right after the state
    assert [e for e in probe.json("/bridge/error") if e.get("code") == "policy_reset"] == []
    await stop(bridge, probe, signal.SIGKILL)

    # The policy file is lost while the bridge is down.
    (data_dir / "policy.json").unlink()
    bridge, probe = await start_and_listen(mosquitto, data_dir)
    lost = await probe.wait_for("/bridge/policy/state", lambda d: d["epoch"] != muted["epoch"])
    assert lost["revision"] == 0 and lost["microphones"] == {}, lost
    error = await probe.wait_for("/bridge/error", lambda d: d.get("code") == "policy_reset")
    assert "missing" in error["message"] and lost["epoch"] in error["message"], error
    assert "Policy reset" in bridge.log()
    await probe.client.publish(SET, signed(data_dir, SET, MUTE_KITCHEN), qos=1)
    remuted = await probe.wait_for("/bridge/policy/state", lambda d: d["epoch"] == lost["epoch"] and d["revision"] == 1)
    await stop(bridge, probe, signal.SIGKILL)

    # The file is torn: another reset, another epoch; the torn file is kept aside.
    policy_file = data_dir / "policy.json"
    text = policy_file.read_text()
    policy_file.write_text(text[: len(text) // 2])
    bridge, probe = await start_and_listen(mosquitto, data_dir)
    torn = await probe.wait_for("/bridge/policy/state", lambda d: d["epoch"] not in (lost["epoch"], muted["epoch"]))
    assert torn["revision"] == 0 and torn["microphones"] == {}, torn
    error = await probe.wait_for("/bridge/error", lambda d: d.get("code") == "policy_reset")
    assert "corrupt or truncated" in error["message"], error
    assert (data_dir / f"policy.json.unusable-{torn['epoch']}").read_text() == text[: len(text) // 2]
    assert remuted["microphones"]["kitchen"]["muted"] is True
    await stop(bridge, probe)
