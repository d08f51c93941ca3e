"""Starting and stopping the whole bridge (service, status API, optional servers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from .service import Bridge
from .status_api import start_status_api

_LOGGER = logging.getLogger("bridge")


async def run_bridge(config: dict[str, Any], bridge: Bridge | None = None) -> None:
    bridge = bridge or Bridge(config)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, lambda: main.cancel() if main else None)
    await bridge.start()
    runner = None
    api = config["status_api"]
    if api["enabled"]:
        try:
            runner = await start_status_api(bridge, api["host"], api["port"])
        except OSError as err:
            _LOGGER.error("Status API not started on %s:%s: %s", api["host"], api["port"], err)
    extras = await _start_extras(bridge, config)
    try:
        await bridge.run()
    except asyncio.CancelledError:
        pass
    finally:
        for stop in extras:
            with contextlib.suppress(Exception):
                await stop()
        if runner is not None:
            await runner.cleanup()
        await bridge.close()


async def _start_extras(bridge: Bridge, config: dict[str, Any]) -> list[Any]:
    """Speech out and the Wyoming server, when their modules are present and configured."""
    stops: list[Any] = []
    try:
        from .speech_out import attach_speech_out
    except ImportError:
        return stops
    stops.extend(await attach_speech_out(bridge, config))
    return stops
