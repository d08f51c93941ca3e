"""The status page in headless Chromium (Debian's chromium and chromedriver, driven by Selenium)
against a real bridge process and Mosquitto while a simulated satellite speaks real speech: the
satellite appears, its state goes to listening and back to idle, the latency the bridge
published shows, a mute set over MQTT shows within a second, and the words are not on the page.
The same again under a path prefix, through a small reverse proxy that does what Home
Assistant's ingress does (X-Ingress-Path, the browser's Host header, a source address of its own).

Set HEARTH_STATUS_SCREENSHOT to a file name to keep a screenshot of the page (docs/images/).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.config import ConfigError, load, validate
from bridge.service import build_bridge
from bridge.status_api import build_app
from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite
from tests.support.bridge_proc import BridgeProcess, Probe
from tests.support.signing import signed
from tests.support.broker import Mosquitto, free_port
from tests.support.speech import have_espeak

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:  # the test extra installs it
    webdriver = None

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
browser = pytest.mark.skipif(webdriver is None or not (CHROMIUM and CHROMEDRIVER) or not have_espeak(),
                             reason="selenium, Debian's chromium and chromium-driver, and espeak-ng are needed")

INGRESS_SOURCE = "127.0.0.2"  # the proxy connects from here, as Supervisor does from 172.30.32.2
INGRESS_PATH = "/api/hassio_ingress/0123456789abcdef"
HA_NAME = "homeassistant.local"  # the browser reaches "Home Assistant" (the proxy) by this name
COMMAND = "turn on the kitchen light"

# Records every state a satellite's row shows, however briefly (the page redraws on each event).
RECORDER = """
window.__states = window.__states || {};
const body = document.querySelector('#satellites tbody');
new MutationObserver(() => {
  for (const row of body.querySelectorAll('tr[data-satellite]')) {
    const id = row.dataset.satellite, state = row.querySelector('td.state').textContent;
    const seen = window.__states[id] || (window.__states[id] = []);
    if (seen[seen.length - 1] !== state) seen.push(state);
  }
}).observe(body, {childList: true, subtree: true});
"""


@dataclass
class IngressProxy:
    """A reverse proxy like Home Assistant's ingress, in a thread of its own (Selenium blocks)."""

    upstream: str
    port: int = field(default_factory=free_port)
    paths: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return f"{HA_NAME}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}{INGRESS_PATH}/"

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        """As Home Assistant 2026.2's ingress does: the browser's headers (Host included) plus
        X-Ingress-Path, WebSockets passed on, and streamed text responses compressed."""
        self.paths.append(request.path)
        tail = request.match_info["tail"]
        skip = ("accept-encoding", "content-length", "sec-websocket-extensions", "sec-websocket-protocol",
                "sec-websocket-version", "sec-websocket-key", "connection", "upgrade")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        headers.update({"X-Ingress-Path": INGRESS_PATH, "X-Hass-Source": "core.ingress",
                        "X-Forwarded-For": request.remote or ""})
        connector = aiohttp.TCPConnector(local_addr=(INGRESS_SOURCE, 0))
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await self._websocket(request, session, f"{self.upstream}/{tail}", headers)
            async with session.get(f"{self.upstream}/{tail}", headers=headers, params=request.query,
                                   allow_redirects=False) as upstream:
                response = web.StreamResponse(status=upstream.status, headers={
                    k: v for k, v in upstream.headers.items() if k.lower() not in ("content-length", "transfer-encoding",
                                                                                    "content-encoding")})
                if upstream.headers.get("Content-Type", "").startswith("text/"):
                    response.enable_compression()
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                return response

    @staticmethod
    async def _websocket(request: web.Request, session: aiohttp.ClientSession, url: str,
                         headers: dict[str, str]) -> web.WebSocketResponse:
        browser = web.WebSocketResponse()
        await browser.prepare(request)
        async with session.ws_connect(url.replace("http://", "ws://"), headers=headers) as bridge:
            async def up() -> None:
                async for message in browser:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        await bridge.send_str(message.data)
                await bridge.close()

            task = asyncio.create_task(up())
            async for message in bridge:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await browser.send_str(message.data)
            task.cancel()
        await browser.close()
        return browser

    def start(self) -> IngressProxy:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_get(INGRESS_PATH + "/{tail:.*}", self._forward)
            runner = web.AppRunner(app, shutdown_timeout=1)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="ingress-proxy", daemon=True)
        self._thread.start()
        assert ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


