"""The add-on's start, as Supervisor runs it, inside a network namespace that has only loopback.

Run by tests/addon/test_addon_start.py as

    unshare -n -- python tests/addon/addon_session.py --data DIR --out report.json

DIR holds options.json (what Supervisor writes). This script brings `lo` up, starts a Mosquitto
that admits only the login Supervisor would hand out, a stand-in of Supervisor's services API
(aiohttp on 127.0.0.1) that hands it out to the right bearer token, then the add-on's start
(`python -m bridge.addon`, as the image's s6 service runs it) with SUPERVISOR_TOKEN, and records
what happened in a JSON report: the requests Supervisor's stand-in got, the bridge's retained
status as seen with the login, whether an anonymous client is refused, the status API on the
ingress port (which binds every address, hence the namespace: no port clash with anything
else on this machine), the files in DIR. The test reads the report; this script asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import aiohttp
import aiomqtt
from aiohttp import web

from bridge.addon import STATUS_PORT, SUPERVISOR_INGRESS
from tests.support.broker import Mosquitto, free_port

TOKEN = secrets.token_hex(16)
OTHER_ADDRESS = "10.99.0.7"
ADDON_SLUG = "5c53de3b_hearth"  # what Supervisor calls an add-on of a third-party repository  # a LAN device that is not Supervisor's ingress proxy
USER, PASSWORD = "addons", secrets.token_urlsafe(18)


def services_api(broker: Mosquitto, seen: list[dict[str, Any]]) -> web.Application:
    """Supervisor's `GET /services/mqtt`, answering as Supervisor does for the Mosquitto add-on."""

    async def mqtt_service(request: web.Request) -> web.Response:
        seen.append({"path": request.path, "authorization_ok": request.headers.get("Authorization") == f"Bearer {TOKEN}"})
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"result": "error", "message": "Unauthorized"}, status=401)
        return web.json_response({"result": "ok", "data": {
            "addon": "core_mosquitto", "host": broker.host, "port": broker.port, "ssl": False,
            "protocol": "3.1.1", "username": USER, "password": PASSWORD}})

    async def self_info(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"result": "error", "message": "Unauthorized"}, status=401)
        return web.json_response({"result": "ok", "data": {"slug": ADDON_SLUG, "name": "Hearth"}})

    async def discovery(request: web.Request) -> web.Response:
        """`POST /discovery`: what the add-on offers Home Assistant (the pairing key)."""
        seen.append({"path": request.path, "authorization_ok": request.headers.get("Authorization") == f"Bearer {TOKEN}",
                     "body": await request.json()})
        return web.json_response({"result": "ok", "data": {"uuid": "0" * 32}})

    app = web.Application()
    app.router.add_get("/services/mqtt", mqtt_service)
    app.router.add_post("/discovery", discovery)
    app.router.add_get("/addons/self/info", self_info)
    return app


async def retained_status(broker: Mosquitto, prefix: str, timeout: float) -> dict[str, Any]:
    """The bridge's retained status once it says online, read with the add-on's login."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with aiomqtt.Client(broker.host, broker.port, username=USER, password=PASSWORD,
                                      identifier=f"probe-{secrets.token_hex(4)}") as client:
                await client.subscribe(f"{prefix}/bridge/status")
                async with asyncio.timeout(max(0.5, deadline - time.monotonic())):
                    async for message in client.messages:
                        data = json.loads(bytes(message.payload))  # type: ignore[arg-type]
                        if data.get("state") == "online":
                            return data
        except TimeoutError:
            raise
        except aiomqtt.MqttError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def anonymous_refused(broker: Mosquitto) -> bool:
    try:
        async with aiomqtt.Client(broker.host, broker.port, identifier=f"anon-{secrets.token_hex(4)}"):
            return False
    except aiomqtt.MqttError:
        return True


def listeners(port: int) -> list[str]:
    """Local addresses listening on `port` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":
                found.append(address)
    return found


async def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with (aiohttp.ClientSession() as session,
                session.get(url, headers=headers or {}, timeout=aiohttp.ClientTimeout(total=10)) as response):
        return response.status, await response.text()


async def run(args: argparse.Namespace, report: dict[str, Any]) -> None:
    data = Path(args.data)
    options = json.loads((data / "options.json").read_text())
    prefix = options.get("topic_prefix", "hearth")
    broker = Mosquitto(users={USER: PASSWORD}).start()
    seen: list[dict[str, Any]] = []
    runner = web.AppRunner(services_api(broker, seen))
    await runner.setup()
    supervisor_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", supervisor_port).start()
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEARTH_")}
    env.update({"SUPERVISOR_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)})
    log = (data.parent / "addon.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge.addon", "--data-dir", str(data),
        "--supervisor", f"http://127.0.0.1:{supervisor_port}", cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        started = time.monotonic()
        status_task = asyncio.create_task(retained_status(broker, prefix, 90))
        done, _ = await asyncio.wait({status_task, asyncio.create_task(proc.wait())},
                                     return_when=asyncio.FIRST_COMPLETED)
        if status_task not in done:
            status_task.cancel()
            report["exit_before_online"] = proc.returncode
            return
        report["status"] = status_task.result()
        report["online_after_s"] = round(time.monotonic() - started, 2)
        report["supervisor_requests"] = seen
        report["anonymous_refused"] = await anonymous_refused(broker)
        report["process"] = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[1:4]
        report["process"] = [part.decode() for part in report["process"]]
        report["env_has_password"] = PASSWORD.encode() in Path(f"/proc/{proc.pid}/environ").read_bytes()
        report["status_listeners"] = listeners(STATUS_PORT)
        report["healthz"] = await http_get(f"http://127.0.0.1:{STATUS_PORT}/healthz")
        # What Supervisor's ingress proxy forwards: the browser's Host header and the path prefix.
        # It comes from Supervisor's address on the add-on network (given to this namespace's lo).
        report["ingress_like"] = (await http_get(
            f"http://{SUPERVISOR_INGRESS}:{STATUS_PORT}/status",
            {"Host": "homeassistant.local:8123", "X-Ingress-Path": "/api/hassio_ingress/abc123",
             "X-Forwarded-For": "192.168.1.20, 172.30.32.1"}))[0]
        report["not_ingress"] = (await http_get(
            f"http://{OTHER_ADDRESS}:{STATUS_PORT}/status",
            {"Host": "homeassistant.local:8123", "X-Ingress-Path": "/api/hassio_ingress/abc123"}))[0]
        await asyncio.sleep(1.0)  # the policy and the counters are saved within a second of starting
        report["config_text"] = (data / "hearth-bridge.yaml").read_text()
        report["files"] = sorted(p.name for p in data.iterdir())
        report["password_in_files"] = any(PASSWORD in p.read_text(errors="replace") for p in data.iterdir() if p.is_file())
        proc.send_signal(signal.SIGTERM)
        report["exit_code"] = await asyncio.wait_for(proc.wait(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
        report["log_tail"] = (data.parent / "addon.log").read_text(errors="replace")[-3000:]
        await runner.cleanup()
        broker.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="the add-on's /data, with options.json")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    report: dict[str, Any] = {}
    try:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        # Supervisor's address on the add-on network, and some other one, both only in this namespace
        for address in (SUPERVISOR_INGRESS, OTHER_ADDRESS):
            subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
        report["netns"] = os.readlink("/proc/self/ns/net")
        asyncio.run(run(args, report))
    except Exception:  # noqa: BLE001 - the report carries it to the test
        report["error"] = traceback.format_exc()
    Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
