"""The satellite program against a real Mosquitto and the real bridge, with espeak-ng speech."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.bridge_proc import ROOT, BridgeProcess, Probe
from tests.support.broker import Mosquitto
from tests.support.speech import synthesize

MIC = Path(__file__).with_name("mic.py")


@pytest.fixture(scope="session")
def say(tmp_path_factory: pytest.TempPathFactory):
    """say(text, speed=...) -> Path of a 16 kHz WAV, cached per session."""
    folder = tmp_path_factory.mktemp("speech")
    cache: dict[tuple[str, int], Path] = {}

    def _say(text: str, speed: int = 150) -> Path:
        if (text, speed) not in cache:
            cache[(text, speed)] = synthesize(text, folder / f"{len(cache):03d}.wav", speed=speed, pad_ms=300)
        return cache[(text, speed)]

    return _say


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, BridgeProcess]]:
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp_path_factory.mktemp("bridge") / "data").start()
    try:
        yield broker, bridge
    finally:
        bridge.stop()
        broker.close()


class SatelliteProcess:
    """`python -m hearth_satellite` with the stand-in microphone (a queue folder of WAV files) and a
    speaker that appends what it is given to `played.raw`; event commands append to `hooks.log`."""

    def __init__(self, broker: Mosquitto, folder: Path, sat_id: str, *extra: str) -> None:
        self.sat_id = sat_id
        self.folder = folder
        self.queue = folder / "mic"
        self.queue.mkdir(parents=True, exist_ok=True)
        self.played = folder / "played.raw"
        self.rates = folder / "rates.txt"
        self.hooks = folder / "hooks.log"
        self.mute_file = folder / "muted"
        self.log_path = folder / "satellite.log"
        snd = f"sh -c {shlex.quote(f'echo {{rate}} >> {self.rates}; cat >> {self.played}')}"
        hook = f'echo "$HEARTH_EVENT" >> {shlex.quote(str(self.hooks))}'
        self.argv = [sys.executable, "-m", "hearth_satellite", "--id", sat_id, "--host", broker.host,
                     "--port", str(broker.port), "--mic-command", f"{sys.executable} {MIC} {self.queue}",
                     "--snd-command", snd, "--mute-file", str(self.mute_file), "--debug",
                     *[arg for event in ("wake", "listening", "thinking", "speaking", "muted", "error", "idle")
                       for arg in (f"--on-{event}", hook)], *extra]
        self.proc: subprocess.Popen[bytes] | None = None
        self._clips = 0

    def start(self) -> SatelliteProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self) -> list[str]:
        return self.hooks.read_text().split() if self.hooks.exists() else []

    def played_bytes(self) -> int:
        return self.played.stat().st_size if self.played.exists() else 0

    def speak(self, wav: Path, at: float | None = None) -> Path:
        """Queues `wav` on the microphone, to start at once or at the monotonic instant `at`
        (a sound that reaches several microphones together); returns the path that appears once
        it has been played."""
        self._clips += 1
        name = f"{self._clips:03d}-{uuid.uuid4().hex[:4]}"
        target = self.queue / f"{name}.wav"
        tmp = self.queue / f"{name}.tmp"
        if at is not None:
            (self.queue / f"{name}.at").write_text(repr(at))
        tmp.write_bytes(wav.read_bytes())
        tmp.rename(target)
        return target.with_suffix(".played")

    async def heard(self, wav: Path, timeout: float = 15.0) -> float:
        """Speaks `wav` and waits until the microphone has played all of it; its monotonic end."""
        done = self.speak(wav)
        deadline = time.monotonic() + timeout
        while not done.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the microphone did not play {wav}:\n{self.log()}")
            await asyncio.sleep(0.05)
        return time.monotonic()


async def wait_status(probe: Probe, sat_id: str, since: int = 0, timeout: float = 30.0, leaf: str = "status",
                      **expected: Any) -> dict[str, Any]:
    """The first status of `sat_id` (or another of its JSON leaves, e.g. the bridge's `state`)
    among the probe's messages from index `since` on that has the `expected` values."""
    deadline = time.monotonic() + timeout
    topic = f"hearth/satellite/{sat_id}/{leaf}"
    while True:
        for t, payload in probe.messages[since:]:
            if t == topic and payload:
                data = json.loads(payload)
                if all(data.get(k) == v for k, v in expected.items()):
                    return dict(data)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no status of {sat_id} with {expected} within {timeout} s")
        await asyncio.sleep(0.05)


def audio_frames(probe: Probe, sat_id: str | None = None) -> list[tuple[float, str, bytes]]:
    """Audio messages the broker delivered: (monotonic arrival, topic, payload)."""
    return [(at, topic, payload) for (topic, payload), at in zip(probe.messages, probe.received_at, strict=True)
            if topic.endswith("/audio") and (sat_id is None or topic.split("/")[-2] == sat_id)]


def events_of(probe: Probe, sat_id: str, kind: str) -> list[tuple[float, dict[str, Any]]]:
    out = []
    for (topic, payload), at in zip(probe.messages, probe.received_at, strict=True):
        if topic.endswith(f"/satellite/{sat_id}/event") and payload:
            data = json.loads(payload)
            if data.get("type") == kind:
                out.append((at, data))
    return out
