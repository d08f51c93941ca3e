"""Recognition accuracy on the bench's test set, offline or through the real bridge. Not a test.

    .venv/bin/python bench/accuracy_bench.py --offline --set tuning --sample 400 --procs 1
    .venv/bin/python bench/accuracy_bench.py --set heldout --sample 300 --parallel 2   # real bridge

Test set: bench/corpus.py — every English espeak-ng voice with male and female variants, flite and
festival voices, speeds 130-200 words a minute, generated homes of different sizes and naming
styles (bench/homes.py), commands over the intents Hearth covers and sentences that are not
commands (some sharing words with commands), each (voice, sentence) in one condition of a seeded
rotation: clean, pink noise, babble, music-like noise at 20 / 10 / 5 dB, reverberation, a quiet
far-away speaker. THE SPLIT (voices, homes, non-commands) is fixed in corpus.py: choose nothing by
looking at `--set heldout`.

Two runners over the same samples:
- `--offline`: GrammarDecoder + IntentRecognizer directly in `--procs` processes
  (bench/tune_offline.py: cut at the endpointer's end, 960-byte chunks, the bridge's refusal
  rules); reports decoding CPU per audio second. `--decoder NAME=VALUE` overrides DecoderSettings.
- default: a real bridge (real Mosquitto), given each home as its vocabulary over MQTT, and
  simulated satellites streaming every sample in real time (`--parallel` at once); reports end of
  speech -> intent latency.
Reports (markdown on stdout) per voice group and per condition, tuning and held-out in separate
tables: commands understood exactly, wrong actions on their own, non-commands acted on. Every
sample goes to the JSON file `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# HEARTH_CODE=/path/to/a/worktree measures that tree's bridge/ with this bench
CODE = Path(os.environ.get("HEARTH_CODE") or ROOT).resolve()
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(CODE))
sys.path.insert(0, str(ROOT / "bench"))

import tune_offline  # noqa: E402
from audio_mix import mix_at_snr, pink, read_wav, speak, write_wav  # noqa: E402
from homes import ACC_COMMANDS, ACC_HOME, ACC_SATELLITE_AREA, build_homes  # noqa: E402
from report import outcome, tables, understood  # noqa: E402

from bridge.recognition import parse_vocabulary  # noqa: E402
from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite  # noqa: E402

# the names this module had before the corpus (kept for scripts that import them)
HOME = ACC_HOME
COMMANDS = ACC_COMMANDS
SATELLITE_AREA = ACC_SATELLITE_AREA
__all__ = ["COMMANDS", "HOME", "SATELLITE_AREA", "add_noise", "synthesize", "understood"]


def synthesize(text: str, voice: str, speed: int, path: Path) -> None:
    """espeak-ng `voice` at `speed` words a minute into `path` (16 kHz mono, the corpus's padding)."""
    speak("espeak-ng", voice, text, speed, path)


def add_noise(clean: Path, snr_db: float, out: Path, seed: int = 0) -> None:
    """Pink noise at `snr_db` below the speech (RMS over voiced frames)."""
    import numpy as np
    x = read_wav(clean)
    write_wav(out, mix_at_snr(x, pink(len(x), np.random.default_rng(seed)), snr_db))


async def bridge_run(samples: list[dict[str, Any]], seed: int, parallel: int) -> list[dict[str, Any]]:
    """Every sample streamed in real time to a real bridge, home by home."""
    from tests.support.bridge_proc import BridgeProcess, Probe
    from tests.support.broker import Mosquitto

    homes = build_homes(seed)
    tmp = Path(tempfile.mkdtemp(prefix="hearth-accuracy-"))
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp / "data").start()
    results: list[dict[str, Any]] = []
    try:
        for key in dict.fromkeys(s["home"] for s in samples):
            vocab = homes[key].vocab
            want = parse_vocabulary(vocab).hash()
            async with Probe(broker.host, broker.port, ["hearth/bridge/vocabulary/state"]) as probe:
                await probe.client.publish("hearth/bridge/vocabulary/set", json.dumps(vocab), retain=True)
                await probe.wait_for("vocabulary/state", lambda d, w=want: d["status"] == "ok" and d["hash"] == w, 180)
            queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            for sample in samples:
                if sample["home"] == key:
                    queue.put_nowait(sample)

            async def speaker(index: int, queue: asyncio.Queue[dict[str, Any]]) -> None:
                while not queue.empty():
                    sample = queue.get_nowait()
                    opts = SatelliteOptions(sat_id=f"acc{index}", host=broker.host, port=broker.port, timeout=20,
                                            trailing_silence=1.0, area=sample["satellite_area"],
                                            end_of_speech=sample["end_of_speech"])
                    try:
                        result = await run_satellite(opts, load_wav_pcm16k(Path(sample["path"])))
                    except Exception as err:  # noqa: BLE001 - counted as not understood
                        result = {"transcript": "", "rejected": True, "error": str(err), "latency_ms": None}
                    r = {**sample, "heard": result.get("transcript"), "rejected": bool(result.get("rejected")),
                         "intent": result.get("intent"), "latency_ms": result.get("latency_ms"),
                         "confidence": result.get("confidence"), "error": result.get("error")}
                    r["outcome"] = outcome(r)
                    results.append(r)

            await asyncio.gather(*(speaker(i, queue) for i in range(parallel)))
    finally:
        bridge.stop()
        broker.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tune_offline.add_selection_args(parser, "--set")
    parser.add_argument("--offline", action="store_true", help="decode in-process instead of through the bridge")
    parser.add_argument("--decoder", action="append", default=[], metavar="NAME=VALUE",
                        help="(offline) replace a DecoderSettings field")
    parser.add_argument("--parallel", type=int, default=2, help="(bridge) satellites speaking at once")
    parser.add_argument("--repeatable-noise", action="store_true",
                        help="the same noise in every run (the default; kept for old command lines)")
    parser.add_argument("--out", type=Path, default=None, help="every sample as JSON "
                        "(default bench/out/accuracy-<offline|bridge>-<set>.json)")
    args = parser.parse_args()
    mode = "offline" if args.offline else "bridge"
    out = args.out or ROOT / f"bench/out/accuracy-{mode}-{args.split}.json"
    started = time.monotonic()
    samples = tune_offline.build_samples(args.split, args.seed, args.sample, args.limit, args.all_conditions,
                                         args.fresh_noise, args.voices, args.homes, args.conditions)
    rendered = time.monotonic()
    if args.offline:
        results = tune_offline.run(samples, tune_offline.settings_from(args.decoder), args.procs,
                                   not args.no_open_ear)
    else:
        results = asyncio.run(bridge_run(samples, args.seed, args.parallel))
    elapsed = time.monotonic() - rendered
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=0, default=str))
    command = " ".join(["bench/accuracy_bench.py", *sys.argv[1:]])
    how = (f"offline, {args.procs} process(es)" if args.offline
           else f"real bridge over MQTT, real time, {args.parallel} satellites at once")
    print(f"## Recognition accuracy ({mode})\n")
    print(f"Command: `.venv/bin/python {command}` — {len(results)} samples, {how}; "
          f"audio ready in {rendered - started:.0f} s, run in {elapsed / 60:.1f} min. Seed {args.seed}. "
          f"Bridge code: {tune_offline.code_version()}.\n")
    print(tables(results, mode))
    print(f"Every sample: {out}")


if __name__ == "__main__":
    main()
