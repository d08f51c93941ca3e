"""A small read-only HTTP status API (aiohttp): status, stats, policy, audit — content-free —
and, only while the owner has chosen retention "memory", the last few utterances for debugging.
It listens on 127.0.0.1 unless configured otherwise.

It also serves the status page (`/`, static files from `bridge/status_page/`, live figures over
a WebSocket `/ws` or as server-sent events `/events`, once from `/page.json`) and Prometheus metrics
(`/metrics`, `bridge.metrics`). The page uses relative URLs only, so it works at `/` and under
Home Assistant's ingress, whose path prefix (`X-Ingress-Path`) becomes the page's base. Ingress
requests come from the Supervisor's address with the browser's Host header: when
`status_api.ingress_source` names that address, its requests skip the Host check and any other
address than it and loopback is refused (403).

It answers only requests addressed to it by a name it knows (the configured host, localhost, the
loopback addresses, the address it is bound to; any IP address when bound to all of them), so a
web page that rebinds its own DNS name to this machine cannot read it (421, counted). Slow
clients cannot hold it: a connection must send a whole request within `HEADER_TIMEOUT` seconds,
idle connections close after `KEEPALIVE_TIMEOUT`, a handler gets `HANDLER_TIMEOUT`, and at most
`MAX_CONNECTIONS` are kept. Malformed requests are the client's problem and are logged at debug
level in one line; a failing handler is logged as an error with its traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import socket
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from . import PROTOCOL_VERSION, __version__
from .audio.wav import make_wav
from .protocol.messages import JsonObject

if TYPE_CHECKING:
    from aiohttp.web_protocol import RequestHandler

    from .service import Bridge

_LOGGER = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0  #: seconds a new connection has to send a whole request
KEEPALIVE_TIMEOUT = 5.0  #: seconds an idle connection is kept after a response
HANDLER_TIMEOUT = 10.0  #: seconds one request may take
MAX_CONNECTIONS = 64  #: open connections kept; the oldest without a request go first
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
EVENT_INTERVAL = 0.25  #: seconds between checks for news on an event stream
EVENT_KEEPALIVE = 10.0  #: seconds after which an unchanged page still gets its figures again
LEVEL_FRESH = 2.0  #: seconds an input level is shown after the last audio it was measured on
MAX_EVENT_STREAMS = 16  #: event streams served at once (each is one open page)
WS_CLOSE_TIMEOUT = 1.0  #: seconds a closing page has to answer the close of its WebSocket
PAGE_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
#: an ingress path as Supervisor sends it (`/api/hassio_ingress/<token>`); anything else is ignored
INGRESS_PATH = re.compile(r"/[A-Za-z0-9_\-./]{0,200}")
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names, not a bind

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def host_name(header: str) -> str:
    """The name in a Host header, lower case, without port, brackets or a trailing dot."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        name = value[1:end] if end > 0 else value
    elif value.count(":") == 1:
        name = value.split(":", 1)[0]
    else:
        name = value  # a name, or a bare IPv6 address
    return name.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostCheck:
    """Which Host headers the API answers (DNS rebinding: a page's own name, pointed here)."""

    def __init__(self, configured: str, bound: Iterable[str] = ()) -> None:
        self.wildcard = host_name(configured) in WILDCARD_HOSTS
        names = {*LOOPBACK_NAMES, host_name(configured)}
        if self.wildcard:  # reachable from the network by this machine's own names too
            own = socket.gethostname().lower()
            names |= {own, f"{own}.local"}
        self.names = frozenset(n for n in names if n)
        self.bind(bound)

    def bind(self, addresses: Iterable[str]) -> None:
        """Adds the addresses the server is bound to (known once it listens)."""
        self.names |= {host_name(a) for a in addresses if host_name(a) not in WILDCARD_HOSTS}

    def allows(self, header: str | None) -> bool:
        if header is None:
            return True  # no browser leaves it out; a plain client (HTTP/1.0, curl -H 'Host:') may
        name = host_name(header)
        return name in self.names or (self.wildcard and _is_ip(name))


