"""The status API against hostile HTTP clients, over real sockets on 127.0.0.1: a foreign Host
header (DNS rebinding) is refused and counted, a client that never finishes its request is cut
off, and malformed requests are not logged as errors with tracebacks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from bridge.config import validate
from bridge.service import Bridge, build_bridge
from bridge.status_api import HostCheck, host_name, start_status_api


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Bridge, int]]:
    bridge = build_bridge(validate({"data_dir": str(tmp_path), "bridge_id": "api", "status_api": {"enabled": False},
                                    "tts": {"engine": "none"}}))
    runner: web.AppRunner
    runner, url = await start_status_api(bridge, "127.0.0.1", 0, header_timeout=1.0)
    try:
        yield bridge, int(urlsplit(url).port or 0)
    finally:
        await runner.cleanup()


async def request(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def get(path: str, host: str | None) -> bytes:
    header = f"Host: {host}\r\n" if host is not None else ""
    return f"GET {path} HTTP/1.1\r\n{header}Connection: close\r\n\r\n".encode()


async def test_only_requests_addressed_to_this_machine_are_answered(api: tuple[Bridge, int]) -> None:
    bridge, port = api
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}", "LOCALHOST."):
        assert status_of(await request(port, get("/status", host))) == 200, host
    for host in (f"evil.example:{port}", "127.0.0.1.nip.io", f"attacker.test:{port}", "[::2]"):
        assert status_of(await request(port, get("/retention/0.wav", host))) == 421, host
        assert status_of(await request(port, get("/status", host))) == 421, host
    assert bridge.errors.counts["status_api_host"] == 8


def test_host_names_and_a_wildcard_bind() -> None:
    assert [host_name(h) for h in ("Example.COM:80", "[::1]:8765", "::1", "localhost.", "10.0.0.5")] == [
        "example.com", "::1", "::1", "localhost", "10.0.0.5"]
    local = HostCheck("127.0.0.1", ["127.0.0.1"])
    assert local.allows("127.0.0.1:1") and not local.allows("192.168.1.9:8765") and not local.allows("evil.example")
    anywhere = HostCheck("0.0.0.0", ["0.0.0.0"])  # noqa: S104 - a name here, nothing is bound
    assert anywhere.allows("192.168.1.9:8765") and anywhere.allows("[fe80::1]") and not anywhere.allows("evil.example")
    named = HostCheck("hearth.lan")
    assert named.allows("hearth.lan:8765") and not named.allows("evil.example")


async def test_a_client_that_never_finishes_its_request_is_cut_off(api: tuple[Bridge, int]) -> None:
    _bridge, port = api
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    closed = asyncio.create_task(reader.read())
    try:
        writer.write(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        while not closed.done() and loop.time() - started < 6:
            try:
                writer.write(b"X-Slow: 1\r\n")  # a header line now and then, never the end
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(0.2)
        await asyncio.wait([closed], timeout=1.0)
        assert closed.done(), "the slow client still holds its connection"
        assert loop.time() - started < 4.5
    finally:
        closed.cancel()
        await asyncio.gather(closed, return_exceptions=True)
        writer.close()


async def test_malformed_requests_are_not_logged_as_errors(api: tuple[Bridge, int], caplog: pytest.LogCaptureFixture) -> None:
    _bridge, port = api
    caplog.set_level(logging.DEBUG)
    bad = [b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\n\r\n",
           b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: nope\r\n\r\n",
           b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"]
    for raw in bad:
        assert status_of(await request(port, raw)) in (400, 414, 431)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert status_of(await request(port, get("/healthz", "127.0.0.1"))) in (200, 503)  # still serving