@dataclass
class Live:
    broker: Mosquitto
    bridge: BridgeProcess
    url: str
    proxy: IngressProxy
    driver: Any


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp_path_factory.mktemp("page") / "data",
                           args=["--set", f"status_api.ingress_source={INGRESS_SOURCE}"])
    proxy = None
    driver = None
    try:
        url = bridge.start().wait_online()["status_api"]
        proxy = IngressProxy(url).start()
        options = Options()
        options.binary_location = CHROMIUM or ""
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-pings", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
                    f"--host-resolver-rules=MAP {HA_NAME} 127.0.0.1",
                    # anything but this machine would go to a proxy that is not there: nothing leaves
                    "--proxy-server=http://127.0.0.1:9", f"--proxy-bypass-list={HA_NAME};127.0.0.1;localhost"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(20)
        yield Live(broker, bridge, url, proxy, driver)
    finally:
        if driver is not None:
            driver.quit()
        if proxy is not None:
            proxy.stop()
        bridge.stop()
        broker.close()


def wait_until(what: str, check: Any, timeout: float = 10.0, interval: float = 0.03) -> Any:
    """Polls `check()` until it returns something true; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def cell(driver: Any, sat: str, name: str) -> str | None:
    """A cell of the satellite's row, read in one step (the page redraws its rows on every event)."""
    text = driver.execute_script("const td = document.querySelector(arguments[0]); return td ? td.textContent : null;",
                                 f'tr[data-satellite="{sat}"] td.{name}')
    return None if text is None else str(text)


async def set_policy(live: Live, change: dict[str, Any]) -> float:
    """Changes the policy over MQTT; returns when the change was sent (time.monotonic())."""
    async with Probe(live.broker.host, live.broker.port, ["hearth/bridge/policy/result"]) as probe:
        request_id = uuid.uuid4().hex[:8]
        sent = time.monotonic()
        await probe.client.publish("hearth/bridge/policy/set", signed(live.bridge.data_dir, "hearth/bridge/policy/set",
                                                                      {"request_id": request_id, **change}), qos=1)
        result = await probe.wait_for("policy/result", lambda d: d.get("request_id") == request_id)
        assert result["ok"] is True, result
    return sent


