"""EspeakTts against the real espeak-ng, and against fake executables that misbehave."""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from bridge.engines import EngineError, Locality
from bridge.tts.espeak import EspeakTts
from tests.support.speech import have_espeak

needs_espeak = pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _gone(pid: int) -> bool:
    """True if `pid` no longer runs (a zombie waiting for init to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@needs_espeak
@pytest.mark.parametrize("rate", [16000, 22050])
async def test_espeak_speaks_at_requested_rate(rate: int) -> None:
    tts = EspeakTts(voice="en-us", speed=165)
    audio = await tts.synthesize("Turning on the kitchen light.", rate)
    assert audio.rate == rate
    assert audio.engine == "espeak" and audio.locality == Locality.IN_PROCESS
    assert audio.bytes_sent == 0
    assert len(audio.pcm) % 2 == 0
    # Six words at 165 wpm: roughly 1.5-2.5 s of speech
    assert 1.0 < audio.seconds < 4.0, audio.seconds
    samples = np.frombuffer(audio.pcm, dtype="<i2").astype(np.float64)
    assert np.sqrt(np.mean(samples**2)) > 300  # real speech, not silence


@needs_espeak
async def test_espeak_rates_agree_on_duration() -> None:
    tts = EspeakTts()
    a16 = await tts.synthesize("hello there", 16000)
    a22 = await tts.synthesize("hello there", 22050)
    assert abs(a16.seconds - a22.seconds) < 0.01
    assert abs(len(a22.pcm) / len(a16.pcm) - 22050 / 16000) < 0.01


@needs_espeak
async def test_espeak_longer_text_gives_longer_audio() -> None:
    tts = EspeakTts()
    short = await tts.synthesize("yes", 16000)
    long = await tts.synthesize("the living room lamp is now switched off", 16000)
    assert long.seconds > short.seconds + 1.0


@needs_espeak
async def test_text_goes_through_stdin_not_argv(tmp_path: Path) -> None:
    fake = _script(
        tmp_path / "espeak-wrapper",
        f'echo "$@" > {tmp_path}/argv\ntee {tmp_path}/stdin | espeak-ng "$@"\n',
    )
    tts = EspeakTts(executable=fake)
    audio = await tts.synthesize("secret garage code words", 16000)
    assert audio.seconds > 0.5
    argv = (tmp_path / "argv").read_text()
    assert "secret" not in argv and "--stdin" in argv and "--stdout" in argv
    assert "secret garage code words" in (tmp_path / "stdin").read_text()


async def test_empty_text_is_a_clear_error() -> None:
    tts = EspeakTts()
    for text in ("", "   \n\t"):
        with pytest.raises(EngineError) as info:
            await tts.synthesize(text, 16000)
        assert info.value.code == "tts_empty_text"
        assert "empty" in info.value.message


async def test_bad_rate_is_refused() -> None:
    with pytest.raises(EngineError) as info:
        await EspeakTts().synthesize("hi", 0)
    assert info.value.code == "tts_bad_rate"


def test_voice_that_looks_like_an_option_is_refused() -> None:
    with pytest.raises(ValueError):
        EspeakTts(voice="-w/tmp/x")
    with pytest.raises(ValueError):
        EspeakTts(speed=5)


async def test_hanging_tts_times_out_and_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    # The shell stays the parent, so `sleep` is a grandchild: the whole group must die.
    fake = _script(tmp_path / "hang", f"sleep 30 &\necho $$ $! > {pidfile}\nwait\n")
    tts = EspeakTts(executable=fake, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(EngineError) as info:
        await tts.synthesize("hello", 16000)
    assert info.value.code == "tts_timeout"
    assert "0.5" in info.value.message and "killed" in info.value.message
    assert time.monotonic() - started < 5
    pids = [int(p) for p in pidfile.read_text().split()]
    for _ in range(50):
        if all(_gone(pid) for pid in pids):
            break
        await asyncio.sleep(0.05)
    assert all(_gone(pid) for pid in pids), pids


async def test_cancel_kills_the_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    fake = _script(tmp_path / "hang", f"echo $$ > {pidfile}\nexec sleep 30\n")
    tts = EspeakTts(executable=fake, timeout=20)
    task = asyncio.create_task(tts.synthesize("hello", 16000))
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _gone(int(pidfile.read_text()))


async def test_failing_executable_is_tts_failed(tmp_path: Path) -> None:
    fake = _script(tmp_path / "fail", "echo 'voice broke' >&2\nexit 3\n")
    with pytest.raises(EngineError) as info:
        await EspeakTts(executable=fake).synthesize("hello", 16000)
    assert info.value.code == "tts_failed"
    assert "status 3" in info.value.message and "voice broke" in info.value.message


async def test_missing_executable_is_tts_failed(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as info:
        await EspeakTts(executable=str(tmp_path / "nope")).synthesize("hello", 16000)
    assert info.value.code == "tts_failed"


async def test_garbage_output_is_tts_failed(tmp_path: Path) -> None:
    fake = _script(tmp_path / "garbage", "cat >/dev/null\necho not a wav\n")
    with pytest.raises(EngineError) as info:
        await EspeakTts(executable=fake).synthesize("hello", 16000)
    assert info.value.code == "tts_failed"


@needs_espeak
async def test_unknown_voice_is_tts_failed() -> None:
    with pytest.raises(EngineError) as info:
        await EspeakTts(voice="xx-nonexistent").synthesize("hello", 16000)
    assert info.value.code == "tts_failed"


async def test_event_loop_keeps_running_while_espeak_works(tmp_path: Path) -> None:
    fake = _script(tmp_path / "slow", "cat >/dev/null\nsleep 0.5\n")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    with pytest.raises(EngineError):
        await EspeakTts(executable=fake).synthesize("hello", 16000)
    task.cancel()
    assert ticks > 20
