"""Event commands (like wyoming-satellite's `--on-...` hooks): shell commands for LEDs, sounds
and buttons, run without blocking the audio loop."""

from __future__ import annotations

import asyncio
import logging
import os

_LOGGER = logging.getLogger(__name__)

EVENTS = ("wake", "listening", "thinking", "speaking", "muted", "error", "idle")


class Hooks:
    def __init__(self, commands: dict[str, str | None]) -> None:
        unknown = set(commands) - set(EVENTS)
        if unknown:
            raise ValueError(f"unknown events {sorted(unknown)}")
        self.commands = {event: cmd for event, cmd in commands.items() if cmd}
        self._running: set[asyncio.Task[None]] = set()

    def fire(self, event: str, **info: object) -> None:
        """Starts the event's command, if any; it gets HEARTH_EVENT and HEARTH_<KEY> for each of
        `info` in its environment. Never waits for it."""
        command = self.commands.get(event)
        if command is None:
            return
        env = {**os.environ, "HEARTH_EVENT": event}
        env.update({f"HEARTH_{key.upper()}": "" if value is None else str(value) for key, value in info.items()})
        task = asyncio.get_running_loop().create_task(self._run(event, command, env))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, event: str, command: str, env: dict[str, str]) -> None:
        try:
            proc = await asyncio.create_subprocess_shell(command, env=env, stdin=asyncio.subprocess.DEVNULL)
            code = await proc.wait()
            if code:
                _LOGGER.warning("--on-%s command exited with %s", event, code)
        except OSError as err:
            _LOGGER.warning("--on-%s command failed: %s", event, err)

    async def close(self, timeout: float = 2.0) -> None:
        if self._running:
            await asyncio.wait(list(self._running), timeout=timeout)
