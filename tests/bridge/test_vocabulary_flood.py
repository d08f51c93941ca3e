"""A flood of vocabularies costs one compile, not one each (in process, real compiles).

Hostile probing sent thousands of vocabularies; each that parsed was compiled in turn and loaded
into every decoder worker, and each waited in memory for its turn. Now one compiles at a time and
only the latest sent meanwhile waits: the memory held and the work done are bounded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.recognition import parse_vocabulary
from tests.support.inprocess import close_in_process, in_process_bridge, on, sent


def _vocabulary(n: int):  # noqa: ANN202
    return parse_vocabulary({"language": "en", "areas": [], "entities": [
        {"id": f"light.lamp{n}", "name": f"lamp number {n}", "domain": "light"}]})


async def test_vocabularies_sent_while_one_compiles_cost_one_more_compile(tmp_path: Path) -> None:
    bridge = in_process_bridge(tmp_path)
    try:
        swap = bridge.vocabulary
        first = asyncio.create_task(swap.apply(_vocabulary(0)))
        await asyncio.sleep(0)  # it is compiling
        later = [asyncio.create_task(swap.apply(_vocabulary(n))) for n in range(1, 8)]
        done = await asyncio.gather(first, *later)
        assert done[0] is True and done[1:] == [False] * 7  # the waiting ones were taken by the first
        assert swap.vocabulary is not None and swap.vocabulary.hash() == _vocabulary(7).hash()  # the last word
        states = on(sent(bridge), "hearth/bridge/vocabulary/state")
        assert [s["hash"] for s in states] == [_vocabulary(0).hash(), _vocabulary(7).hash()]  # two compiles
        assert swap._waiting is None  # noqa: SLF001 - nothing left held
    finally:
        await close_in_process(bridge)


def test_a_worker_can_give_freed_memory_back() -> None:
    """After a grammar swap a decoder worker hands the old grammar's freed pages back (glibc's
    `malloc_trim`, here and in the add-on's image); without it its memory stays at the
    high-water mark of every grammar it loaded (docs/benchmarks.md)."""
    from bridge.stt.worker import release_freed_memory

    assert release_freed_memory() is True
