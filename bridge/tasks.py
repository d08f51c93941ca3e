"""Background tasks the bridge starts and does not await: each is kept referenced until it ends
(asyncio holds only weak references to running tasks), and a failure is logged — with its
traceback the first time a task of that name fails, in one line after that — and reported as a
counted error code, so no task ever ends in "Task exception was never retrieved".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine

_LOGGER = logging.getLogger("bridge")

#: The error code a failed background task is counted under.
TASK_FAILED = "internal_error"

type ReportError = Callable[[str, str], None]
"""Counts and publishes an error: (code, message)."""

_running: set[object] = set()  # the tasks still running (strong references)
_traced: set[str] = set()  # task names whose traceback was logged (names are fixed strings)


def spawn[T](coro: Coroutine[object, object, T], *, name: str, report: ReportError | None = None) -> asyncio.Task[T]:
    """Runs `coro` as a task that nobody awaits. `name` says what it does ("vocabulary-apply"),
    not whom (it keys the once-only traceback); `report` counts a failure."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _running.add(task)
    task.add_done_callback(lambda done: _finished(done, name, report))
    return task


def _finished[T](task: asyncio.Task[T], name: str, report: ReportError | None) -> None:
    _running.discard(task)
    if task.cancelled():
        return
    err = task.exception()  # retrieved here: never "Task exception was never retrieved"
    if err is None:
        return
    if name not in _traced and len(_traced) < 256:
        _traced.add(name)
        _LOGGER.error("Background task %s failed", name, exc_info=err)
    else:
        _LOGGER.debug("Background task %s failed again: %s: %s", name, type(err).__name__, err)
    if report is not None:
        try:
            report(TASK_FAILED, f"{name}: {type(err).__name__}: {err}")
        except Exception:  # noqa: BLE001 - reporting must never raise out of a done callback
            _LOGGER.exception("Reporting the failure of %s failed", name)


def running() -> int:
    """How many spawned tasks are still running (for tests and statistics)."""
    return len(_running)
