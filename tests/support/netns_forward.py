"""Forwarding to Home Assistant's Assist pipeline through a broker at a public address.

Run by tests/bridge/test_proof_network.py as

    unshare -n -- python tests/support/netns_forward.py --out result.json

Inside a fresh network namespace it brings `lo` up and gives it a public documentation address
(198.51.100.7, TEST-NET-2), starts Mosquitto listening only there and the bridge connected to
it, so the MQTT connection the bridge's audio would leave through really reaches a public
address — yet nothing can leave the namespace. A satellite in `assist` pipeline mode wakes
under local-only (refused: an error, no pipeline/start, no audio frame), then again after the
owner turned local-only off (forwarded). The script writes what it saw as JSON and asserts
nothing itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bridge import PROTOCOL_VERSION
from bridge.protocol.hearth import RECOMMENDED_FRAME_BYTES, encode_frame
from tests.support.bridge_proc import BridgeProcess, Probe, wait_for_retained
from tests.support.signing import signed
from tests.support.broker import Mosquitto

PUBLIC = "198.51.100.7"
SAT = "fwd"


class PublicMosquitto(Mosquitto):
    """Mosquitto listening on the namespace's public address only."""

    def __init__(self) -> None:
        super().__init__()
        self.host = PUBLIC

    def write_config(self) -> Path:
        conf = super().write_config()
        text = conf.read_text().replace(f"listener {self.port} 127.0.0.1", f"listener {self.port} {PUBLIC}")
        conf.write_text(text)
        return conf


async def wake_and_stream(probe: Probe, stream_id: int, seconds: float = 1.0) -> None:
    await probe.client.publish(f"hearth/satellite/{SAT}/event",
                               json.dumps({"type": "wake", "wake_word": "okay_nabu", "stream_id": stream_id}))
    for seq in range(int(seconds * 32000) // RECOMMENDED_FRAME_BYTES):
        await probe.client.publish(f"hearth/satellite/{SAT}/audio",
                                   encode_frame(stream_id, seq, bytes(RECOMMENDED_FRAME_BYTES)))
        await asyncio.sleep(0.03)


def forwarded(probe: Probe) -> tuple[int, int]:
    """How many pipeline/start messages and pipeline/audio frames were published so far."""
    starts = sum(1 for t, _ in probe.messages if t == f"hearth/satellite/{SAT}/pipeline/start")
    frames = sum(1 for t, _ in probe.messages if t == f"hearth/satellite/{SAT}/pipeline/audio")
    return starts, frames


async def session(broker: Mosquitto, report: dict[str, Any], data_dir: Path) -> None:
    async with Probe(broker.host, broker.port, ["hearth/#"]) as probe:
        await probe.client.publish(f"hearth/satellite/{SAT}/status", json.dumps(
            {"state": "online", "protocol": PROTOCOL_VERSION, "capabilities": {"wake_word": True, "speaker": True}}),
            retain=True)
        await probe.client.publish(f"hearth/satellite/{SAT}/pipeline/set", json.dumps({"mode": "assist"}), retain=True)
        await probe.wait_for(f"/{SAT}/state", lambda d: d["state"] == "idle")
        await asyncio.sleep(0.3)
        report["policy_before"] = (await probe.wait_for("hearth/bridge/policy/state"))["local_only"]

        # 1. Local-only (the default): refused before anything is published.
        await wake_and_stream(probe, 5)
        error = await probe.wait_for(f"/{SAT}/error", lambda d: d.get("code") == "cloud_refused", timeout=15)
        await asyncio.sleep(1.0)
        report["refused_error"] = error
        report["refused_forwarded"] = forwarded(probe)

        # 2. The owner allows the cloud: the same path forwards (the test could have failed).
        await probe.client.publish("hearth/bridge/policy/set", signed(data_dir, "hearth/bridge/policy/set",
                                                                      {"request_id": "open", "local_only": False}))
        await probe.wait_for("hearth/bridge/policy/result", lambda d: d["request_id"] == "open" and d["ok"])
        await wake_and_stream(probe, 6)
        start = await probe.wait_for(f"/{SAT}/pipeline/start", timeout=15)
        await asyncio.sleep(0.5)
        report["allowed_start"] = start
        report["allowed_forwarded"] = forwarded(probe)
        report["errors"] = [d.get("code") for d in probe.json(f"/{SAT}/error")]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--host-netns", required=True, help="the test runner's /proc/self/ns/net")
    args = parser.parse_args()
    report: dict[str, Any] = {"ok": False}
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", f"{PUBLIC}/32", "dev", "lo"], check=True)
    report["fresh_netns"] = os.readlink("/proc/self/ns/net") != args.host_netns
    broker = PublicMosquitto().start()
    data = Path(tempfile.mkdtemp(prefix="hearth-netns-forward-"))
    bridge = BridgeProcess(broker.host, broker.port, data / "data", args=["--set", "stt.workers=1"])
    try:
        bridge.start()
        asyncio.run(session(broker, report, bridge.data_dir))
        # The audit counters as published after the forwarded session ended.
        report["audit_counters"] = wait_for_retained(
            broker.host, broker.port, "hearth/bridge/audit",
            lambda d: d.get("counters", {}).get("blocked_cloud_requests", 0) >= 1, 30)["counters"]
        report["ok"] = True
    except Exception:  # noqa: BLE001 - reported to the test
        report["exception"] = traceback.format_exc()
    finally:
        bridge.stop()
        report["bridge_log_tail"] = bridge.log()[-3000:]
        broker.close()
    Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
