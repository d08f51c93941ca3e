"""Benchmark of the bridge spine (issue 2). Not a test: prints a markdown report.

    .venv/bin/python bench/spine_bench.py [--utterances 24]

Measures on this machine, with a real Mosquitto, the real bridge process and espeak-ng speech
streamed in real time:
  1. end of speech -> transcript at the satellite (p50/p95), and the bridge's own view of it;
  2. recognizer CPU seconds per second of audio (from the decoder workers);
  3. CPU of one satellite streaming continuously through wake-word detection and VAD;
  4. event-loop lag (p99) while other satellites' speech is being decoded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.protocol.hearth import encode_frame  # noqa: E402
from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite  # noqa: E402
from tests.support.bridge_proc import BridgeProcess, Probe, wait_for_retained  # noqa: E402
from tests.support.broker import Mosquitto  # noqa: E402
from tests.support.speech import synthesize  # noqa: E402

COMMANDS = [
    "turn on the kitchen light", "turn off the kitchen light", "turn on the bedroom light",
    "turn off the living room lamp", "what time is it", "turn on the fan",
    "open the garage door", "close the garage door", "pause the tv", "set the thermostat to 21 degrees",
    "set a timer for 5 minutes", "cancel the timer",
]
VOICES = ["en-us", "en-us+m3"]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def proc_cpu(pid: int) -> float:
    """CPU seconds (user+system) of a process and its children that have been waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pids.extend(int(c) for c in children)
        except (OSError, StopIteration):
            continue
    return total / 1024


def stats(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url + "/stats", timeout=5).read())  # noqa: S310 - loopback