class _HttpLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server log with client faults demoted: a malformed request or a client that
    went away is logged at debug level in one line, any other failure as an error."""

    def exception(self, msg: object, *args: object, exc_info: object = True, stack_info: bool = False,
                  stacklevel: int = 1, extra: Mapping[str, object] | None = None, **kwargs: object) -> None:
        err = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(err, (HttpProcessingError, ConnectionError)):
            self.logger.debug(f"{msg}: %s", *args, err)
        else:
            self.logger.error(msg, *args, exc_info=err if err is not None else True)


class _Connections:
    """Closes connections that hold the server: no whole request in time, or too many."""

    def __init__(self, runner: web.AppRunner, header_timeout: float) -> None:
        self.runner = runner
        self.header_timeout = header_timeout
        self.first_seen: dict[RequestHandler, float] = {}
        self.served: set[RequestHandler] = set()
        self.closed = 0

    def request_started(self, request: web.Request) -> None:
        self.served.add(request.protocol)

    def sweep(self) -> None:
        server = self.runner.server
        if server is None:
            return
        now = time.monotonic()
        handlers = list(server.connections)
        live = set(handlers)
        self.first_seen = {h: t for h, t in self.first_seen.items() if h in live}
        self.served &= live
        waiting: list[tuple[float, RequestHandler]] = []
        for handler in handlers:
            seen = self.first_seen.setdefault(handler, now)
            if handler not in self.served:
                waiting.append((seen, handler))
        waiting.sort(key=lambda item: item[0])
        excess = len(handlers) - MAX_CONNECTIONS
        for seen, handler in waiting:
            if now - seen >= self.header_timeout or excess > 0:
                excess -= 1
                self.closed += 1
                handler.force_close()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.header_timeout / 2))
            self.sweep()


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IP address without its zone, IPv4-mapped IPv6 as IPv4; ValueError when it is none."""
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and _address(address).is_loopback
    except ValueError:
        return False


def _same_address(address: str | None, configured: str) -> bool:
    try:
        return address is not None and _address(address) == _address(configured)
    except ValueError:
        return False


def ingress_base(request: web.Request) -> str | None:
    """The path prefix ingress serves the page under (`X-Ingress-Path`), or None."""
    path = request.headers.get("X-Ingress-Path", "").rstrip("/")
    return path if path and INGRESS_PATH.fullmatch(path) and "//" not in path and ".." not in path else None


def page_figures(bridge: Bridge) -> JsonObject:
    """What the status page shows, content-free: the words of an utterance only while retention
    is "memory"."""
    metrics = bridge.metrics
    policy = bridge.policy
    counters = bridge.audit.counters
    now = time.monotonic()
    satellites: list[JsonObject] = []
    for sat_id, sat in sorted(bridge.satellites.items()):
        figures = metrics.figures(sat_id)
        fresh = sat.online and figures.level_db is not None and now - figures.level_at < LEVEL_FRESH
        satellites.append({
            "id": sat_id, "online": sat.online, "protocol": str(sat.protocol), "state": str(sat.state),
            "muted": bridge.is_muted(sat_id), "area": sat.area, "level_db": figures.level_db if fresh else None,
            "latency_ms": figures.latency_ms, "utterances": figures.utterances, "rejections": figures.rejections,
            **({"text": figures.text} if figures.text is not None else {}),
        })
    mqtt = bridge.settings.mqtt
    return {
        "bridge": {
            "id": bridge.bridge_id, "version": __version__, "protocol": PROTOCOL_VERSION,
            "state": "online" if bridge.connected.is_set() else "disconnected",
            "uptime_seconds": round(time.time() - metrics.started),
            "broker": {"host": mqtt.host, "port": mqtt.port, "tls": mqtt.tls.enabled,
                       "connected": bridge.connected.is_set(), "address_class": bridge.link.broker_address_class(),
                       "reconnects": bridge.link.reconnects},
            "engines": bridge.engines_description(),
            "vocabulary": bridge.vocabulary_state,
        },
        "policy": {"local_only": policy.local_only, "privacy_mode": policy.privacy_mode,
                   "retention": str(policy.retention), "publish_transcripts": policy.publish_transcripts,
                   "revision": policy.revision,
                   "microphones": {sid: bridge.is_muted(sid) for sid in
                                   sorted({*policy.microphones, *bridge.satellites})}},
        "audit": {"blocked_cloud_requests": counters["blocked_cloud_requests"],
                  "bytes_off_lan": counters["bytes_off_lan"], "bytes_to_lan": counters["bytes_to_lan"],
                  "utterances": counters["utterances"]},
        "satellites": satellites,
        "latency": metrics.latency_histogram(),
    }


