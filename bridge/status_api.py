"""A small read-only HTTP status API (aiohttp): status, stats, policy, audit — content-free —
and, only while the owner has chosen retention "memory", the last few utterances for debugging.
It listens on 127.0.0.1 unless configured otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from . import PROTOCOL_VERSION, __version__
from .audio.wav import make_wav

if TYPE_CHECKING:
    from .service import Bridge


def build_app(bridge: Bridge) -> web.Application:
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

    app = web.Application()
    app.add_routes([web.get("/status", status), web.get("/stats", stats), web.get("/policy", policy),
                    web.get("/audit", audit), web.get("/healthz", health), web.get("/retention", retention),
                    web.get("/retention/{index}.wav", retained_wav)])
    return app


async def start_status_api(bridge: Bridge, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Serves the API; returns the runner (to stop it) and its URL (the real port when 0 was asked)."""
    runner = web.AppRunner(build_app(bridge), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # noqa: SLF001 - the real port when 0 was asked
    sockets = getattr(server, "sockets", None) or []
    actual = sockets[0].getsockname()[1] if sockets else port
    return runner, f"http://{host}:{actual}"
