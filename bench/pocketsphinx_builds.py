"""Decode CPU of Hearth's patched pocketsphinx against PyPI's wheel, on the same audio.

The grammar benchmark's home (20 areas, 300 entities) and its 36 utterances (3 voices) are
synthesised once; then each build decodes all of them in its own process, the builds taking
turns for several rounds (the machine's speed drifts, so interleaving keeps the comparison fair).
Each utterance is decoded 3 times and the least CPU kept, as in grammar_bench.py. The script also
checks that both builds produced the same results (text, confidence, reason, score, word timings).

    .venv/bin/python bench/pocketsphinx_builds.py --rounds 3

PyPI's wheel is the copy scripts/_env.sh installs in ``<venv>/pocketsphinx-stock``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

STOCK = Path(sys.prefix) / "pocketsphinx-stock"


def worker(batch: Path, repeat: int) -> None:
    """Decode every utterance of `batch` with whichever pocketsphinx is importable; print JSON."""
    import grammar_bench

    from bridge.recognition import compile_grammar
    from bridge.recognition.decoder import pocketsphinx_build
    from bridge.resources import cmudict, new_decoder
    from tests.support.decode_pcm import decode_one

    utterances: list[bytes] = pickle.loads(batch.read_bytes())
    decoder = new_decoder(compile_grammar(grammar_bench.bench_home(), cmudict()))
    cpu = audio = 0.0
    outputs = []
    for pcm in utterances:
        best = None
        for i in range(repeat):
            result, found = decode_one(decoder, pcm, chunk=960)
            if i == 0:  # the first decode of each: the same sequence in every process
                outputs.append(found)
            best = result if best is None or result.cpu_seconds < best.cpu_seconds else best
        assert best is not None
        cpu += best.cpu_seconds
        audio += best.audio_seconds
    decoder.close()
    digest = hashlib.sha256(json.dumps(outputs).encode()).hexdigest()[:16]
    json.dump({"build": pocketsphinx_build(), "cpu": cpu, "audio": audio, "results": digest},
              sys.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.repeat)
        return
    if not (STOCK / "pocketsphinx").is_dir():
        sys.exit(f"{STOCK} is missing: scripts/_env.sh installs PyPI's wheel there")

    import grammar_bench

    from tests.support.speech import read_pcm, synthesize

    builds = {"PyPI's wheel": str(STOCK), "installed": ""}
    runs: dict[str, list[dict[str, object]]] = {name: [] for name in builds}
    with tempfile.TemporaryDirectory() as tmp:
        utterances = []
        for i, (voice, text) in enumerate(itertools.product(["en-us", "en", "en-gb-x-rp"],
                                                            grammar_bench.COMMANDS)):
            utterances.append(read_pcm(synthesize(text, Path(tmp) / f"{i}.wav", voice=voice)))
        batch = Path(tmp) / "utterances.pickle"
        batch.write_bytes(pickle.dumps(utterances))
        for _ in range(args.rounds):
            for name, path in builds.items():
                env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": path}
                done = subprocess.run(
                    [sys.executable, __file__, "--worker", str(batch), "--repeat", str(args.repeat)],
                    env=env, capture_output=True, text=True, check=True)
                runs[name].append(json.loads(done.stdout))
    audio = float(runs["installed"][0]["audio"])  # type: ignore[arg-type]
    print(f"300-entity home, 36 utterances ({audio:.0f} s of audio, 3 voices), least CPU of "
          f"{args.repeat} decodes per utterance, {args.rounds} rounds, builds interleaved; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    print("| pocketsphinx | version | decode CPU per audio second, each round | results |")
    print("|---|---|---|---|")
    reference = runs["PyPI's wheel"][0]["results"]
    for name, results in runs.items():
        cpus = ", ".join(f"{float(r['cpu']) / float(r['audio']):.4f}" for r in results)  # type: ignore[arg-type]
        same = all(r["results"] == reference for r in results)
        print(f"| {name} | {results[0]['build']} | {cpus} | "
              f"{'identical to the wheel' if same else 'DIFFERENT'} |")


if __name__ == "__main__":
    main()