def screenshot_while_listening(driver: Any, sat: str, path: str) -> None:
    """Waits for the satellite to be heard (listening, with an input level), then keeps a screenshot."""
    def heard() -> bool:
        level = (cell(driver, sat, "level") or "").removeprefix("–").removesuffix(" dB")
        return cell(driver, sat, "state") == "listening" and bool(level) and float(level) > -50

    wait_until("listening to speech", heard, 15.0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(path)


async def speak_and_watch(live: Live, page_url: str, sat: str, say: Any, screenshot: str | None = None) -> None:
    driver = live.driver
    await asyncio.to_thread(driver.get, page_url)
    await asyncio.to_thread(wait_until, "the live badge", lambda: driver.find_element(By.ID, "live").text == "live")
    await asyncio.to_thread(wait_until, "the bridge's version",
                            lambda: "0.1.0" in driver.find_element(By.ID, "bridge-version").text)
    assert driver.find_element(By.ID, "policy-local-only").text == "yes"
    assert driver.find_element(By.ID, "policy-retention").text == "none"
    engines = driver.find_element(By.ID, "engines").text
    assert "pocketsphinx" in engines and "in process" in engines
    grammar = driver.find_element(By.ID, "bridge-grammar").text
    assert "states" in grammar and "compiled in" in grammar, grammar
    await asyncio.to_thread(driver.execute_script, RECORDER)

    pcm = load_wav_pcm16k(say(COMMAND))
    async with Probe(live.broker.host, live.broker.port, [f"hearth/satellite/{sat}/transcript"]) as probe:
        shot = asyncio.create_task(asyncio.to_thread(screenshot_while_listening, driver, sat, screenshot)) \
            if screenshot else None
        result = await run_satellite(SatelliteOptions(sat_id=sat, host=live.broker.host, port=live.broker.port,
                                                      trailing_silence=1.0), pcm)
        transcript = await probe.wait_for("/transcript")
        if shot is not None:
            await shot
    assert result["transcript"] == COMMAND

    published = transcript["timings"]["end_of_speech_to_text_ms"]
    shown = await asyncio.to_thread(wait_until, "the latency", lambda: (cell(driver, sat, "latency") or "–") != "–"
                                    and cell(driver, sat, "latency"))
    assert abs(int(shown.removesuffix(" ms")) - published) <= 1, (shown, published)
    await asyncio.to_thread(wait_until, "idle again", lambda: cell(driver, sat, "state") == "idle")
    states = driver.execute_script(f"return window.__states[{json.dumps(sat)}]")
    assert "listening" in states and states[-1] == "idle", states
    assert states.index("listening") < len(states) - 1
    assert cell(driver, sat, "utterances") == "1" and cell(driver, sat, "rejections") == "0"
    assert cell(driver, sat, "protocol") == "hearth"
    await asyncio.to_thread(wait_until, "offline",  # the simulated satellite says goodbye when done
                            lambda: cell(driver, sat, "online") == "no", 3.0)
    summary = driver.find_element(By.ID, "latency-summary").text
    assert "utterance" in summary and "median" in summary, summary
    counted = driver.execute_script("return Array.from(document.querySelectorAll('#latency rect.bar'))"
                                    ".reduce((n, bar) => n + Number(bar.dataset.count), 0);")
    total = int(summary.split(" ", 1)[0])
    assert counted == total >= 1

    # a mute set over MQTT shows within a second
    sent = await set_policy(live, {"microphones": {sat: {"muted": True}}})
    await asyncio.to_thread(wait_until, "the mute", lambda: cell(driver, sat, "muted") == "muted", 3.0)
    shown_after = time.monotonic() - sent
    assert shown_after < 1.0, shown_after
    assert sat in driver.find_element(By.ID, "policy-mutes").text
    await set_policy(live, {"microphones": {sat: {"muted": False}}})
    await asyncio.to_thread(wait_until, "the unmute", lambda: cell(driver, sat, "muted") == "on", 3.0)

    # retention is "none": what was said is nowhere on the page
    page_text = driver.find_element(By.TAG_NAME, "body").text.lower()
    assert COMMAND not in page_text and "kitchen light" not in page_text


@browser
async def test_the_page_follows_a_speaking_satellite(live: Live, say: Any) -> None:
    await speak_and_watch(live, live.url + "/", "page-direct", say)


@browser
async def test_the_page_under_ingress(live: Live, say: Any) -> None:
    # HEARTH_STATUS_SCREENSHOT: a screenshot of the page while this satellite is heard
    await speak_and_watch(live, live.proxy.url, "page-ingress", say, os.environ.get("HEARTH_STATUS_SCREENSHOT"))
    driver = live.driver
    assert driver.current_url == live.proxy.url
    base = driver.find_element(By.TAG_NAME, "base").get_attribute("href")
    assert base == live.proxy.url
    # everything the page loaded came through the prefix
    for path in ("/", "/static/app.js", "/static/style.css", "/ws"):
        assert INGRESS_PATH + path in live.proxy.paths, (path, live.proxy.paths)
    async with aiohttp.ClientSession() as session:
        # the browser's Host header is accepted from the ingress source only
        async with session.get(live.url + "/page.json", headers={"Host": live.proxy.host}) as refused:
            assert refused.status == 421
        # a WebSocket opened by another site's page is refused; the server-sent events answer too
        with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
            await session.ws_connect(live.url.replace("http://", "ws://") + "/ws",
                                     headers={"Origin": "http://evil.example"})
        assert foreign.value.status == 403
        async with session.get(live.url + "/events") as events:
            assert events.headers["Content-Type"] == "text/event-stream"
            while not (line := await events.content.readline()).startswith(b"data: "):
                pass
            figures = json.loads(line.removeprefix(b"data: "))
            assert {"page-direct", "page-ingress"} <= {sat["id"] for sat in figures["satellites"]}


@browser
async def test_the_words_show_only_while_their_audio_is_retained(live: Live, say: Any) -> None:
    """Retention "memory": the last words show beside the satellite, and go with the retained
    audio (a purge of the history) and with retention itself (back to "none")."""
    driver, sat = live.driver, "page-memory"
    said = f"last heard: “{COMMAND}”"
    pcm = load_wav_pcm16k(say(COMMAND))

    def page_text() -> str:
        return str(driver.find_element(By.TAG_NAME, "body").text)

    async def speak() -> None:
        result = await run_satellite(SatelliteOptions(sat_id=sat, host=live.broker.host, port=live.broker.port,
                                                      trailing_silence=1.0), pcm)
        assert result["transcript"] == COMMAND
        await asyncio.to_thread(wait_until, "the words", lambda: said in page_text())

    await asyncio.to_thread(driver.get, live.url + "/")
    await asyncio.to_thread(wait_until, "the live badge", lambda: driver.find_element(By.ID, "live").text == "live")
    assert COMMAND not in page_text()
    await set_policy(live, {"retention": "memory"})
    try:
        await asyncio.to_thread(wait_until, "retention memory",
                                lambda: driver.find_element(By.ID, "policy-retention").text == "memory")
        await speak()
        async with Probe(live.broker.host, live.broker.port, ["hearth/bridge/policy/result"]) as probe:
            await probe.client.publish("hearth/bridge/history/purge", signed(
                live.bridge.data_dir, "hearth/bridge/history/purge", {"request_id": "purge-1"}), qos=1)
            purged = await probe.wait_for("policy/result", lambda d: d.get("request_id") == "purge-1")
        assert purged["ok"] is True and purged["purged"] >= 1, purged
        await asyncio.to_thread(wait_until, "the words purged", lambda: COMMAND not in page_text(), 3.0)
        await speak()
    finally:
        sent = await set_policy(live, {"retention": "none"})
    await asyncio.to_thread(wait_until, "the words gone", lambda: COMMAND not in page_text(), 3.0)
    assert time.monotonic() - sent < 1.5
    async with aiohttp.ClientSession() as session, session.get(live.url + "/page.json") as response:
        assert COMMAND not in await response.text()


async def test_who_may_ask_when_an_ingress_source_is_configured(tmp_path: Path) -> None:
    """The guard's decisions by client address (set by a middleware in front of it, as the
    socket's peer address cannot be chosen on loopback) and Host header."""
    bridge = build_bridge(validate({"data_dir": str(tmp_path), "bridge_id": "guard", "status_api": {"enabled": False},
                                    "tts": {"engine": "none"}}))

    @web.middleware
    async def peer(request: web.Request, handler: Any) -> web.StreamResponse:
        return await handler(request.clone(remote=request.headers["X-Test-Peer"]))

    async def ask(app: web.Application, peer_address: str, host: str, path: str = "/page.json",
                  **headers: str) -> tuple[int, str]:
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with aiohttp.ClientSession() as session, session.get(
                    f"http://127.0.0.1:{port}{path}", headers={"Host": host, "X-Test-Peer": peer_address, **headers}) as r:
                return r.status, await r.text()
        finally:
            await runner.cleanup()

    def app(ingress: str | None) -> web.Application:
        from bridge.status_api import HostCheck

        made = build_app(bridge, HostCheck("0.0.0.0"), ingress_source=ingress)  # noqa: S104 - a name
        made.middlewares.insert(0, peer)
        return made

    try:
        ha = "homeassistant.local:8123"
        assert (await ask(app("172.30.32.2"), "172.30.32.2", ha))[0] == 200  # ingress: the browser's Host
        assert (await ask(app("172.30.32.2"), "::ffff:172.30.32.2", ha))[0] == 200
        assert (await ask(app("172.30.32.2"), "192.168.1.20", "192.168.1.5:8765"))[0] == 403  # the LAN: no
        assert (await ask(app("172.30.32.2"), "127.0.0.1", "127.0.0.1:8765"))[0] == 200  # this machine: yes
        assert (await ask(app("172.30.32.2"), "127.0.0.1", ha))[0] == 421  # a foreign name from elsewhere
        assert (await ask(app(None), "172.30.32.2", ha))[0] == 421  # no ingress configured: no exemption
        assert (await ask(app(None), "192.168.1.20", "192.168.1.5:8765"))[0] == 200  # bound to all, no ingress
        # the ingress path becomes the page's base, and nothing else does
        status, page = await ask(app("172.30.32.2"), "172.30.32.2", ha, "/", **{"X-Ingress-Path": "/api/hassio_ingress/abc_-1"})
        assert status == 200 and '<base href="/api/hassio_ingress/abc_-1/">' in page
        for bad in ('/x"><script>alert(1)</script>', "//evil.example/x", "/a/../b", "relative"):
            status, page = await ask(app("172.30.32.2"), "172.30.32.2", ha, "/", **{"X-Ingress-Path": bad})
            assert status == 200 and "<base" not in page, bad
    finally:
        await bridge.close()


def test_ingress_source_must_be_an_address() -> None:
    assert validate({"status_api": {"ingress_source": "172.30.32.2"}}).status_api.ingress_source == "172.30.32.2"
    assert validate({}).status_api.ingress_source is None
    assert load(None, {"status_api.ingress_source": "::ffff:ac1e:2002"}).status_api.ingress_source == "::ffff:172.30.32.2"
    with pytest.raises(ConfigError, match="ingress_source"):
        load(None, {"status_api.ingress_source": "supervisor"})