async def stream_continuously(broker: Mosquitto, sat_id: str, seconds: float, pcm_source: bytes) -> None:
    async with Probe(broker.host, broker.port, []) as probe:
        client = probe.client
        await client.publish(f"hearth/satellite/{sat_id}/status", json.dumps(
            {"state": "online", "protocol": 1, "capabilities": {"wake_word": False}}), retain=True)
        await asyncio.sleep(0.3)
        started = time.monotonic()
        seq = 0
        while time.monotonic() - started < seconds:
            offset = (seq * 960) % max(960, len(pcm_source) - 960)
            await client.publish(f"hearth/satellite/{sat_id}/audio", encode_frame(1, seq, pcm_source[offset:offset + 960]))
            seq += 1
            delay = started + seq * 0.03 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--utterances", type=int, default=24)
    parser.add_argument("--stream-seconds", type=float, default=30.0)
    parser.add_argument("--transcripts", type=Path, default=None,
                        help="write what each utterance was heard as (JSON), to compare two builds")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hearth-bench-"))
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp / "data").start()
    url = wait_for_retained(broker.host, broker.port, "hearth/bridge/status", lambda d: d.get("state") == "online")["status_api"]
    try:
        wavs = []
        for i in range(args.utterances):
            text = COMMANDS[i % len(COMMANDS)]
            voice = VOICES[(i // len(COMMANDS)) % len(VOICES)]
            wavs.append((text, synthesize(text, tmp / f"u{i}.wav", voice=voice)))
        # 1 + 2: latency and recognizer CPU, one utterance at a time, real-time streaming
        latencies, bridge_latencies, correct = [], [], 0
        heard: list[dict[str, object]] = []
        cpu, audio = 0.0, 0.0
        async with Probe(broker.host, broker.port, ["hearth/satellite/+/transcript"]) as probe:
            for i, (text, wav) in enumerate(wavs):
                pcm = load_wav_pcm16k(wav)
                result = await run_satellite(SatelliteOptions(sat_id="bench", host=broker.host, port=broker.port,
                                                              trailing_silence=1.5), pcm)
                latencies.append(result["latency_ms"])
                bridge_latencies.append(result["bridge_latency_ms"])
                correct += result["transcript"] == text
                heard.append({"said": text, "heard": result["transcript"], "rejected": result.get("rejected"),
                              "confidence": result.get("confidence"), "intent": result.get("intent")})
        if args.transcripts is not None:
            args.transcripts.write_text(json.dumps(heard, indent=1))
            for t in probe.json("/transcript"):
                cpu += t.get("cpu_seconds", 0.0)
                audio += t.get("audio_seconds", 0.0)
        # 3: one continuously streaming satellite, CPU of the bridge process above its idle cost:
        #    a quiet room (room noise at about -70 dBFS) and a room where people talk all the time
        #    (speech without the wake word, so it must never wake).
        import numpy as np

        quiet = (np.random.default_rng(2).standard_normal(16000 * 2) * 10).astype("<i2").tobytes()
        speech = b"".join(load_wav_pcm16k(w) for _, w in wavs[:4])
        before_idle = proc_cpu(bridge.proc.pid)
        await asyncio.sleep(10)
        idle_cpu = (proc_cpu(bridge.proc.pid) - before_idle) / 10
        before = proc_cpu(bridge.proc.pid)
        await stream_continuously(broker, "stream", args.stream_seconds, quiet)
        quiet_cpu = (proc_cpu(bridge.proc.pid) - before) / args.stream_seconds - idle_cpu
        before = proc_cpu(bridge.proc.pid)
        await stream_continuously(broker, "stream", args.stream_seconds, speech)
        stream_cpu = (proc_cpu(bridge.proc.pid) - before) / args.stream_seconds - idle_cpu
        # 4: loop lag while 3 satellites' speech is decoded at once, plus one streaming
        lag_before = stats(url)
        tasks = [run_satellite(SatelliteOptions(sat_id=f"load{j}", host=broker.host, port=broker.port,
                                                trailing_silence=1.0), load_wav_pcm16k(wavs[j][1])) for j in range(3)]
        await asyncio.gather(stream_continuously(broker, "stream2", 6.0, speech), *tasks)
        lag = stats(url)
        memory = rss_mb(bridge.proc.pid)
        print("## Bridge spine benchmark\n")
        print(f"Command: `.venv/bin/python bench/spine_bench.py --utterances {args.utterances} --stream-seconds {args.stream_seconds:g}` "
              f"({os.cpu_count()} cores; espeak-ng voices {', '.join(VOICES)}; real-time streaming, 30 ms frames)\n")
        print("| measure | result | target |")
        print("|---|---|---|")
        print(f"| end of speech → transcript at the satellite, p50 | {pct(latencies, 0.5):.0f} ms | ≤ 150 ms |")
        print(f"| end of speech → transcript at the satellite, p95 | {pct(latencies, 0.95):.0f} ms | ≤ 300 ms |")
        print(f"| same, measured inside the bridge, p50 / p95 | {pct(bridge_latencies, 0.5):.0f} / {pct(bridge_latencies, 0.95):.0f} ms | |")
        print(f"| transcripts exactly right | {correct}/{len(wavs)} | |")
        print(f"| recognizer CPU per audio second | {cpu / audio if audio else 0:.3f} s | ≤ 0.05 s |")
        print(f"| one satellite streaming continuously, quiet room | {quiet_cpu * 100:.2f}% of a core | ≤ 1% |")
        print(f"| one satellite streaming continuously, people talking all the time | {stream_cpu * 100:.2f}% of a core | ≤ 1% |")
        print(f"| bridge idle (no audio) | {idle_cpu * 100:.2f}% of a core | |")
        print(f"| event-loop lag p99 (max) over the last minute, 3 satellites decoding + 1 streaming | "
              f"{lag['loop_lag_p99_ms']:.1f} ms ({lag['loop_lag_max_ms']:.1f} ms) | ≤ 20 ms |")
        print(f"| memory (bridge + decoder workers + compiler, resident) | {memory:.0f} MB | |")
        _ = lag_before
    finally:
        bridge.stop()
        broker.close()


if __name__ == "__main__":
    asyncio.run(main())
