"""Screenshots of the Hearth bridge's and a satellite's device pages in a real Home Assistant.

Run through `scripts/screenshots` (it builds the environment). Everything runs on this machine,
on loopback addresses: a real Mosquitto, the real bridge (`python -m bridge run`), Home Assistant
itself (`hass`, with its frontend) set up through its own onboarding and config-flow APIs, a
simulated satellite "kitchen" that says "okay nabu, turn on the kitchen light" (espeak-ng speech),
and headless Chromium, which saves the two pages as PNG files:

    docs/images/bridge-device.png
    docs/images/satellite-device.png

Options: --out DIR (default: this folder), --keep (keep the scratch folder, print its path).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as paho
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bridge.recognition.vocabulary import parse_vocabulary
from bridge.tools.satellite import SatelliteOptions, run_satellite
from tests.support.bridge_proc import BridgeProcess
from tests.support.broker import Mosquitto, free_port
from tests.support.speech import read_pcm, synthesize

BRIDGE_ID = "home"
SATELLITE = "kitchen"
LIGHT = "light.kitchen_light"
COMMAND = "okay nabu, turn on the kitchen light"
WIDTH, HEIGHT = 1280, 2000  # the window; each image ends a margin below and right of the cards
SIDEBAR, MARGIN = 260, 33
USER, PASSWORD = "demo", "hearth-screenshots"

CONFIGURATION = """\
homeassistant:
  name: Home
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: NL
  currency: EUR
  language: en
http:
  server_host: 127.0.0.1
  server_port: {port}
frontend:
config:
conversation:
logger:
  default: warning
template:
  - light:
      - name: Kitchen light
        unique_id: screenshots-kitchen-light
        turn_on: []
        turn_off: []
