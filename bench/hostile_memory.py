"""Memory after hostile messages: the real bridge before, right after and a while after a flood.

    .venv/bin/python bench/hostile_memory.py [--vocabularies 40] [--idle 30]

Against a real Mosquitto and the real bridge process (tests/support), it measures the resident
memory (VmRSS) of the bridge and of its decoder workers, then sends, as fast as the broker takes
them, what hostile probing sends (the shapes of tests/support/fuzz.py, drawn from a fixed seed so
every run sends the same):

- `--vocabularies` small vocabularies on `vocabulary/set` that parse (one to three entities with
  made-up names, each different) and as many that do not;
- `--ghosts` satellites announcing themselves "online" without a last will;
- `--queries` Hermes NLU queries of made-up text;
- `--malformed` broken frames and JSON (bench/soak.py's mix).

It then waits until the bridge has dealt with all of it (the vocabulary state names the last
vocabulary, and the compiles stop), idles `--idle` seconds, and measures again. It prints one
markdown row per moment and the seconds the bridge spent catching up. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import string
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from soak import PREFIX, malformed, memory_mb  # noqa: E402

from bridge.protocol import hermes  # noqa: E402
from tests.support.bridge_proc import BridgeProcess, Probe  # noqa: E402
from tests.support.broker import Mosquitto  # noqa: E402


DEMO = yaml.safe_load((ROOT / "bridge/data/demo_home.yaml").read_text(encoding="utf-8"))


def word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 9)))


def vocabulary(rng: random.Random, n: int) -> dict[str, object]:
    """A small vocabulary that parses, different from every other one (`n` is in a name)."""
    areas = [{"id": f"area{n}_{i}", "name": f"{word(rng)} {word(rng)}"} for i in range(rng.randint(0, 2))]
    entities = [{"id": f"light.fuzz{n}_{i}", "name": f"{word(rng)} {word(rng)}", "domain": "light",
                 **({"area": areas[0]["id"]} if areas else {})} for i in range(rng.randint(1, 3))]
    return {"language": "en", "areas": areas, "entities": entities}


def broken_vocabulary(rng: random.Random, n: int) -> bytes:
    choice = n % 3
    if choice == 0:
        return b'{"entities": [{"id": 5}'
    if choice == 1:
        return json.dumps({"entities": [{"id": "light.x", "name": " ", "domain": "light"}]}).encode()
    return json.dumps({"language": "en", "entities": [{"id": f"light.{word(rng)}", "name": word(rng),
                                                       "domain": "light", "area": "attic"}]}).encode()


def row(label: str, pid: int) -> tuple[str, float]:
    own, children, count = memory_mb(pid)
    return f"| {label} | {own:.0f} | {children:.0f} ({count}) | {own + children:.0f} |", own + children


async def flood(broker: Mosquitto, args: argparse.Namespace) -> None:
    """Sends everything, from a fixed seed."""
    rng = random.Random(30)
    async with Probe(broker.host, broker.port, []) as probe:
        client = probe.client
        for n in range(args.vocabularies):
            await client.publish(f"{PREFIX}/bridge/vocabulary/set", json.dumps(vocabulary(rng, n)))
            await client.publish(f"{PREFIX}/bridge/vocabulary/set", broken_vocabulary(rng, n))
        for n in range(args.ghosts):
            await client.publish(f"{PREFIX}/satellite/ghost{n}/status", json.dumps({"state": "online", "protocol": 1}))
        for n in range(args.queries):
            text = " ".join(word(rng) for _ in range(rng.randint(1, 8)))
            await client.publish(hermes.NLU_QUERY, json.dumps({"input": text, "siteId": "fuzz", "id": str(n)}))
        for n in range(args.malformed):
            topic, payload = malformed(rng, n)
            await client.publish(topic, payload)
        # The last word on the vocabulary: the home's own again (the demo home the bridge started
        # with), as Home Assistant's re-sync sends it; before and after then serve the same grammar.
        await client.publish(f"{PREFIX}/bridge/vocabulary/set", json.dumps(DEMO))


async def settled(bridge: BridgeProcess, timeout: float) -> float:
    """Seconds until no vocabulary has been compiled for 10 s (the backlog drained)."""
    started = time.monotonic()
    quiet_since = time.monotonic()
    compiles = bridge.log().count("in service:")
    while time.monotonic() - started < timeout:
        await asyncio.sleep(1.0)
        now = bridge.log().count("in service:")
        if now != compiles:
            compiles, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= 10.0:
            return quiet_since - started
    return timeout


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocabularies", type=int, default=40)
    parser.add_argument("--ghosts", type=int, default=199)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--malformed", type=int, default=2000)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait for the bridge to catch up")
    args = parser.parse_args()
    broker = Mosquitto().start()
    data = Path(tempfile.mkdtemp(prefix="hearth-hostile-"))
    bridge = BridgeProcess(broker.host, broker.port, data / "data").start()
    assert bridge.proc is not None
    pid = bridge.proc.pid
    try:
        await asyncio.sleep(10)
        lines = ["| moment | bridge MB | workers MB (count) | total MB |", "|---|---|---|---|"]
        line, before = row("before", pid)
        lines.append(line)
        compiles_before = bridge.log().count("in service:")
        sent_at = time.monotonic()
        await flood(broker, args)
        sent = time.monotonic() - sent_at
        line, _ = row(f"flood sent ({sent:.0f} s)", pid)
        lines.append(line)
        caught_up = await settled(bridge, args.timeout)
        line, _ = row(f"caught up ({caught_up:.0f} s after)", pid)
        lines.append(line)
        await asyncio.sleep(args.idle)
        line, after = row(f"idle {args.idle:.0f} s", pid)
        lines.append(line)
        compiles = bridge.log().count("in service:") - compiles_before
        print("\n".join(lines))
        print(f"\nvocabularies compiled and loaded: {compiles} of {args.vocabularies + 1} that parse "
              "(the last one the demo home again); "
              f"growth {after - before:+.0f} MB")
    finally:
        bridge.stop()
        broker.close()


if __name__ == "__main__":
    asyncio.run(main())