async def figure_updates(bridge: Bridge, closing: asyncio.Event) -> AsyncGenerator[str]:
    """The page's figures as JSON: at once, then whenever they change (checked on every change
    the bridge signals and every EVENT_INTERVAL), and at least every EVENT_KEEPALIVE."""
    with bridge.metrics.listener() as changed:
        last, sent_at = "", 0.0
        while not closing.is_set():
            body = json.dumps(page_figures(bridge), separators=(",", ":"))
            if body != last or time.monotonic() - sent_at >= EVENT_KEEPALIVE:
                yield body
                last, sent_at = body, time.monotonic()
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), EVENT_INTERVAL)
                await asyncio.sleep(0.02)  # let a burst of changes settle into one update
            except TimeoutError:
                pass


def _same_origin(request: web.Request) -> bool:
    """A browser's WebSocket is not bound by CORS: only a page of this server's own origin may
    open one (no Origin header: not a browser)."""
    origin = request.headers.get(hdrs.ORIGIN)
    return origin is None or urlsplit(origin).netloc.lower() == request.host.lower()


def _page_file(name: str) -> bytes:
    return resources.files("bridge").joinpath("status_page", name).read_bytes()


def build_app(bridge: Bridge, hosts: HostCheck | None = None,
              on_request: Callable[[web.Request], None] | None = None,
              ingress_source: str | None = None) -> web.Application:
    closing = asyncio.Event()
    streams = 0

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if on_request is not None:
            on_request(request)
        header = request.headers.get(hdrs.HOST)
        if ingress_source is not None and _same_address(request.remote, ingress_source):
            pass  # Supervisor's ingress proxy: it carries the browser's Host header
        elif ingress_source is not None and not _is_loopback(request.remote):
            raise web.HTTPForbidden(text="this server is reached through Home Assistant's ingress only")
        elif hosts is not None and not hosts.allows(header):
            bridge.report_error("status_api_host", f"status API request for host {header!r} refused "
                                "(only this machine's own names are answered)")
            raise web.HTTPMisdirectedRequest(text="this server answers only requests addressed to it by its own name")
        if request.path in ("/events", "/ws"):
            return await handler(request)  # a stream: it ends when the page goes or the server stops
        async with asyncio.timeout(HANDLER_TIMEOUT):
            return await handler(request)

    async def page(request: web.Request) -> web.Response:
        html = _page_file("index.html").decode()
        base = ingress_base(request)
        html = html.replace("<!--base-->", f'<base href="{base}/">' if base is not None else "")
        return web.Response(text=html, content_type="text/html",
                            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                                     "Content-Security-Policy": "default-src 'self'; style-src 'self'; "
                                     "img-src 'self' data:; frame-ancestors 'self'"})

    async def page_file(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in PAGE_FILES:
            raise web.HTTPNotFound()
        return web.Response(body=_page_file(name), content_type=PAGE_FILES[name],
                            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    async def figures(_: web.Request) -> web.Response:
        return web.json_response(page_figures(bridge), headers={"Cache-Control": "no-store"})

    async def events(request: web.Request) -> web.StreamResponse:
        """The page's figures as server-sent events: at once, then whenever they change."""
        nonlocal streams
        if streams >= MAX_EVENT_STREAMS:
            raise web.HTTPServiceUnavailable(text=f"at most {MAX_EVENT_STREAMS} open status pages")
        streams += 1
        try:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                                   "X-Accel-Buffering": "no"})
            await response.prepare(request)
            await response.write(b"retry: 2000\n\n")
            async with contextlib.aclosing(figure_updates(bridge, closing)) as updates:
                async for body in updates:
                    await response.write(f"data: {body}\n\n".encode())
            return response
        finally:
            streams -= 1

    async def socket(request: web.Request) -> web.WebSocketResponse:
        """The same figures over a WebSocket, which the page prefers: a proxy that compresses
        server-sent events holds them back (Home Assistant 2026.2's ingress compresses them)."""
        nonlocal streams
        if not _same_origin(request):
            raise web.HTTPForbidden(text="a WebSocket from another site's page is refused")
        if streams >= MAX_EVENT_STREAMS:
            raise web.HTTPServiceUnavailable(text=f"at most {MAX_EVENT_STREAMS} open status pages")
        streams += 1
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=1024, timeout=WS_CLOSE_TIMEOUT)
        try:
            await ws.prepare(request)

            async def drain() -> None:  # the page sends nothing; reading sees it close
                async for _message in ws:
                    pass

            reader = asyncio.get_running_loop().create_task(drain(), name="status-page-socket")
            try:
                async with contextlib.aclosing(figure_updates(bridge, closing)) as updates:
                    async for body in updates:
                        if reader.done() or ws.closed:
                            break
                        await ws.send_str(body)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
                await ws.close()
            return ws
        finally:
            streams -= 1

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=bridge.metrics.exposition(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def status(_: web.Request) -> web.Response:
        return web.json_response({
            "state": "online" if bridge.connected.is_set() else "disconnected",
            "version": __version__, "protocol": PROTOCOL_VERSION, "bridge_id": bridge.bridge_id,
            "engines": {"stt": bridge.stt.describe(), "tts": bridge.tts.describe() if bridge.tts else None},
            "vocabulary": bridge.vocabulary_state,
            "satellites": {sid: {"state": str(s.state), "online": s.online, "protocol": str(s.protocol),
                                 "muted": bridge.is_muted(sid)} for sid, s in bridge.satellites.items()},
        })

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(bridge.stats())

    async def policy(_: web.Request) -> web.Response:
        return web.json_response(bridge.policy.to_json())

    async def audit(_: web.Request) -> web.Response:
        return web.json_response(bridge.audit.to_json())

    async def health(_: web.Request) -> web.Response:
        ok = bridge.ready.is_set()
        body = {"ready": ok, "mqtt": bridge.connected.is_set()}
        return web.json_response(body, status=200 if ok else 503)

    async def retention(_: web.Request) -> web.Response:
        """What is kept in memory for debugging (only while retention is "memory")."""
        items = bridge.retention.items()
        return web.json_response({"retention": str(bridge.policy.retention), "utterances": [
            {"index": i, "time": u.time, "satellite": u.satellite, "session_id": u.session_id,
             "seconds": round(len(u.pcm) / 32000, 3)} for i, u in enumerate(items)]})

    async def retained_wav(request: web.Request) -> web.Response:
        items = bridge.retention.items()
        try:
            item = items[int(request.match_info["index"])]
        except (ValueError, IndexError):
            raise web.HTTPNotFound(text="no such retained utterance") from None
        return web.Response(body=make_wav(item.pcm), content_type="audio/wav",
                            headers={"Cache-Control": "no-store"})

    async def stop_streams(_: web.Application) -> None:
        closing.set()

    app = web.Application(middlewares=[guard])
    app.on_shutdown.append(stop_streams)
    app.add_routes([web.get("/status", status), web.get("/stats", stats), web.get("/policy", policy),
                    web.get("/audit", audit), web.get("/healthz", health), web.get("/retention", retention),
                    web.get("/retention/{index}.wav", retained_wav), web.get("/", page),
                    web.get("/static/{name}", page_file), web.get("/page.json", figures),
                    web.get("/events", events), web.get("/ws", socket), web.get("/metrics", metrics)])
    return app


async def start_status_api(bridge: Bridge, host: str, port: int, header_timeout: float = HEADER_TIMEOUT,
                           ingress_source: str | None = None) -> tuple[web.AppRunner, str]:
    """Serves the API; returns the runner (to stop it) and its URL (the real port when 0 was asked)."""
    hosts = HostCheck(host)
    connections: _Connections | None = None

    def on_request(request: web.Request) -> None:
        if connections is not None:
            connections.request_started(request)

    app = build_app(bridge, hosts, on_request, ingress_source)
    watchdog: asyncio.Task[None] | None = None

    async def stop_watchdog(_: web.Application) -> None:
        if watchdog is not None:
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)

    app.on_shutdown.append(stop_watchdog)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=KEEPALIVE_TIMEOUT,
                           logger=_HttpLog(logging.getLogger("bridge.status_api.http"), {}))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    server = site._server  # noqa: SLF001 - the real port when 0 was asked
    sockets = list(getattr(server, "sockets", None) or [])
    bound = [str(sock.getsockname()[0]) for sock in sockets]
    actual = sockets[0].getsockname()[1] if sockets else port
    hosts.bind(bound)
    connections = _Connections(runner, header_timeout)
    watchdog = asyncio.get_running_loop().create_task(connections.run(), name="status-api-connections")
    url_host = f"[{host}]" if ":" in host else host
    return runner, f"http://{url_host}:{actual}"