"""

# Onboarding's core-config step would set up integrations that fetch from the internet (weather,
# radio, cloud speech); they are marked done here, the user and integration steps go through the API.
ONBOARDING = {
    "version": 4,
    "minor_version": 1,
    "key": "onboarding",
    "data": {"done": ["core_config", "analytics"]},
}

# `hass`, without its check for Python 3.13.2: this project's Python is 3.13.0, on which
# Home Assistant runs (as in the tests).
LAUNCH_HASS = """
import sys
import homeassistant.__main__ as ha_main
ha_main.validate_python = lambda: None
sys.argv[0] = "hass"
sys.exit(ha_main.main())
"""

# Collects the text of the page through every shadow root (Home Assistant's UI is web components).
DEEP_TEXT = """
const out = [];
const walk = (node) => {
  if (node.nodeType === Node.TEXT_NODE) { out.push(node.textContent); return; }
  if (node.shadowRoot) walk(node.shadowRoot);
  for (const child of node.childNodes) walk(child);
};
walk(document.documentElement);
return out.join(' ').replace(/\\s+/g, ' ');
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class HomeAssistant:
    """`hass -c <config>` on a loopback port, and a client for its REST and websocket APIs."""

    def __init__(self, config: Path, port: int) -> None:
        self.config, self.port = config, port
        self.url = f"http://127.0.0.1:{port}"
        self.client_id = f"{self.url}/"
        self.proc: subprocess.Popen[bytes] | None = None
        self.tokens: dict[str, Any] = {}
        self.session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_id = 0

    def write_config(self) -> None:
        self.config.mkdir(parents=True, exist_ok=True)
        (self.config / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        (self.config / ".storage").mkdir(exist_ok=True)
        (self.config / ".storage" / "onboarding").write_text(json.dumps(ONBOARDING))
        components = self.config / "custom_components"
        components.mkdir(exist_ok=True)
        shutil.copytree(
            ROOT / "custom_components" / "hearth",
            components / "hearth",
            ignore=shutil.ignore_patterns("__pycache__"),
        )

    def spawn(self) -> None:
        with open(self.config / "hass.out", "ab") as logfile:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", LAUNCH_HASS, "-c", str(self.config), "--skip-pip"],
                stdout=logfile,
                stderr=subprocess.STDOUT,
            )

    async def start(self) -> None:
        self.spawn()
        self.session = aiohttp.ClientSession()
        deadline = time.monotonic() + 240
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hass exited: see {self.config / 'hass.out'}")
            try:
                async with self.session.get(f"{self.url}/api/onboarding") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("Home Assistant did not start in 240 s")
            await asyncio.sleep(1)

    async def onboard(self) -> None:
        """The owner user, its tokens, and the last onboarding step."""
        assert self.session is not None
        async with self.session.post(
            f"{self.url}/api/onboarding/users",
            json={
                "client_id": self.client_id,
                "name": "Demo",
                "username": USER,
                "password": PASSWORD,
                "language": "en",
            },
        ) as response:
            response.raise_for_status()
            code = (await response.json())["auth_code"]
        async with self.session.post(
            f"{self.url}/auth/token",
            data={"grant_type": "authorization_code", "code": code, "client_id": self.client_id},
        ) as response:
            response.raise_for_status()
            self.tokens = await response.json()
        await self.post(
            "/api/onboarding/integration",
            {"client_id": self.client_id, "redirect_uri": f"{self.url}/?auth_callback=1"},
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        assert self.session is not None
        async with self.session.post(
            f"{self.url}{path}", json=body, headers=self.headers
        ) as response:
            data = await response.json(content_type=None)
            if response.status >= 400:
                raise RuntimeError(f"POST {path}: {response.status} {data}")
            return data

    async def get(self, path: str) -> Any:
        assert self.session is not None
        async with self.session.get(f"{self.url}{path}", headers=self.headers) as response:
            return await response.json(content_type=None) if response.status == 200 else None

    async def ws(self, message: dict[str, Any]) -> Any:
        assert self.session is not None
        if self._ws is None:
            self._ws = await self.session.ws_connect(f"{self.url}/api/websocket")
            await self._ws.receive_json()  # auth_required
            await self._ws.send_json({"type": "auth", "access_token": self.tokens["access_token"]})
            if (await self._ws.receive_json()).get("type") != "auth_ok":
                raise RuntimeError("websocket authentication failed")
        self._ws_id += 1
        await self._ws.send_json({"id": self._ws_id, **message})
        while True:
            reply = await self._ws.receive_json()
            if reply.get("id") == self._ws_id and reply.get("type") == "result":
                if not reply.get("success"):
                    raise RuntimeError(f"{message['type']}: {reply.get('error')}")
                return reply.get("result")

    async def config_flow(self, handler: str, answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Run a config flow to its end; `answers` holds the input for each form step (by step id)."""
        result = await self.post(
            "/api/config/config_entries/flow", {"handler": handler, "show_advanced_options": False}
        )
        for _ in range(8):
            if result["type"] == "create_entry":
                return result
            if result["type"] == "menu":
                step = next(o for o in result["menu_options"] if o in answers)
                result = await self.post(
                    f"/api/config/config_entries/flow/{result['flow_id']}", {"next_step_id": step}
                )
            elif result["type"] == "form":
                if result.get("errors"):
                    raise RuntimeError(f"{handler} flow: {result['errors']}")
                result = await self.post(
                    f"/api/config/config_entries/flow/{result['flow_id']}",
                    answers.get(result["step_id"], {}),
                )
            else:
                raise RuntimeError(f"{handler} flow ended with {result}")
        raise RuntimeError(f"{handler} flow did not finish: {result}")

    async def state(self, entity_id: str) -> str | None:
        data = await self.get(f"/api/states/{entity_id}")
        return data["state"] if data else None

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self.session is not None:
            await self.session.close()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_vocabulary(broker: Mosquitto, timeout: float = 120) -> None:
    """Until the vocabulary Home Assistant publishes (with the light) is the one the bridge
    serves, and has held still for 3 s (the integration republishes after registry changes)."""
    published: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="screenshots-vocabulary")

    def on_message(_c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        try:
            data = json.loads(msg.payload)
        except ValueError:
            return
        (published if msg.topic.endswith("/vocabulary/set") else states).append(data)

    client.on_message = on_message
    client.on_connect = lambda c, *_: (
        c.subscribe("hearth/bridge/vocabulary/set"),
        c.subscribe("hearth/bridge/vocabulary/state"),
    )
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        stable_since: float | None = None
        seen = 0
        while time.monotonic() < deadline:
            ready = (
                published
                and states
                and LIGHT in {e["id"] for e in published[-1].get("entities", [])}
                and states[-1].get("status") == "ok"
                and states[-1].get("hash") == parse_vocabulary(published[-1]).hash()
            )
            if ready and len(published) == seen and stable_since is not None:
                if time.monotonic() - stable_since > 3:
                    return
            else:
                stable_since = time.monotonic() if ready else None
                seen = len(published)
            time.sleep(0.1)
        raise RuntimeError(f"vocabulary not in service: {states[-1:]}, {len(published)} published")
    finally:
        client.loop_stop()
        client.disconnect()


def announce_online(broker: Mosquitto) -> None:
    """The satellite tool leaves its retained status offline when it ends; a live satellite
    would still be there, so the status it announced (the bridge hears its wake word) is put
    back for the screenshot."""
    from bridge import PROTOCOL_VERSION

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="screenshots-satellite")
    client.connect(broker.host, broker.port)
    client.loop_start()
    info = client.publish(
        f"hearth/satellite/{SATELLITE}/status",
        json.dumps(
            {
                "state": "online",
                "protocol": PROTOCOL_VERSION,
                "name": SATELLITE,
                "audio": {"rate": 16000, "width": 2, "channels": 1},
                "capabilities": {"wake_word": False, "speaker": True, "mute": True},
            }
        ),
        qos=1,
        retain=True,
    )
    info.wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WIDTH},{HEIGHT}",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-pings",
        "--disable-domain-reliability",
        # anything but this machine would go to a proxy that is not there: nothing leaves
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1;localhost",
    ):
        options.add_argument(arg)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    return driver


def log_in(driver: Any, ha: HomeAssistant) -> None:
    """Gives the frontend the owner's tokens, as its own login would have stored them."""
    driver.get(f"{ha.url}/auth/authorize?response_type=code&client_id={ha.client_id}")
    tokens = {
        **ha.tokens,
        "hassUrl": ha.url,
        "clientId": ha.client_id,
        "expires": int(time.time() * 1000) + int(ha.tokens["expires_in"]) * 1000,
    }
    driver.execute_script("localStorage.setItem('hassTokens', arguments[0]);", json.dumps(tokens))


def shoot(driver: Any, url: str, expected: list[str], path: Path) -> None:
    driver.get(url)
    deadline = time.monotonic() + 90
    text = ""
    while time.monotonic() < deadline:
        text = driver.execute_script(DEEP_TEXT)
        if all(word in text for word in expected):
            break
        time.sleep(0.5)
    else:
        raise RuntimeError(
            f"{url}: {[w for w in expected if w not in text]} not shown; page text: {text[:2000]}"
        )
    time.sleep(3)  # let icons and relative times settle
    raw = path.with_suffix(".full.png")
    assert driver.save_screenshot(str(raw))
    right, bottom = content_box(raw)
    # Again with the window as tall as the cards, so that the sidebar ends where the page does.
    driver.set_window_size(WIDTH, HEIGHT + bottom + MARGIN - Image.open(raw).height)
    time.sleep(2)
    assert driver.save_screenshot(str(raw))
    image = Image.open(raw).convert("RGB")
    image = image.crop((0, 0, min(image.width, right + MARGIN), image.height))
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    raw.unlink()
    driver.set_window_size(WIDTH, HEIGHT)


def content_box(raw: Path) -> tuple[int, int]:
    """The right and bottom edges of the cards: the last column and row, right of the sidebar,
    that differ from the page's background."""
    image = Image.open(raw).convert("RGB")
    width, height = image.size
    background = image.getpixel((width - 5, height - 5))
    pixels = image.load()
    top = 60  # below the toolbar, which spans the window
    bottom = next(
        (
            y
            for y in range(height - 1, top, -1)
            if any(pixels[x, y] != background for x in range(SIDEBAR, width - 5, 3))
        ),
        height,
    )
    right = next(
        (
            x
            for x in range(width - 1, SIDEBAR, -1)
            if any(pixels[x, y] != background for y in range(top, height, 3))
        ),
        width,
    )
    return right, bottom


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="hearth-screenshots-"))
    broker = Mosquitto().start()
    bridge = BridgeProcess(
        broker.host,
        broker.port,
        scratch / "bridge",
        args=["--set", f"bridge_id={BRIDGE_ID}", "--set", "stt.workers=1"],
    )
    ha = HomeAssistant(scratch / "config", free_port())
    driver = None
    try:
        log(f"broker on {broker.port}; starting the bridge")
        await asyncio.to_thread(bridge.start)
        ha.write_config()
        log(f"starting Home Assistant on {ha.url} (config {ha.config})")
        await ha.start()
        await ha.onboard()
        log("onboarded; adding MQTT and Hearth through their config flows")
        await ha.config_flow("mqtt", {"broker": {"broker": broker.host, "port": broker.port}})
        await ha.config_flow("hearth", {"user": {"prefix": "hearth"}})
        kitchen = next(
            (
                a
                for a in await ha.ws({"type": "config/area_registry/list"})
                if a["name"] == "Kitchen"
            ),
            None,
        ) or await ha.ws({"type": "config/area_registry/create", "name": "Kitchen"})
        await ha.ws(
            {
                "type": "config/entity_registry/update",
                "entity_id": LIGHT,
                "area_id": kitchen["area_id"],
            }
        )
        await ha.ws(
            {
                "type": "homeassistant/expose_entity",
                "assistants": ["conversation"],
                "entity_ids": [LIGHT],
                "should_expose": True,
            }
        )
        log("waiting for the bridge to serve Home Assistant's vocabulary")
        await asyncio.to_thread(wait_vocabulary, broker)
        pcm = read_pcm(synthesize(COMMAND, scratch / "speech.wav", speed=150))
        log(f"satellite {SATELLITE!r} says {COMMAND!r}")
        result = await run_satellite(
            SatelliteOptions(
                sat_id=SATELLITE, host=broker.host, port=broker.port, wake="bridge", timeout=30
            ),
            pcm,
        )
        log(f"bridge heard {result.get('transcript')!r}, intent {result.get('intent')}")
        for _ in range(100):
            if await ha.state(LIGHT) == "on":
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"{LIGHT} did not turn on: {result}")
        await asyncio.to_thread(announce_online, broker)
        await asyncio.sleep(2)
        devices = await ha.ws({"type": "config/device_registry/list"})
        hearth = [d for d in devices if any(i[0] == "hearth" for i in d["identifiers"])]
        bridge_device = next(d for d in hearth if d["via_device_id"] is None)
        satellite_device = next(d for d in hearth if d["via_device_id"] == bridge_device["id"])
        # As its owner would: the satellite "kitchen" is named and placed in the kitchen.
        await ha.ws(
            {
                "type": "config/device_registry/update",
                "device_id": satellite_device["id"],
                "name_by_user": "Kitchen",
                "area_id": kitchen["area_id"],
            }
        )
        driver = await asyncio.to_thread(browser)
        await asyncio.to_thread(log_in, driver, ha)
        args.out.mkdir(parents=True, exist_ok=True)
        for device, expected, name in (
            (
                bridge_device,
                ["Audio retention", "Privacy mode", "Blocked cloud requests", "0 requests"],
                "bridge-device.png",
            ),
            (
                satellite_device,
                [
                    "Microphone",
                    "Wake word",
                    "Finished speaking detection",
                    "Assistant",
                    # the selects' translated states: the page shows raw ones until they load
                    "As in the Hearth options",
                    "Okay Nabu",
                ],
                "satellite-device.png",
            ),
        ):
            path = args.out / name
            await asyncio.to_thread(
                shoot, driver, f"{ha.url}/config/devices/device/{device['id']}", expected, path
            )
            log(f"wrote {path}")
    finally:
        if driver is not None:
            await asyncio.to_thread(driver.quit)
        await ha.stop()
        await asyncio.to_thread(bridge.stop)
        broker.close()
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
