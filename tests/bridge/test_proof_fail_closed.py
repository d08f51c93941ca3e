"""Proof: the bridge fails closed across a crash and a broker that forgot everything.

The bridge runs with a cloud speech-to-text engine configured (Wyoming at 198.51.100.7, a
public documentation address). It is killed with SIGKILL (no clean shutdown), the broker is
restarted without persistence (every retained message, including `policy/state`, is gone)
and the bridge is restarted on the same data folder. Local-only must still be on, and a
session must be served by the local recognizer with the cloud engine refused and counted.
Turning local-only off, crashing, and corrupting the policy file must also give local-only.

Every bridge process carries the audit-hook guard (tests/support/netguard_site) in "raise"
mode: a connect, send or DNS lookup to anything but loopback is recorded and refused *before*
the socket call, so even a broken bridge could not send a packet to 198.51.100.7. No session
is run while local-only is off.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bridge.tools.satellite import load_wav_pcm16k
from tests.support.bridge_proc import Probe, wait_for_retained
from tests.support.signing import signed
from tests.support.broker import Mosquitto
from tests.support.netguard import (
    GuardedBridgeProcess,
    describe,
    guard_env,
    read_guard_log,
    started_processes,
    violations,
)
from tests.support.proof_satellite import stream_command

CLOUD = "198.51.100.7"
CLOUD_STT = ["--set", "stt.engine=wyoming", "--set", f"stt.host={CLOUD}", "--set", "stt.timeout=3"]
TEXT = "turn on the kitchen light"


@dataclass
class Rig:
    broker: Mosquitto
    data_dir: Path
    guard_dir: Path
    pcm: bytes
    bridges: list[GuardedBridgeProcess] = field(default_factory=list)

    def start_bridge(self) -> GuardedBridgeProcess:
        bridge = GuardedBridgeProcess(self.broker.host, self.broker.port, self.data_dir, args=CLOUD_STT,
                                      env=guard_env(self.guard_dir, mode="raise"))
        self.bridges.append(bridge)
        return bridge.start()

    def retained(self, topic: str, predicate: Any = lambda _d: True, timeout: float = 10) -> dict[str, Any]:
        return wait_for_retained(self.broker.host, self.broker.port, topic, predicate, timeout)

    def crash_and_forget(self, bridge: GuardedBridgeProcess) -> None:
        """SIGKILL the bridge, then restart the broker without persistence: nothing retained survives."""
        self.kill(bridge)
        self.broker.restart()
        assert asyncio.run(retained_messages(self.broker)) == [], "the broker still holds retained messages"

    def reap_children(self, parent: int) -> None:
        """SIGKILL spares a process's children: the bridge's decoder workers must notice (their
        pipe closes) and exit by themselves, and no compile process may be left behind. Any child
        still alive after 10 s is killed and fails the test."""
        deadline = time.monotonic() + 10
        while True:
            alive = []
            for record in read_guard_log(self.guard_dir):
                if record["event"] != "start" or record.get("ppid") != parent:
                    continue
                try:
                    environ = Path(f"/proc/{record['pid']}/environ").read_bytes()
                except OSError:
                    continue  # gone
                if f"HEARTH_NETGUARD_DIR={self.guard_dir}".encode() in environ.split(b"\0"):
                    alive.append(record["pid"])
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for pid in alive:
            os.kill(pid, signal.SIGKILL)
        assert not alive, f"children of the killed bridge still running: {alive}"

    def kill(self, bridge: GuardedBridgeProcess) -> None:
        if bridge.proc is not None:
            pid = bridge.proc.pid
            bridge.stop(signal.SIGKILL)
            self.reap_children(pid)


async def retained_messages(broker: Mosquitto) -> list[str]:
    async with Probe(broker.host, broker.port, ["#"]) as probe:
        await asyncio.sleep(1.0)
        return [t for t, p in probe.messages if p]


async def one_session(rig: Rig, sat: str) -> tuple[dict[str, Any], list[str]]:
    async with Probe(rig.broker.host, rig.broker.port, [f"hearth/satellite/{sat}/#"]) as probe:
        done = asyncio.Event()
        streaming = asyncio.create_task(stream_command(rig.broker.host, rig.broker.port, sat, rig.pcm, stop=done))
        try:
            transcript = await probe.wait_for(f"{sat}/transcript", timeout=25)
        finally:
            done.set()
            await streaming
        return transcript, [d.get("code") for d in probe.json(f"{sat}/error")]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, say: Any) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("fail-closed")
    (root / "guard").mkdir()
    broker = Mosquitto().start()
    rig = Rig(broker, root / "data", root / "guard", load_wav_pcm16k(say(TEXT)))
    try:
        yield rig
    finally:
        for bridge in rig.bridges:
            rig.kill(bridge)
        broker.close()


def assert_served_locally_with_the_cloud_refused(rig: Rig, sat: str) -> None:
    blocked_before = rig.retained("hearth/bridge/audit")["counters"].get("blocked_cloud_requests", 0)
    transcript, errors = asyncio.run(one_session(rig, sat))
    assert transcript["text"] == TEXT, transcript
    assert transcript["locality"] == "in_process" and transcript["engine"] == "pocketsphinx", transcript
    assert "cloud_refused" in errors, errors
    audit = rig.retained("hearth/bridge/audit",
                         lambda d: d["counters"].get("blocked_cloud_requests", 0) > blocked_before, timeout=15)
    assert audit["counters"].get("bytes_off_lan", 0) == 0, audit


def assert_nothing_left_the_machine(rig: Rig) -> None:
    records = read_guard_log(rig.guard_dir)
    assert any("-m bridge run" in c for c in started_processes(records).values())
    bad = violations(records)
    assert not bad, "non-loopback network attempts:\n" + describe(bad)
    assert not [r for r in records if r["event"] == "socket.connect" and r.get("host") == CLOUD]


def test_sigkill_and_a_forgetful_broker_keep_local_only_and_refuse_the_cloud(rig: Rig) -> None:
    bridge = rig.start_bridge()
    assert rig.retained("hearth/bridge/policy/state")["local_only"] is True
    rig.crash_and_forget(bridge)

    bridge = rig.start_bridge()
    state = rig.retained("hearth/bridge/policy/state")
    assert state["local_only"] is True and state["retention"] == "none", state
    assert_served_locally_with_the_cloud_refused(rig, "fc-after-crash")
    assert_nothing_left_the_machine(rig)
    # The refused engine was really asked for (a numeric lookup of its address; no connect).
    assert any(r["event"] == "socket.getaddrinfo" and r["host"] == CLOUD for r in read_guard_log(rig.guard_dir))
    rig.crash_and_forget(bridge)


def test_local_only_off_then_crash_and_a_corrupt_policy_file_fails_closed(rig: Rig) -> None:
    policy_file = rig.data_dir / "policy.json"
    bridge = rig.start_bridge()

    async def turn_local_only_off() -> dict[str, Any]:
        async with Probe(rig.broker.host, rig.broker.port, ["hearth/bridge/policy/result"]) as probe:
            await probe.client.publish("hearth/bridge/policy/set", signed(
                rig.data_dir, "hearth/bridge/policy/set", {"request_id": "cloud-ok", "local_only": False}), qos=1)
            return await probe.wait_for("policy/result", lambda d: d.get("request_id") == "cloud-ok")

    result = asyncio.run(turn_local_only_off())  # no session runs while local-only is off
    assert result["ok"] is True and result["policy"]["local_only"] is False, result
    assert json.loads(policy_file.read_text())["policy"]["local_only"] is False

    # Control: an intact file is what the bridge restarts with (so the next step tests the file).
    rig.crash_and_forget(bridge)
    bridge = rig.start_bridge()
    intact = rig.retained("hearth/bridge/policy/state")
    assert intact["local_only"] is False

    rig.crash_and_forget(bridge)
    text = policy_file.read_text()
    policy_file.write_text(text[: len(text) // 2])  # torn, as a disk error could leave it
    policy_file.chmod(0o600)
    bridge = rig.start_bridge()
    state = rig.retained("hearth/bridge/policy/state")
    assert state["local_only"] is True and state["retention"] == "none", state
    assert "corrupt or truncated" in bridge.log()
    # A reset, not a restart: a new epoch at revision 0, logged as such.
    assert state["epoch"] != intact["epoch"] and state["revision"] == 0, (intact, state)
    assert "Policy reset" in bridge.log()
    assert_served_locally_with_the_cloud_refused(rig, "fc-after-corruption")
    assert_nothing_left_the_machine(rig)
    rig.kill(bridge)
