"""`hearth-bridge demo`: the whole spine on one machine, no config, no broker needed.

Uses a reachable local broker or starts an embedded one (amqtt), starts the bridge, then a
simulated satellite speaks a few commands (espeak-ng, or WAV files shipped in the package when
espeak-ng is missing) and we print what was heard and how fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import socket
import subprocess
import tempfile
import wave
from importlib import resources
from typing import Any

from ..audio.resample import convert
from ..config import validate
from ..service import build_bridge
from .satellite import SatelliteOptions, run_satellite

COMMANDS = [
    ("turn on the kitchen light", "event", "hearth"),
    ("turn off the bedroom light", "event", "hermes"),
    ("what time is it", "event", "hearth"),
    ("okay nabu, turn off the kitchen light", "bridge", "hearth"),
]


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def speak(text: str) -> bytes:
    """16 kHz mono PCM of `text`, synthesised in memory (nothing written to disk)."""
    out = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "--stdout", text],
                         check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(out), "rb") as wav:
        pcm = wav.readframes(wav.getnframes())
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
    pad = bytes(16000)  # 0.5 s of silence each side, as a microphone would hear
    return pad + convert(pcm, rate, width, channels) + pad


def shipped(index: int) -> bytes:
    data = resources.files("bridge.data").joinpath(f"demo/command{index}.wav").read_bytes()
    with wave.open(io.BytesIO(data), "rb") as wav:
        return wav.readframes(wav.getnframes())


async def _start_embedded_broker(port: int) -> Any:
    from amqtt.broker import Broker

    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    await broker.start()
    return broker


async def run_demo(host: str = "127.0.0.1", port: int = 1883) -> int:
    broker = None
    if _port_open(host, port):
        print(f"Using the MQTT broker at {host}:{port}")
    else:
        host, port = "127.0.0.1", _free_port()
        broker = await _start_embedded_broker(port)
        print(f"No broker found; started an embedded one on {host}:{port}")
    data_dir = tempfile.mkdtemp(prefix="hearth-demo-")
    config = validate({"mqtt": {"host": host, "port": port, "prefix": f"hearth-demo-{port}"},
                       "data_dir": data_dir, "status_api": {"enabled": False}})
    bridge = build_bridge(config)
    print("Starting the bridge (compiling the demo home's grammar)...")
    task = asyncio.create_task(bridge.run())
    failures = 0
    try:
        await asyncio.wait_for(bridge.connected.wait(), 120)
        use_espeak = shutil.which("espeak-ng") is not None
        if not use_espeak:
            print("espeak-ng not found: using the recordings shipped with the bridge")
        print(f"\n{'said':42} {'heard':36} {'intent':18} {'protocol':8} {'latency':>8}")
        for index, (text, wake, protocol) in enumerate(COMMANDS):
            pcm = speak(text) if use_espeak else shipped(index)
            options = SatelliteOptions(sat_id=f"demo-{protocol}", host=host, port=port, prefix=config.mqtt.prefix,
                                       protocol=protocol, wake=wake, timeout=20)
            try:
                result = await run_satellite(options, pcm)
            except Exception as err:  # noqa: BLE001 - report and go on with the next command
                failures += 1
                print(f"{text:42} ERROR: {err}")
                continue
            heard = result["transcript"] or "(not a command)"
            intent = result.get("intent")
            name = intent.get("name") if isinstance(intent, dict) else (intent or "-")
            expected = text.split(", ", 1)[-1]
            if heard != expected:
                failures += 1
            print(f"{text:42} {heard:36} {name:18} {protocol:8} {result['latency_ms'] or 0:6.0f} ms")
        print("\nlatency: from the end of speech to the transcript arriving at the satellite")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if broker is not None:
            await broker.shutdown()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 1 if failures else 0
