"""Soak: the real bridge under ordinary and hostile traffic for a given time. Not a test.

    .venv/bin/python bench/soak.py --minutes 30 [--json soak.json]

Against a real Mosquitto and the real bridge process (tests/support), for `--minutes`:
- talkers: satellites saying commands (espeak-ng, streamed in real time by the simulated
  satellite, `bridge.tools.satellite.run_satellite`), one after another with short pauses;
- streamers: satellites that stream continuously without a wake word (people talking in the room);
- churn: satellites announcing themselves online, going offline and being removed, and new Hermes
  sites appearing, each with a new id;
- misbehaving clients: one satellite flooding at `--flood-factor` × real time, malformed frames and
  JSON, audio from unknown ids, and bursts of racing policy commands (mutes of non-talkers only).

Every `--interval` seconds (a minute) and at the end it reports: the resident memory of the
bridge and of its decoder workers (/proc/<pid>/status VmRSS), the event loop's lag p99 (status API
/stats), dropped frames by reason and error counts by code, the bridge's log lines (and
tracebacks among them), the talkers' latency (end of speech → transcript) p50/p95 and how many
got an answer, and how many policy commands were answered. The end is a markdown table for
docs/benchmarks.md and a JSON file with every sample.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import struct
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.audio.wav import make_wav  # noqa: E402
from bridge.protocol.hearth import encode_frame  # noqa: E402
from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite  # noqa: E402
from tests.support.bridge_proc import BridgeProcess, Probe, wait_for_retained  # noqa: E402
from tests.support.broker import Mosquitto  # noqa: E402
from tests.support.speech import synthesize  # noqa: E402

COMMANDS = ["turn on the kitchen light", "turn off the kitchen light", "turn on the bedroom light",
            "turn off the living room lamp", "what time is it", "turn on the fan", "pause the tv",
            "set a timer for 5 minutes"]
CHATTER = ["we should go for a walk later if the weather holds", "did you see the game last night",
           "the children are doing their homework in the other room"]
VOICES = ["en-us", "en-us+m3"]
FRAME = 960  # 30 ms at 16 kHz, 16-bit mono
PREFIX = "hearth"
RACED = ("racer-a", "racer-b", "mal")  # muted and unmuted by the racing policy commands (never a talker)
DROP_REASONS = ("dropped_queue_full", "rate_limited", "late", "gaps", "after_session")


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def vm_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                children = [int(c) for c in (task / "children").read_text().split()]
                found.extend(children)
                todo.extend(children)
    return found


def memory_mb(pid: int) -> tuple[float, float, int]:
    """(bridge MB, decoder workers and other children MB, number of children)."""
    own = vm_rss_kb(pid) / 1024
    children = 0.0
    kids = descendants(pid)
    for child in kids:
        with contextlib.suppress(OSError):
            children += vm_rss_kb(child) / 1024
    return round(own, 1), round(children, 1), len(kids)


def fetch_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/stats", timeout=5) as response:  # noqa: S310 - loopback status API
        return dict(json.loads(response.read()))


def log_counts(path: Path) -> dict[str, int]:
    counts = {"lines": 0, "warning": 0, "error": 0, "tracebacks": 0, "never_retrieved": 0}
    with contextlib.suppress(OSError), path.open("rb") as log:
        for line in log:
            counts["lines"] += 1
            if b" WARNING " in line:
                counts["warning"] += 1
            elif b" ERROR " in line or b" CRITICAL " in line:
                counts["error"] += 1
            if line.startswith(b"Traceback (most recent call last)"):
                counts["tracebacks"] += 1
            if b"Task exception was never retrieved" in line:
                counts["never_retrieved"] += 1
    return counts


@dataclass
class Talk:
    at: float
    satellite: str
    said: str
    answered: bool
    correct: bool = False
    latency_ms: float | None = None
    error: str | None = None


@dataclass
class Soak:
    """Everything the soak's parts count; shared by the tasks (one event loop, no locks)."""

    started: float = field(default_factory=time.monotonic)
    talks: list[Talk] = field(default_factory=list)
    policy_sent: set[str] = field(default_factory=set)
    policy_answered: set[str] = field(default_factory=set)
    sent: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    #: each satellite's last counters seen (a removed satellite leaves the bridge's table, not this)
    counters: dict[str, dict[str, Any]] = field(default_factory=dict)

    def count(self, what: str, n: int = 1) -> None:
        self.sent[what] = self.sent.get(what, 0) + n


