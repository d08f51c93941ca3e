"""`kill -9` of the bridge loses no accepted command: whatever `policy/result` said ok to is in
force after the restart.

The real bridge process on a real Mosquitto. A burst of 30 policy commands (each changes
something of its own: a microphone muted, retention on, local-only off, privacy mode on) is
published while a probe collects the answers; when the 15th `ok` arrives the bridge is killed
with SIGKILL, in the middle of the burst. After a restart, every command that was answered ok
must be in the retained `policy/state`, in the same epoch, at a revision no lower than the last
confirmed one.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.bridge.test_policy_reset import SET, start_and_listen, stop
from tests.support.broker import Mosquitto

COMMANDS: list[dict[str, Any]] = [{"microphones": {f"m{n:02d}": {"muted": True}}} for n in range(30)]
COMMANDS[5] = {"retention": "memory"}
COMMANDS[11] = {"local_only": False}
COMMANDS[17] = {"privacy_mode": True}
KILL_AFTER = 15


def in_force(state: dict[str, Any], command: dict[str, Any]) -> bool:
    for key, value in command.items():
        if key == "microphones":
            if not all(state["microphones"].get(sat, {}).get("muted") for sat in value):
                return False
        elif state[key] != value:
            return False
    return True


@pytest.mark.timeout(240)
async def test_kill_9_loses_no_accepted_command(mosquitto: Mosquitto, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    bridge, probe = await start_and_listen(mosquitto, data_dir)
    first = probe.json("/bridge/policy/state")[-1]

    def confirmed() -> list[dict[str, Any]]:
        return [r for r in probe.json("/bridge/policy/result") if r.get("ok") is True]

    async def burst() -> None:
        for n, command in enumerate(COMMANDS):
            await probe.client.publish(SET, json.dumps({"request_id": f"c{n}", **command}))
            await asyncio.sleep(0.005)

    sending = asyncio.create_task(burst())
    async with asyncio.timeout(30):
        while len(confirmed()) < KILL_AFTER:
            await asyncio.sleep(0.002)
    assert bridge.proc is not None
    bridge.proc.send_signal(signal.SIGKILL)  # at once, from the loop that saw the 15th ok
    await sending
    await asyncio.sleep(0.3)  # answers already on their way are still answers the owner saw
    answered = confirmed()
    await stop(bridge, probe)

    bridge, probe = await start_and_listen(mosquitto, data_dir)
    try:
        state = probe.json("/bridge/policy/state")[-1]
        assert state["epoch"] == first["epoch"], (first, state)  # a restart, not a reset
        assert state["revision"] >= max(r["policy"]["revision"] for r in answered), (state, answered)
        lost = [r["request_id"] for r in answered if not in_force(state, COMMANDS[int(r["request_id"][1:])])]
        assert lost == [], (lost, state)
        assert KILL_AFTER <= len(answered) <= len(COMMANDS)
    finally:
        await stop(bridge, probe)
