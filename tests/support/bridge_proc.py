"""The real bridge as a separate process, plus an MQTT probe for tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

ROOT = Path(__file__).resolve().parents[2]


def wait_for_retained(host: str, port: int, topic: str, predicate: Callable[[dict[str, Any]], bool],
                      timeout: float = 90.0) -> dict[str, Any]:
    """Blocks until a JSON message on `topic` satisfies `predicate`."""
    found: list[dict[str, Any]] = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"wait-{uuid.uuid4().hex[:8]}")

    def on_message(_c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        try:
            data = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(data, dict) and predicate(data):
            found.append(data)

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(topic)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.connect(host, port)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    client.loop_start()
    try:
        while not found:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching message on {topic} within {timeout} s")
            time.sleep(0.05)
    finally:
        client.loop_stop()
        client.disconnect()
    return found[0]


class BridgeProcess:
    """`python -m bridge run` against a broker, with its own data folder."""

    def __init__(self, host: str, port: int, data_dir: Path, prefix: str = "hearth", args: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.host, self.port, self.data_dir, self.prefix = host, port, data_dir, prefix
        self.args = args or []
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"bridge-{uuid.uuid4().hex[:6]}.log"

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "bridge", "run", "--mqtt-host", self.host, "--mqtt-port", str(self.port),
                "--prefix", self.prefix, "--data-dir", str(self.data_dir), "--status-port", "0", *self.args]

    def start(self, wait: bool = True) -> BridgeProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        env = {**os.environ, **(self.env or {}), "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        if wait:
            self.wait_online()
        return self

    def wait_online(self, timeout: float = 90.0) -> dict[str, Any]:
        pid = self.proc.pid if self.proc else None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"bridge exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return wait_for_retained(self.host, self.port, f"{self.prefix}/bridge/status",
                                         lambda d: d.get("state") == "online", timeout=min(5.0, max(0.1, deadline - time.monotonic())))
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"bridge (pid {pid}) not online:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Probe:
    """An MQTT client that records messages on some topics, for assertions."""

    def __init__(self, host: str, port: int, topics: list[str]) -> None:
        self.host, self.port, self.topics = host, port, topics
        self.messages: list[tuple[str, bytes]] = []
        self.received_at: list[float] = []  # time.monotonic() of each message, same order
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._new = asyncio.Event()

    async def __aenter__(self) -> Probe:
        self._client = aiomqtt.Client(self.host, self.port, identifier=f"probe-{uuid.uuid4().hex[:8]}")
        await self._client.__aenter__()
        for topic in self.topics:
            await self._client.subscribe(topic)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client:
            await self._client.__aexit__(None, None, None)

    @property
    def client(self) -> aiomqtt.Client:
        assert self._client is not None
        return self._client

    async def _read(self) -> None:
        assert self._client is not None
        async for message in self._client.messages:
            self.messages.append((str(message.topic), bytes(message.payload)))  # type: ignore[arg-type]
            self.received_at.append(time.monotonic())
            self._new.set()

    def json(self, topic_suffix: str) -> list[dict[str, Any]]:
        out = []
        for topic, payload in self.messages:
            if topic.endswith(topic_suffix) and payload:
                try:
                    out.append(json.loads(payload))
                except ValueError:
                    pass
        return out

    async def wait_for(self, topic_suffix: str, predicate: Callable[[dict[str, Any]], bool] = lambda _d: True,
                       timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for data in self.json(topic_suffix):
                if predicate(data):
                    return data
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no message on *{topic_suffix} matching within {timeout} s; got {self.messages[-10:]}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), remaining)
            except TimeoutError:
                pass
