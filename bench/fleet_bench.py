"""Fleet benchmark (issue 19). Not a test: prints a markdown report.

    nice -n 5 .venv/bin/python bench/fleet_bench.py idle [--idle 200] [--seconds 60]
    nice -n 5 .venv/bin/python bench/fleet_bench.py streaming [--counts 10,25,50,100] [--seconds 40]
    nice -n 5 .venv/bin/python bench/fleet_bench.py arbitration [--runs 20]
    ... [--profile out.prof]   # the bridge under cProfile (streaming)

With a real Mosquitto, the real bridge process and espeak-ng speech:
  idle:         N wake-on-device satellites connected and idle plus 2 talking: bridge CPU, resident
                memory and the talkers' end-of-speech-to-text p95, against a bridge with no idle ones;
  streaming:    N always-streaming Hermes satellites (room noise at about -65 dBFS, 30 ms frames, 33
                messages a second each, sent by a separate process): bridge CPU per satellite and the
                talkers' p95;
  arbitration:  three satellites of one area hear the same utterance at 0/-6/-12 dB: the winner's
                end-of-speech-to-text against a satellite that competes with nobody (p50/p95).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bridge.audio.wav import make_wav  # noqa: E402
from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite, wake_level_db  # noqa: E402
from tests.support.bridge_proc import BridgeProcess  # noqa: E402
from tests.support.broker import Mosquitto  # noqa: E402
from tests.support.speech import synthesize  # noqa: E402

COMMANDS = ["turn on the kitchen light", "turn off the bedroom light", "what time is it", "turn on the fan"]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


class ProfiledBridge(BridgeProcess):
    def __init__(self, *args: Any, profile: Path | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profile = profile

    @property
    def command(self) -> list[str]:
        command = super().command
        if self.profile is None:
            return command
        return [command[0], "-m", "cProfile", "-o", str(self.profile), *command[1:]]


def _stream_hermes(host: str, port: int, sites: list[str], seconds: float, room: bytes | None = None) -> None:
    """A separate process: every site sends a 30 ms Hermes WAV frame of the room every 30 ms
    (room noise, or `room`: e.g. people talking without the wake word)."""
    import paho.mqtt.client as paho

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"fleet-{uuid.uuid4().hex[:6]}")
    client.connect(host, port)
    client.loop_start()
    rng = np.random.default_rng(3)
    noise = room if room is not None else (rng.standard_normal(16000 * 2) * 18).astype("<i2").tobytes()  # ~-65 dBFS
    frames = [make_wav(noise[i:i + 960]) for i in range(0, len(noise) - 960, 960)]
    topics = [f"hermes/audioServer/{site}/audioFrame" for site in sites]
    started = time.monotonic()
    tick = 0
    while time.monotonic() - started < seconds:
        frame = frames[tick % len(frames)]
        for topic in topics:
            client.publish(topic, frame)
        tick += 1
        delay = started + tick * 0.03 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    client.loop_stop()
    client.disconnect()


async def _idle_satellites(broker: Mosquitto, count: int, stop: asyncio.Event, ready: asyncio.Event) -> None:
    import aiomqtt

    async def one(i: int) -> None:
        sat_id = f"idle-{i:03d}"
        async with aiomqtt.Client(broker.host, broker.port, identifier=f"{sat_id}-{uuid.uuid4().hex[:4]}",
                                  will=aiomqtt.Will(f"hearth/satellite/{sat_id}/status",
                                                    json.dumps({"state": "offline"}), retain=True)) as client:
            await client.publish(f"hearth/satellite/{sat_id}/status", json.dumps({
                "state": "online", "protocol": 1, "name": sat_id, "area": f"room-{i}",
                "capabilities": {"wake_word": True, "speaker": True, "mute": True}}), qos=1, retain=True)
            await client.subscribe(f"hearth/satellite/{sat_id}/command")
            started.append(i)
            if len(started) == count:
                ready.set()
            await stop.wait()
            await client.publish(f"hearth/satellite/{sat_id}/status", b"", qos=1, retain=True)

    started: list[int] = []
    if count == 0:
        ready.set()
        await stop.wait()
        return
    await asyncio.gather(*(one(i) for i in range(count)))


async def _talk(broker: Mosquitto, clips: list[tuple[str, bytes]], rounds: int) -> list[float]:
    """Two satellites talking in turn (each its own area); end of speech -> transcript, ms."""
    latencies: list[float] = []
    for r in range(rounds):
        results = await asyncio.gather(*(run_satellite(SatelliteOptions(
            sat_id=f"talker-{k}", host=broker.host, port=broker.port, trailing_silence=1.0, area=f"talk-{k}"),
            clips[(r + k) % len(clips)][1]) for k in range(2)), return_exceptions=True)
        for result in results:
            if isinstance(result, dict) and result.get("latency_ms") is not None:
                latencies.append(result["latency_ms"])
    return latencies


def _clips(tmp: Path) -> list[tuple[str, bytes]]:
    return [(text, load_wav_pcm16k(synthesize(text, tmp / f"c{i}.wav"))) for i, text in enumerate(COMMANDS)]


async def scenario_idle(args: argparse.Namespace, tmp: Path) -> list[str]:
    clips = _clips(tmp)
    rows = ["| idle satellites | bridge CPU (% of a core) | bridge RSS (MB) | talkers' p50 (ms) | talkers' p95 (ms) | utterances |",
            "|---|---|---|---|---|---|"]
    for count in (0, args.idle):
        broker = Mosquitto(extra_config="allow_anonymous true\nmax_connections -1\n").start()
        bridge = BridgeProcess(broker.host, broker.port, tmp / f"data-idle-{count}",
                               args=["--log-level", "warning", "--set", "limits.max_satellites=400"]).start()
        stop, ready = asyncio.Event(), asyncio.Event()
        try:
            idle = asyncio.create_task(_idle_satellites(broker, count, stop, ready))
            await asyncio.wait_for(ready.wait(), 120)
            await asyncio.sleep(5)
            assert bridge.proc is not None
            pid = bridge.proc.pid
            cpu0, t0 = proc_cpu(pid), time.monotonic()
            latencies = await _talk(broker, clips, args.rounds)
            cpu = (proc_cpu(pid) - cpu0) / (time.monotonic() - t0) * 100
            rows.append(f"| {count} | {cpu:.1f} | {rss_mb(pid):.0f} | {pct(latencies, 0.5):.0f} | "
                        f"{pct(latencies, 0.95):.0f} | {len(latencies)} |")
            stop.set()
            await asyncio.wait_for(idle, 60)
        finally:
            bridge.stop()
            broker.close()
    return rows


def _frames(url: str) -> int:
    import urllib.request

    return int(json.loads(urllib.request.urlopen(url + "/stats", timeout=5).read())["frames"])  # noqa: S310


async def scenario_streaming(args: argparse.Namespace, tmp: Path) -> list[str]:
    clips = _clips(tmp)
    rows = ["| streaming satellites | bridge CPU (% of a core) | per satellite (% of a core) | frames/s received (sent) | talkers' p50 (ms) | talkers' p95 (ms) | utterances |",
            "|---|---|---|---|---|---|---|"]
    baseline: float | None = None
    room: bytes | None = None
    if args.room == "speech":  # a room where people talk all the time, never saying the wake word
        talk = [load_wav_pcm16k(synthesize(t, tmp / f"room{i}.wav")) for i, t in enumerate(
            ["the weather was lovely yesterday afternoon", "could you pass me the salt please",
             "we should leave before the traffic gets bad"])]
        rng = np.random.default_rng(5)
        room = b"".join(talk)
        room = (np.frombuffer(room, "<i2") + rng.standard_normal(len(room) // 2) * 18).astype("<i2").tobytes()
    for count in [0, *args.counts]:
        broker = Mosquitto().start()
        bridge = ProfiledBridge(broker.host, broker.port, tmp / f"data-stream-{count}",
                                args=["--log-level", "warning", "--set", "limits.max_satellites=400"],
                                profile=args.profile if count == max(args.counts) else None).start()
        sites = [f"hermes-{i:03d}" for i in range(count)]
        streamer = multiprocessing.Process(target=_stream_hermes,
                                           args=(broker.host, broker.port, sites, args.seconds + 30, room))
        try:
            if count:
                streamer.start()
                await asyncio.sleep(5)  # every site seen, wake detectors made
            assert bridge.proc is not None
            pid = bridge.proc.pid
            url = bridge.wait_online()["status_api"]
            frames0 = _frames(url)
            cpu0, t0 = proc_cpu(pid), time.monotonic()
            await asyncio.sleep(args.seconds)
            elapsed = time.monotonic() - t0
            cpu = (proc_cpu(pid) - cpu0) / elapsed * 100
            rate = (_frames(url) - frames0) / elapsed
            latencies = await _talk(broker, clips, args.rounds)
            if baseline is None:
                baseline = cpu
            per = (cpu - baseline) / count if count else 0.0
            rows.append(f"| {count} | {cpu:.1f} | {per:.2f} | {rate:.0f} ({count / 0.03:.0f}) | {pct(latencies, 0.5):.0f} | "
                        f"{pct(latencies, 0.95):.0f} | {len(latencies)} |")
            print(rows[-1], flush=True)
        finally:
            if count:
                if streamer.is_alive():
                    streamer.terminate()
                streamer.join(10)
            bridge.stop()
            broker.close()
    return rows


async def scenario_arbitration(args: argparse.Namespace, tmp: Path) -> list[str]:
    clip = synthesize("turn on the kitchen light", tmp / "arb.wav")
    levels = []
    for db in (0, -6, -12):
        out = tmp / f"arb{db}.wav"
        subprocess.run(["sox", str(clip), str(out), "vol", f"{db}dB"], check=True)
        levels.append(load_wav_pcm16k(out))
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp / "data-arb", args=["--log-level", "warning", "--set", "limits.max_satellites=400"]).start()
    winner_latency: list[float] = []
    lone_latency: list[float] = []
    partial_latency: list[float] = []
    wins = partial_wins = 0
    try:
        for _ in range(args.runs):
            order = [0, 1, 2]
            random.shuffle(order)
            results = await asyncio.gather(*(run_satellite(SatelliteOptions(
                sat_id=f"arb-{k}", host=broker.host, port=broker.port, trailing_silence=1.0, area="kitchen",
                timeout=6.0, wake_probability=0.95, speech_db=wake_level_db(levels[k])), levels[k])
                for k in order), return_exceptions=True)
            for k, result in zip(order, results, strict=True):
                if k == 0 and isinstance(result, dict) and not result.get("stood_down"):
                    wins += 1
                    winner_latency.append(result["latency_ms"])
            lone = await run_satellite(SatelliteOptions(sat_id="arb-lone", host=broker.host, port=broker.port,
                                                        trailing_silence=1.0, area="garage"), levels[0])
            lone_latency.append(lone["latency_ms"])
        # A competitor that never wakes (online in the area, it did not hear the wake word): the
        # window cannot close early, the decision waits it out.
        import aiomqtt

        async with aiomqtt.Client(broker.host, broker.port, identifier="arb-deaf") as deaf:
            await deaf.publish("hearth/satellite/arb-deaf/status", json.dumps({
                "state": "online", "protocol": 1, "area": "kitchen", "capabilities": {"wake_word": True}}),
                qos=1, retain=True)
            for _ in range(args.runs):
                order = [0, 1]
                random.shuffle(order)
                results = await asyncio.gather(*(run_satellite(SatelliteOptions(
                    sat_id=f"arb-{k}", host=broker.host, port=broker.port, trailing_silence=1.0, area="kitchen",
                    timeout=6.0, wake_probability=0.95, speech_db=wake_level_db(levels[k])), levels[k]) for k in order),
                    return_exceptions=True)
                for k, result in zip(order, results, strict=True):
                    if k == 0 and isinstance(result, dict) and not result.get("stood_down"):
                        partial_wins += 1
                        partial_latency.append(result["latency_ms"])
            await deaf.publish("hearth/satellite/arb-deaf/status", b"", qos=1, retain=True)
    finally:
        bridge.stop()
        broker.close()
    return ["| satellite | p50 (ms) | p95 (ms) | runs |", "|---|---|---|---|",
            f"| winner of three (0/−6/−12 dB) | {pct(winner_latency, 0.5):.0f} | {pct(winner_latency, 0.95):.0f} | {wins} won of {args.runs} |",
            f"| winner of two, a third online that did not wake (the window runs out) | "
            f"{pct(partial_latency, 0.5):.0f} | {pct(partial_latency, 0.95):.0f} | {partial_wins} won of {args.runs} |",
            f"| alone in its area | {pct(lone_latency, 0.5):.0f} | {pct(lone_latency, 0.95):.0f} | {len(lone_latency)} |",
            f"| added for the winner | {pct(winner_latency, 0.5) - pct(lone_latency, 0.5):.0f} | "
            f"{pct(winner_latency, 0.95) - pct(lone_latency, 0.95):.0f} | |"]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=("idle", "streaming", "arbitration"))
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--counts", type=lambda s: [int(x) for x in s.split(",")], default=[10, 25, 50, 100])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--rounds", type=int, default=6, help="talkers' rounds (2 utterances each)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--room", choices=("quiet", "speech"), default="quiet",
                        help="streaming: what the satellites hear (room noise, or talk without the wake word)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hearth-fleet-"))
    rows = await {"idle": scenario_idle, "streaming": scenario_streaming,
                  "arbitration": scenario_arbitration}[args.scenario](args, tmp)
    print(f"\n`nice -n 5 .venv/bin/python {' '.join(['bench/fleet_bench.py', *sys.argv[1:]])}` "
          f"({os.cpu_count()} cores, shared with other work)\n")
    print("\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main())
