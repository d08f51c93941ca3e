"""Memory stays at its baseline while satellites come and go (in process, a real bridge from
`build_bridge` that is never started, messages in through `dispatch`).

pymicro-vad's native state is never freed by pymicro-vad itself, and loading a wake-word model
for every new satellite leaks a little native memory each time, so the bridge pools both. Thousands of satellites
announcing themselves, streaming a frame (which makes their wake-word detector) and vanishing
leave resident memory near where it was.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from bridge.config import validate
from bridge.pipeline.vad import Vad
from bridge.pipeline.wake import WakeWordDetector
from bridge.protocol.hearth import encode_frame
from bridge.service import Bridge, build_bridge
from tests.support.speech import read_pcm, synthesize

CONTINUOUS = json.dumps({"state": "online", "protocol": 1, "capabilities": {"wake_word": False}}).encode()
WARM_UP = 200
CYCLES = 1500
#: the VAD alone lost ~11 KB per satellite (~16 MB over CYCLES); what is left is allocator noise
ALLOWED_GROWTH = 5 * 1024 * 1024


def resident_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * 4096


async def _cycle(bridge: Bridge, sat_id: str, frame: bytes) -> None:
    bridge.dispatch(f"hearth/satellite/{sat_id}/status", CONTINUOUS)
    sat = bridge.satellites[sat_id]
    bridge.dispatch(f"hearth/satellite/{sat_id}/audio", frame)
    for _ in range(200):  # the satellite's task hears the frame (making its wake-word detector)
        if sat.counters["wake_chunks"]:
            break
        await asyncio.sleep(0.001)
    assert sat.counters["wake_chunks"] == 1
    bridge.dispatch(f"hearth/satellite/{sat_id}/status", b"")
    for _ in range(200):
        if sat_id not in bridge.satellites and sat._task.done():  # noqa: SLF001 - fully closed
            break
        await asyncio.sleep(0.001)
    queue = bridge.link._outgoing  # noqa: SLF001 - what would go out is not kept
    while not queue.empty():
        queue.get_nowait()


async def test_satellites_coming_and_going_leave_memory_near_its_baseline(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bridge")  # "joined" lines are not what is measured
    bridge = build_bridge(validate({"data_dir": str(tmp_path), "bridge_id": "mem", "status_api": {"enabled": False},
                                    "tts": {"engine": "none"}, "limits": {"max_satellites": 5}}))
    noise = np.random.default_rng(3).normal(0, 3000, 480).astype("<i2").tobytes()
    frame = encode_frame(1, 0, noise)
    for i in range(WARM_UP):
        await _cycle(bridge, f"warm{i}", frame)
    gc.collect()
    pooled = Vad.idle()
    loaded = WakeWordDetector.created
    before = resident_bytes()
    for i in range(CYCLES):
        await _cycle(bridge, f"sat{i}", frame)
    gc.collect()
    grown = resident_bytes() - before
    assert not bridge.satellites
    assert Vad.idle() <= pooled + 1  # one detector in use at a time, reused every time
    assert WakeWordDetector.created <= loaded + 1  # the same for the wake-word model
    assert grown < ALLOWED_GROWTH, f"{grown / 1024:.0f} KB more after {CYCLES} satellites came and went"



def _heard(detector: WakeWordDetector, pcm: bytes) -> bool:
    return any([detector.process(pcm[i:i + 960]) for i in range(0, len(pcm), 960)])


def test_a_pooled_wake_word_model_starts_clean(tmp_path: Path) -> None:
    """A model back from the pool starts from a clean state: what its last satellite streamed
    (here: half a wake word) does not carry over, and the wake word is heard as by a new model."""
    wake = read_pcm(synthesize("okay nabu", tmp_path / "wake.wav"))
    quiet = bytes(16000)
    half = WakeWordDetector("okay_nabu")
    assert not _heard(half, quiet + wake[: len(wake) // 2])  # left mid-word
    half.close()
    idle = WakeWordDetector.idle("okay_nabu")
    loaded = WakeWordDetector.created
    reused = WakeWordDetector("okay_nabu")
    assert (WakeWordDetector.idle("okay_nabu"), WakeWordDetector.created) == (idle - 1, loaded)
    assert not _heard(reused, wake[len(wake) // 2:] + quiet)  # the other half alone is not a wake word
    reused.reset()
    assert _heard(reused, quiet + wake + quiet)
    reused.close()
    with pytest.raises(RuntimeError):
        reused.process(wake)
