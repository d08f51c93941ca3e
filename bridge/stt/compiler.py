"""Grammar compilation in a one-shot child process (`python -m bridge.stt.worker --compile`).

Compiling a home's grammar takes seconds of CPU: done in a child, the event loop never stalls on
it, and nothing is left running if the bridge is killed or the compile is cancelled or times out
(the child is killed). The vocabulary goes in and the grammar comes out as typed worker messages
(bridge.stt.messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from ..recognition import CompiledGrammar, Vocabulary
from .messages import HEADER, Compile, Compiled, Failed, MessageError, decode_from_worker, encode, frame_size


async def compile_in_subprocess(vocab: Vocabulary, timeout: float = 300.0) -> tuple[CompiledGrammar, float]:
    """The compiled grammar and the seconds compiling took; RuntimeError (saying why) if the
    child failed, TimeoutError after `timeout` seconds."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge.stt.worker", "--compile",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(encode(Compile(vocab))), timeout)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if len(out) < HEADER.size:
        raise RuntimeError(f"grammar compiler exited with {proc.returncode}")
    try:
        size = frame_size(out[: HEADER.size])
        if len(out) - HEADER.size < size:
            raise MessageError(f"frame cut short ({len(out) - HEADER.size} of {size} bytes)")
        message = decode_from_worker(out[HEADER.size : HEADER.size + size])
    except MessageError as err:
        raise RuntimeError(f"grammar compiler answered nonsense: {err}") from None
    match message:
        case Compiled(grammar, seconds):
            return grammar, seconds
        case Failed(_, text):
            raise RuntimeError(text)
        case _:
            raise RuntimeError(f"grammar compiler answered {message.KIND!r}, not a grammar")