async def paced(stop: asyncio.Event, seconds: float) -> bool:
    """Sleeps; False once the soak is over."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return not stop.is_set()


# -- the parts -----------------------------------------------------------------------------------


async def talker(index: int, broker: Mosquitto, clips: list[tuple[str, bytes]], soak: Soak,
                 stop: asyncio.Event) -> None:
    sat_id = f"talker{index}"
    rng = random.Random(index)
    while not stop.is_set():
        said, pcm = rng.choice(clips)
        started = time.monotonic() - soak.started
        try:
            result = await run_satellite(SatelliteOptions(sat_id=sat_id, host=broker.host, port=broker.port,
                                                          trailing_silence=1.0, timeout=15.0), pcm)
            soak.talks.append(Talk(started, sat_id, said, True, result.get("transcript") == said,
                                   result.get("latency_ms")))
        except Exception as err:  # noqa: BLE001 - SatelliteError, a lost connection: counted, the soak goes on
            soak.talks.append(Talk(started, sat_id, said, False, error=f"{type(err).__name__}: {err}"[:200]))
        if not await paced(stop, rng.uniform(0.5, 2.0)):
            return


async def streamer(sat_id: str, broker: Mosquitto, audio: bytes, factor: float, soak: Soak,
                   stop: asyncio.Event) -> None:
    """Streams `audio` round and round, `factor` × real time, as a satellite without its own wake word."""
    async with Probe(broker.host, broker.port, []) as probe:
        await probe.client.publish(f"{PREFIX}/satellite/{sat_id}/status", json.dumps(
            {"state": "online", "protocol": 1, "capabilities": {"wake_word": False}}), retain=True)
        await asyncio.sleep(0.3)
        started, seq, period = time.monotonic(), 0, 0.03 / factor
        try:
            while not stop.is_set():
                offset = (seq * FRAME) % max(FRAME, len(audio) - FRAME)
                await probe.client.publish(f"{PREFIX}/satellite/{sat_id}/audio",
                                           encode_frame(7, seq, audio[offset:offset + FRAME]))
                seq += 1
                delay = started + seq * period - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
        finally:
            soak.count(f"frames:{sat_id}", seq)
            await probe.client.publish(f"{PREFIX}/satellite/{sat_id}/status", b"", retain=True)


async def churn(broker: Mosquitto, per_second: float, soak: Soak, stop: asyncio.Event) -> None:
    """New Hearth satellites online → offline → removed, and new Hermes sites, each with a new id."""
    async with Probe(broker.host, broker.port, []) as probe:
        client = probe.client
        live: list[tuple[float, str, str]] = []  # (when, id, next step)
        n = 0
        silence = make_wav(bytes(1024))
        while await paced(stop, 1.0 / per_second):
            now = time.monotonic()
            n += 1
            sat_id = f"churn{n}"
            await client.publish(f"{PREFIX}/satellite/{sat_id}/status", json.dumps(
                {"state": "online", "protocol": 1, "capabilities": {"wake_word": True}}), retain=True)
            live.append((now + 2.0, sat_id, "offline"))
            soak.count("churn_online")
            if n % 2 == 0:
                site = f"hsite{n}"
                for _ in range(3):
                    await client.publish(f"hermes/audioServer/{site}/audioFrame", silence)
                soak.count("hermes_sites")
            due = [item for item in live if item[0] <= now]
            live = [item for item in live if item[0] > now]
            for _when, sid, step in due:
                topic = f"{PREFIX}/satellite/{sid}/status"
                if step == "offline":
                    await client.publish(topic, json.dumps({"state": "offline"}), retain=True)
                    live.append((now + 2.0, sid, "removed"))
                    soak.count("churn_offline")
                else:
                    await client.publish(topic, b"", retain=True)
                    soak.count("churn_removed")
        for _when, sid, _step in live:
            await client.publish(f"{PREFIX}/satellite/{sid}/status", b"", retain=True)


def malformed(rng: random.Random, n: int) -> tuple[str, bytes]:
    """One hostile message: broken frames and JSON, unknown ids, bad topics, broken WAV."""
    sat = f"{PREFIX}/satellite"
    choice = n % 10
    if choice == 0:
        return f"{sat}/mal/audio", encode_frame(1, n, bytes(3))  # odd PCM
    if choice == 1:
        return f"{sat}/mal/audio", struct.pack("<BBHII", 99, 0, 0, 1, n) + bytes(960)  # wrong version
    if choice == 2:
        return f"{sat}/ghost{n}/audio", encode_frame(1, 0, bytes(960))  # unknown id, a new one each time
    if choice == 3:
        return f"{sat}/mal/status", rng.choice([b"{not json", b"[]", b'{"state": "sleepy"}', b"\xff\xfe"])
    if choice == 4:
        return f"{sat}/mal/event", rng.choice([b'{"type": "dance"}', b"null", b'{"type": "wake", "stream_id": "x"}'])
    if choice == 5:
        return f"{sat}/bad id!/event", b"{}"
    if choice == 6:
        return f"{sat}/mal/a/b/c", b"{}"
    if choice == 7:
        return f"hermes/audioServer/mal{n % 5}/audioFrame", rng.choice([b"RIFF....WAVE", make_wav(bytes(64), rate=2000)])
    if choice == 8:
        return "hermes/asr/startListening", rng.choice([b"[1, 2", b'{"siteId": 5}'])
    return f"{sat}/mal/pipeline/set", rng.choice([b'{"mode": "cloud"}', b"[]"])


async def misbehave(broker: Mosquitto, per_second: float, soak: Soak, stop: asyncio.Event) -> None:
    rng = random.Random(7)
    async with Probe(broker.host, broker.port, []) as probe:
        await probe.client.publish(f"{PREFIX}/satellite/mal/status", json.dumps(
            {"state": "online", "protocol": 1, "capabilities": {"wake_word": True}}), retain=True)
        n = 0
        while await paced(stop, 1.0 / per_second):
            topic, payload = malformed(rng, n)
            await probe.client.publish(topic, payload)
            soak.count("malformed")
            n += 1
        await probe.client.publish(f"{PREFIX}/satellite/mal/status", b"", retain=True)


async def policy_racer(broker: Mosquitto, every: float, burst: int, soak: Soak, stop: asyncio.Event) -> None:
    """Bursts of policy commands from two clients at once, muting and unmuting non-talkers."""
    result_topic = f"{PREFIX}/bridge/policy/result"
    async with Probe(broker.host, broker.port, [result_topic]) as one, Probe(broker.host, broker.port, []) as two:
        rng = random.Random(3)
        n = 0

        async def send(client: Probe, request_id: str) -> None:
            target = rng.choice(RACED)
            mute: dict[str, object] = {"muted": rng.random() < 0.5}
            if mute["muted"] and rng.random() < 0.5:
                mute["duration"] = rng.uniform(0.5, 5.0)
            await client.client.publish(f"{PREFIX}/bridge/policy/set", json.dumps(
                {"request_id": request_id, "microphones": {target: mute}}))
            soak.policy_sent.add(request_id)

        seen = 0

        def collect() -> None:
            nonlocal seen
            for _topic, payload in one.messages[seen:]:
                with contextlib.suppress(ValueError):
                    answer = json.loads(payload)
                    if isinstance(answer, dict) and isinstance(answer.get("request_id"), str):
                        soak.policy_answered.add(answer["request_id"])
            seen = len(one.messages)

        while await paced(stop, every):
            sends = []
            for _ in range(burst):
                n += 1
                sends.append(send(one if n % 2 else two, f"race-{n}"))
            await asyncio.gather(*sends)
            collect()
        await asyncio.sleep(2.0)  # the last answers
        collect()
        await one.client.publish(f"{PREFIX}/bridge/policy/set", json.dumps(
            {"request_id": "race-end", "microphones": {t: {"muted": False} for t in RACED}}))


# -- measuring ---------------------------------------------------------------------------------


def sample(bridge: BridgeProcess, url: str, soak: Soak, since: float) -> dict[str, Any]:
    assert bridge.proc is not None
    own, children, n_children = memory_mb(bridge.proc.pid)
    stats = fetch_stats(url)
    sats = stats.get("satellites", {})
    soak.counters.update(sats)
    dropped = {reason: sum(int(s.get(reason, 0)) for s in soak.counters.values()) for reason in DROP_REASONS}
    dropped["muted"] = int(stats.get("dropped_muted", 0))
    dropped["outgoing"] = int(stats.get("dropped_outgoing", 0))
    shed = stats.get("shed_inbound", {})
    dropped["backlog_audio"] = int(shed.get("audio", 0))  # shed in the incoming queue: the bridge fell behind
    dropped["backlog_other"] = int(shed.get("other", 0))
    talks = [t for t in soak.talks if t.at >= since]
    latencies = [t.latency_ms for t in talks if t.latency_ms is not None]
    return {
        "minute": round((time.monotonic() - soak.started) / 60, 2),
        "bridge_rss_mb": own, "workers_rss_mb": children, "children": n_children,
        "loop_lag_p99_ms": stats.get("loop_lag_p99_ms"), "loop_lag_max_ms": stats.get("loop_lag_max_ms"),
        "satellites": len(sats), "errors": dict(sorted(stats.get("errors", {}).items())),
        "errors_total": sum(stats.get("errors", {}).values()), "dropped": dropped,
        "messages": stats.get("messages"), "frames": stats.get("frames"),
        "decoder_restarts": stats.get("decoder_restarts"), "reconnects": stats.get("reconnects"),
        "log": log_counts(bridge.log_path),
        "talks": len(talks), "answered": sum(t.answered for t in talks), "correct": sum(t.correct for t in talks),
        "latency_p50_ms": pct(latencies, 0.5), "latency_p95_ms": pct(latencies, 0.95),
        "policy_sent": len(soak.policy_sent), "policy_answered": len(soak.policy_answered & soak.policy_sent),
    }


def fmt(value: object, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


ROW_HEAD = ("| minute | bridge RSS MB | workers RSS MB | loop lag p99 (max) ms | satellites | errors | "
            "dropped (queue/rate/late/gap/muted) | log lines (tracebacks) | talks answered | latency p50/p95 ms |")


def row(s: dict[str, Any]) -> str:
    d = s["dropped"]
    return (f"| {s['minute']:.1f} | {s['bridge_rss_mb']:.0f} | {s['workers_rss_mb']:.0f} | "
            f"{fmt(s['loop_lag_p99_ms'], 1)} ({fmt(s['loop_lag_max_ms'], 1)}) | {s['satellites']} | {s['errors_total']} | "
            f"{d['dropped_queue_full']}/{d['rate_limited']}/{d['late']}/{d['gaps']}/{d['muted']} | "
            f"{s['log']['lines']} ({s['log']['tracebacks']}) | {s['answered']}/{s['talks']} | "
            f"{fmt(s['latency_p50_ms'])}/{fmt(s['latency_p95_ms'])} |")


async def monitor(bridge: BridgeProcess, url: str, interval: float, soak: Soak, stop: asyncio.Event) -> None:
    print(ROW_HEAD + "\n|" + "---|" * 10, flush=True)
    since = 0.0
    while await paced(stop, interval):
        if bridge.proc is None or bridge.proc.poll() is not None:
            print(f"the bridge exited ({bridge.proc.returncode if bridge.proc else '?'}); stopping", flush=True)
            stop.set()
            return
        try:
            s = sample(bridge, url, soak, since)
        except OSError as err:
            print(f"| sample failed: {err} |", flush=True)
            continue
        since = time.monotonic() - soak.started
        soak.samples.append(s)
        print(row(s), flush=True)


def summary(soak: Soak, final: dict[str, Any], cooled: dict[str, Any], args: argparse.Namespace) -> str:
    samples = soak.samples or [final]
    first, last = samples[0], final
    lat = [t.latency_ms for t in soak.talks if t.latency_ms is not None]
    answered = sum(t.answered for t in soak.talks)
    worst_lag = max((s["loop_lag_p99_ms"] or 0.0) for s in [*samples, final])
    growth = [s["bridge_rss_mb"] for s in [*soak.samples, final, cooled]]
    lines = [
        f"Command: `.venv/bin/python bench/soak.py --minutes {args.minutes:g}` ({os.cpu_count()} cores; "
        f"{args.talkers} talkers, {args.streamers} streamers, churn {args.churn:g}/s, flood ×{args.flood_factor:g}, "
        f"malformed {args.malformed:g}/s, policy bursts of {args.policy_burst} every {args.policy_every:g} s)", "",
        "| measure | result | target |", "|---|---|---|",
        f"| bridge resident memory: first sample → end → after {args.cooldown:g} s idle | "
        f"{first['bridge_rss_mb']:.0f} → {last['bridge_rss_mb']:.0f} → {cooled['bridge_rss_mb']:.0f} MB "
        f"(min {min(growth):.0f}, max {max(growth):.0f}) | flat |",
        f"| decoder workers' resident memory: first → end | {first['workers_rss_mb']:.0f} → {last['workers_rss_mb']:.0f} MB "
        f"({last['children']} processes) | flat |",
        f"| event-loop lag p99 over a minute, worst sample (max at end) | {worst_lag:.1f} ms ({fmt(last['loop_lag_max_ms'], 1)} ms) | ≤ 20 ms |",
        f"| talkers answered | {answered}/{len(soak.talks)} ({sum(t.correct for t in soak.talks)} exactly right) | all |",
        f"| talkers' end of speech → transcript, p50 / p95 | {fmt(pct(lat, 0.5))} / {fmt(pct(lat, 0.95))} ms | |",
        f"| policy commands answered | {len(soak.policy_answered & soak.policy_sent)}/{len(soak.policy_sent)} | all |",
        f"| dropped frames by reason | {', '.join(f'{k} {v}' for k, v in last['dropped'].items() if v) or 'none'} | |",
        f"| errors counted by code | {', '.join(f'{k} {v}' for k, v in last['errors'].items()) or 'none'} | |",
        f"| bridge log lines (warnings / errors / tracebacks / never-retrieved) | {last['log']['lines']} "
        f"({last['log']['warning']} / {last['log']['error']} / {last['log']['tracebacks']} / {last['log']['never_retrieved']}) | bounded |",
        f"| satellites in the table at the end | {last['satellites']} | what is live |",
        f"| decoder restarts / broker reconnects | {last['decoder_restarts']} / {last['reconnects']} | 0 / 0 |",
        f"| messages sent by the soak | {', '.join(f'{k} {v}' for k, v in sorted(soak.sent.items()))} | |",
    ]
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between reports")
    parser.add_argument("--talkers", type=int, default=2)
    parser.add_argument("--streamers", type=int, default=2, help="satellites streaming without a wake word")
    parser.add_argument("--churn", type=float, default=1.0, help="new satellites per second")
    parser.add_argument("--flood-factor", type=float, default=10.0, help="the flooder's speed (0: no flooder)")
    parser.add_argument("--malformed", type=float, default=5.0, help="malformed messages per second")
    parser.add_argument("--policy-every", type=float, default=5.0, help="seconds between policy bursts")
    parser.add_argument("--policy-burst", type=int, default=10)
    parser.add_argument("--cooldown", type=float, default=20.0, help="idle seconds before the last memory sample")
    parser.add_argument("--json", type=Path, default=None, help="where to write every sample (default: a temp file)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hearth-soak-"))
    clips = [(text, load_wav_pcm16k(synthesize(text, tmp / f"c{i}-{j}.wav", voice=voice)))
             for i, text in enumerate(COMMANDS) for j, voice in enumerate(VOICES)]
    chatter = b"".join(load_wav_pcm16k(synthesize(text, tmp / f"chat{i}.wav")) for i, text in enumerate(CHATTER))
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp / "data").start()
    url = wait_for_retained(broker.host, broker.port, f"{PREFIX}/bridge/status", lambda d: d.get("state") == "online")["status_api"]
    soak = Soak()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(talker(i, broker, clips, soak, stop)) for i in range(args.talkers)]
    tasks += [asyncio.create_task(streamer(f"stream{i}", broker, chatter, 1.0, soak, stop)) for i in range(args.streamers)]
    if args.flood_factor > 0:
        tasks.append(asyncio.create_task(streamer("flooder", broker, chatter, args.flood_factor, soak, stop)))
    if args.churn > 0:
        tasks.append(asyncio.create_task(churn(broker, args.churn, soak, stop)))
    if args.malformed > 0:
        tasks.append(asyncio.create_task(misbehave(broker, args.malformed, soak, stop)))
    if args.policy_burst > 0:
        tasks.append(asyncio.create_task(policy_racer(broker, args.policy_every, args.policy_burst, soak, stop)))
    watcher = asyncio.create_task(monitor(bridge, url, args.interval, soak, stop))
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.minutes * 60)
        if not stop.is_set():
            with contextlib.suppress(OSError):
                sample(bridge, url, soak, 0.0)  # the satellites' counters before the parts leave
        stop.set()
        done, pending = await asyncio.wait(tasks, timeout=30)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, watcher, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                print(f"a soak part failed: {task.exception()!r}", flush=True)
        final = sample(bridge, url, soak, 0.0)
        print(row(final), flush=True)
        await asyncio.sleep(args.cooldown)
        cooled = sample(bridge, url, soak, 0.0)
        table = summary(soak, final, cooled, args)
        print("\n## Soak\n\n" + table, flush=True)
        out = args.json or tmp / "soak.json"
        out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "samples": soak.samples,
                                   "final": final, "after_cooldown": cooled, "talks": [asdict(t) for t in soak.talks],
                                   "sent": soak.sent, "policy_sent": len(soak.policy_sent),
                                   "policy_answered": len(soak.policy_answered & soak.policy_sent),
                                   "markdown": table}, indent=1))
        print(f"\nJSON: {out}\nbridge log: {bridge.log_path}", flush=True)
    finally:
        bridge.stop()
        broker.close()


if __name__ == "__main__":
    asyncio.run(main())
