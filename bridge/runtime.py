"""Running the whole bridge from settings until SIGTERM or SIGINT; a start that fails on the
system (a data directory that cannot be made, a port in use) is one `StartupError`."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from .service import Bridge, build_bridge
from .settings import Settings


class StartupError(Exception):
    """The bridge could not start; the message says why in one line."""


async def run_bridge(settings: Settings, bridge: Bridge | None = None) -> None:
    """Builds (unless given) and runs the bridge; returns after a signal, everything closed."""
    bridge = bridge or build_bridge(settings)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, lambda: main.cancel() if main else None)
    try:
        try:
            await bridge.start()
        except OSError as err:
            raise StartupError(f"cannot start: {err}") from err
        await bridge.run()
    except asyncio.CancelledError:
        pass
    finally:
        await bridge.close()
