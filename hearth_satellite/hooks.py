"""Event commands (like wyoming-satellite's `--on-...` hooks): shell commands for LEDs, sounds
and buttons. They run one after another in the order of the events (so an LED ends in the state
of the last event), in a task of their own: the audio loop never waits for them."""

from __future__ import annotations

import asyncio
import logging
import os

_LOGGER = logging.getLogger(__name__)

EVENTS = ("wake", "listening", "thinking", "speaking", "muted", "error", "idle")
TIMEOUT = 10.0  #: a command still running after this long is killed (the next ones are waiting)


class Hooks:
    def __init__(self, commands: dict[str, str | None]) -> None:
        unknown = set(commands) - set(EVENTS)
        if unknown:
            raise ValueError(f"unknown events {sorted(unknown)}")
        self.commands = {event: cmd for event, cmd in commands.items() if cmd}
        self._queue: asyncio.Queue[tuple[str, str, dict[str, str]]] | None = None
        self._worker: asyncio.Task[None] | None = None

    def fire(self, event: str, **info: object) -> None:
        """Queues the event's command, if any; it gets HEARTH_EVENT and HEARTH_<KEY> for each of
        `info` in its environment. Never waits for it."""
        command = self.commands.get(event)
        if command is None:
            return
        env = {**os.environ, "HEARTH_EVENT": event}
        env.update({f"HEARTH_{key.upper()}": "" if value is None else str(value) for key, value in info.items()})
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=100)
            self._worker = asyncio.get_running_loop().create_task(self._work(self._queue), name="hooks")
        try:
            self._queue.put_nowait((event, command, env))
        except asyncio.QueueFull:
            _LOGGER.warning("--on-%s dropped: %d event commands waiting", event, self._queue.qsize())

    async def _work(self, queue: asyncio.Queue[tuple[str, str, dict[str, str]]]) -> None:
        while True:
            event, command, env = await queue.get()
            try:
                await self._run(event, command, env)
            finally:
                queue.task_done()

    async def _run(self, event: str, command: str, env: dict[str, str]) -> None:
        try:
            proc = await asyncio.create_subprocess_shell(command, env=env, stdin=asyncio.subprocess.DEVNULL)
        except OSError as err:
            _LOGGER.warning("--on-%s command failed: %s", event, err)
            return
        try:
            code = await asyncio.wait_for(proc.wait(), TIMEOUT)
        except TimeoutError:
            _LOGGER.warning("--on-%s command still running after %.0f s; killed", event, TIMEOUT)
            proc.kill()
            await proc.wait()
            return
        if code:
            _LOGGER.warning("--on-%s command exited with %s", event, code)

    async def close(self, timeout: float = 2.0) -> None:
        if self._queue is not None and self._worker is not None:
            try:
                await asyncio.wait_for(self._queue.join(), timeout)
            except TimeoutError:
                pass
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
