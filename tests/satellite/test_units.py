"""Parts of the satellite on their own: webrtc cleanup, event commands, options."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from hearth_satellite.audio import Cleanup, mean_square
from hearth_satellite.cli import options_from, parser
from hearth_satellite.hooks import Hooks


def test_webrtc_noise_suppression_quiets_steady_noise() -> None:
    pytest.importorskip("webrtc_noise_gain")
    cleanup = Cleanup(noise_suppression=4, auto_gain=0)
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 800, 16000 * 3).astype("<i2").tobytes()
    out = b"".join(cleanup.process(noise[i:i + 960]) for i in range(0, len(noise), 960))
    assert len(out) == len(noise)  # 30 ms in, 30 ms out (three 10 ms steps)
    tail = slice(len(out) // 2, None)  # once it has learned the noise
    assert mean_square(out[tail]) < mean_square(noise[tail]) / 4  # more than 6 dB quieter


async def test_event_commands_run_in_order_with_their_environment(tmp_path: Path) -> None:
    log = tmp_path / "events"
    command = f'sleep 0.05; echo "$HEARTH_EVENT $HEARTH_WAKE_WORD" >> {log}'
    hooks = Hooks({"wake": command, "listening": f'echo "$HEARTH_EVENT" >> {log}', "idle": None})
    hooks.fire("wake", wake_word="okay_nabu")
    hooks.fire("listening")
    hooks.fire("idle")  # no command: nothing
    hooks.fire("thinking")  # not configured: nothing
    started = asyncio.get_running_loop().time()
    assert asyncio.get_running_loop().time() - started < 0.05  # fire() never waits
    await hooks.close(timeout=5)
    assert log.read_text().splitlines() == ["wake okay_nabu", "listening"]
    with pytest.raises(ValueError):
        Hooks({"blink": "true"})


def test_options() -> None:
    args = parser().parse_args(["--id", "pi@kitchen", "--area", "kitchen", "--wake-word", "alexa",
                                "--noise-suppression", "2", "--auto-gain", "31", "--on-wake", "led on",
                                "--snd-command", ""])
    o = options_from(args)
    assert (o.sat_id, o.area, o.wake_word, o.noise_suppression, o.auto_gain) == ("pi@kitchen", "kitchen", "alexa", 2, 31)
    assert o.hooks["wake"] == "led on" and o.hooks["idle"] is None
    assert o.snd_command is None  # no speaker
    assert o.mic_command == "arecord -r 16000 -c 1 -f S16_LE -t raw"
    with pytest.raises(SystemExit):
        options_from(parser().parse_args(["--id", "living room"]))
    with pytest.raises(SystemExit):
        parser().parse_args(["--noise-suppression", "5"])
