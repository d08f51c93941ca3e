"""One full Hearth session inside a network namespace that has only loopback (proof 1).

Run by tests/bridge/test_proof_network.py as

    unshare -n -- env PYTHONPATH=<netguard_site>:<repo> HEARTH_NETGUARD_DIR=<dir> \
        python tests/support/netns_session.py --out result.json --hearth-wav A --hermes-wav B ...

It brings `lo` up, starts Mosquitto, the bridge (with speech-to-text AND text-to-speech
configured as Wyoming engines at a public documentation address, 198.51.100.7) and two
simulated satellites (Hearth and Hermes), asks the bridge to speak an answer, then writes a JSON
report: the namespace's interfaces, the transcripts, the audit counters, what was played.
Every Python process here (this one, the bridge, its decoder workers and compile process)
records its socket connects and name lookups through the audit hook in netguard_site/.
The test reads those logs and the report; this script asserts nothing itself.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bridge.tools.satellite import load_wav_pcm16k
from tests.support.bridge_proc import Probe, wait_for_retained
from tests.support.broker import Mosquitto
from tests.support.netguard import GuardedBridgeProcess, guard_env
from tests.support.proof_satellite import stream_command

CLOUD = "198.51.100.7"  # TEST-NET-2: a public documentation address


def links() -> list[str]:
    """This network namespace's interfaces (asked of the kernel; /sys/class/net would show the
    namespace sysfs was mounted in)."""
    return sorted(name for _index, name in socket.if_nameindex())


def canary(guard_dir: Path) -> dict[str, Any]:
    """A guarded process that tries to reach the public address: the guard must record it and,
    with no route out of this namespace, the connect must fail. Proves the test could fail."""
    code = (
        "import socket, json\n"
        "s = socket.socket(); s.settimeout(2)\n"
        "try:\n"
        f"    s.connect(({CLOUD!r}, 9)); print(json.dumps({{'connected': True}}))\n"
        "except OSError as e:\n"
        "    print(json.dumps({'connected': False, 'errno': e.errno, 'error': str(e)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, env={**os.environ, **guard_env(guard_dir)},
                         capture_output=True, text=True, timeout=20)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["enetunreach"] = result.get("errno") == errno.ENETUNREACH
    return result


async def session(args: argparse.Namespace, broker: Mosquitto, report: dict[str, Any]) -> None:
    prefix = "hearth"
    async with Probe(broker.host, broker.port, [f"{prefix}/#", "hermes/#"]) as probe:
        async def one(sat_id: str, wav: str, protocol: str) -> dict[str, Any]:
            done = asyncio.Event()
            streaming = asyncio.create_task(stream_command(broker.host, broker.port, sat_id,
                                                           load_wav_pcm16k(Path(wav)), protocol, stop=done))
            try:
                return await probe.wait_for(f"{sat_id}/transcript", timeout=25)
            finally:
                done.set()
                await streaming

        results = await asyncio.gather(one("netns-hearth", args.hearth_wav, "hearth"),
                                       one("netns-hermes", args.hermes_wav, "hermes"))
        report["satellites"] = {r["satellite"]: {k: r.get(k) for k in ("text", "rejected", "engine", "locality")}
                                for r in results}
        transcript = results[0]
        # Home Assistant's answer: spoken with text-to-speech (the refused Wyoming TTS, then espeak-ng).
        await probe.client.publish(f"{prefix}/satellite/netns-hearth/response", json.dumps(
            {"session_id": transcript["session_id"], "text": "The kitchen light is on", "continue": False}))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(t.endswith("netns-hearth/play") for t, _ in probe.messages):
            await asyncio.sleep(0.1)
        report["played_chunks"] = sum(1 for t, _ in probe.messages if t.endswith("netns-hearth/play"))
        report["errors"] = [d.get("code") for d in probe.json("/error")]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--guard-dir", required=True, help="guard log folder for the bridge and satellites")
    parser.add_argument("--canary-dir", required=True, help="guard log folder for the canary")
    parser.add_argument("--hearth-wav", required=True)
    parser.add_argument("--hermes-wav", required=True)
    parser.add_argument("--host-netns", required=True, help="the test runner's /proc/self/ns/net")
    args = parser.parse_args()
    report: dict[str, Any] = {"ok": False}
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    report["links"] = links()
    report["netns"] = os.readlink("/proc/self/ns/net")
    report["fresh_netns"] = report["netns"] != args.host_netns
    report["routes"] = subprocess.run(["ip", "-o", "route", "show", "table", "all"], check=False,
                                      capture_output=True,
                                      text=True).stdout.splitlines()
    broker = Mosquitto().start()
    data = Path(tempfile.mkdtemp(prefix="hearth-netns-"))
    bridge = GuardedBridgeProcess(broker.host, broker.port, data / "data", env=guard_env(Path(args.guard_dir)), args=[
        "--set", "stt.engine=wyoming", "--set", f"stt.host={CLOUD}",
        "--set", "tts.engine=wyoming", "--set", f"tts.host={CLOUD}",
    ])
    try:
        status = bridge.start().wait_online()
        report["engines"] = status.get("engines")
        report["policy"] = wait_for_retained(broker.host, broker.port, "hearth/bridge/policy/state", lambda d: True, 10)
        asyncio.run(session(args, broker, report))
        try:  # two refused speech-to-text sessions and one refused text-to-speech request
            audit = wait_for_retained(broker.host, broker.port, "hearth/bridge/audit",
                                      lambda d: d.get("counters", {}).get("blocked_cloud_requests", 0) >= 3, 15)
        except TimeoutError:
            audit = wait_for_retained(broker.host, broker.port, "hearth/bridge/audit", lambda d: True, 5)
        report["audit_counters"] = audit["counters"]
        report["canary"] = canary(Path(args.canary_dir))
        report["ok"] = True
    except Exception:  # noqa: BLE001 - reported to the test
        report["exception"] = traceback.format_exc()
    finally:
        bridge.stop(signal.SIGTERM)
        report["bridge_log_tail"] = bridge.log()[-3000:]
        broker.close()
    Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
