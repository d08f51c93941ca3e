"""Offline runner of the accuracy bench (no MQTT, no bridge): the recognizer on the bench's test set.

    .venv/bin/python bench/tune_offline.py --split tuning --sample 400 --procs 1 [--set NAME=VALUE ...]
        [--tag NAME] [--voices espeak:en-us,flite:slt] [--homes acc,flat] [--conditions clean,pink]
    .venv/bin/python bench/tune_offline.py --sweep --tag NAME [--thresholds 0.05,0.06]

Test set: bench/corpus.py (voices, THE SPLIT, homes from bench/homes.py, conditions, seeded
rotation, audio cached under bench/out/corpus/). Tune on `--split tuning` only; never choose
anything by looking at `--split heldout`.

Each file is cut where the bridge's endpointer would end it (end of the clean speech + 0.25 s),
fed to GrammarDecoder in 960-byte chunks (asking `is_complete()` after each, as the bridge does),
then the worker's own judgement (bridge/stt/worker.py `hear`: intent in the home's satellite area,
the close-call review, the open ear unless `--no-open-ear`, and the verdict: act / ask / refuse)
and commands are scored with bench/report.py's `understood()`. `--set NAME=VALUE` replaces a field of the decoder's
DecoderSettings (bridge/recognition/settings.py; upper or lower case, e.g. `--set MAXHMMPF=30000`,
`--set cmvn=False`, `--set "PITCH_WARPS=((160.0, 1.1),)"`). Raw per-sample results go to
bench/out/tune/<tag>.json for threshold sweeps without decoding again (`--sweep`).
bench/accuracy_bench.py `--offline` is the same runner with the bench's report.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
# HEARTH_CODE=/path/to/a/worktree measures that tree's bridge/ with this bench
CODE = Path(os.environ.get("HEARTH_CODE") or ROOT).resolve()
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(CODE))
sys.path.insert(0, str(ROOT / "bench"))

import corpus  # noqa: E402
from homes import build_homes  # noqa: E402
from report import outcome, tables, understood  # noqa: E402

from bridge.recognition import DecoderSettings  # noqa: E402
from bridge.recognition.verdict import Outcome, VerdictSettings  # noqa: E402
from bridge.tools.satellite import load_wav_pcm16k  # noqa: E402

CACHE = ROOT / "bench/out/tune"
ENDPOINT_TAIL = 0.25  # the bridge's endpointer ends ~0.1-0.3 s after speech


def code_version() -> str:
    """Which bridge/ is measured: its tree and commit (+ "dirty" with uncommitted changes)."""
    import subprocess
    try:
        rev = subprocess.run(["git", "-C", str(CODE), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(CODE), "status", "--porcelain", "bridge"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(CODE)
    return f"{CODE} @ {rev}{' + uncommitted changes' if dirty else ''}"


def build_samples(split: str = "tuning", seed: int = corpus.DEFAULT_SEED, sample: int = 0, limit: int = 0,
                  all_conditions: int = 0, fresh_noise: bool = False, voices: str = "", homes: str = "",
                  conditions: str = "") -> list[dict[str, Any]]:
    """The corpus's samples of `split` (a seeded subset with `sample`/`limit`), rendered, as dicts."""
    items = corpus.samples(split, seed, all_conditions)
    if voices:
        try:
            wanted = {corpus.voice_by_id(v).id for v in voices.split(",")}
        except KeyError as err:
            known = ", ".join(v.id for v in corpus.voices("all"))
            raise SystemExit(f"--voices: no voice {err} (one of: {known})") from None
        items = [s for s in items if s.voice in wanted]
    if homes:
        items = [s for s in items if s.home in homes.split(",")]
    if conditions:  # a condition (pink), a label (pink 10 dB) or an SNR (10)
        keep = set(conditions.split(","))
        items = [s for s in items if {s.condition, s.label, f"{s.snr:g}" if s.snr else "clean"} & keep]
    items = corpus.pick(items, sample, limit, seed)
    if not items:
        raise SystemExit("no samples match the selection")
    out = []
    for s in items:
        corpus.render_sample(s, seed, fresh_noise)
        out.append({**dataclasses.asdict(s), "label": s.label, "seed": seed})
    return out


_STATE: dict[str, Any] = {}


def _value(text: str) -> Any:
    """A --set value: JSON, else a Python literal (False, None, (165.0, 1.2)), else the text."""
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text

    def tuples(v: Any) -> Any:  # JSON lists -> the tuples the settings hold
        return tuple(tuples(x) for x in v) if isinstance(v, (list, tuple)) else v
    return tuples(value)


def settings_from(items: list[str]) -> DecoderSettings:
    """DecoderSettings with each NAME=VALUE of `items` replaced (NAME: a field, any case)."""
    fields = {f.name: f for f in dataclasses.fields(DecoderSettings)}
    changes: dict[str, Any] = {}
    for item in items:
        key, _, raw = item.partition("=")
        name = key.strip().lower()
        if name not in fields:
            raise SystemExit(f"--set {key}: not a DecoderSettings field "
                             f"(one of: {', '.join(sorted(fields))})")
        default = getattr(DecoderSettings(), name)
        changes[name] = raw if isinstance(default, str) else _value(raw)
    return dataclasses.replace(DecoderSettings(), **changes)


def _init(settings: DecoderSettings, open_ear: bool = True) -> None:
    _STATE["settings"] = settings
    _STATE["open_ear"] = open_ear


def _get(home: str, seed: int) -> tuple[Any, Any, Any]:
    key = f"{home}:{seed}"
    if key not in _STATE:
        from bridge.recognition import IntentRecognizer, compile_grammar, parse_vocabulary
        from bridge.recognition.closecall import Reviewer
        from bridge.resources import cmudict, new_decoder
        vocab = parse_vocabulary(build_homes(seed)[home].vocab)
        decoder = new_decoder(compile_grammar(vocab, cmudict()), _STATE["settings"])
        if _STATE.get("open_ear", True):
            if "ear" not in _STATE:
                from bridge.resources import new_open_ear
                _STATE["ear"] = new_open_ear()
            decoder.follower = _STATE["ear"]
        _STATE[key] = (decoder, IntentRecognizer(vocab), Reviewer(vocab))
    return _STATE[key]


def _intent_dict(match: Any) -> dict[str, Any] | None:
    if match is None:
        return None
    return {"name": match.name, "slots": {s.name: {"value": s.value, "entity_ids": list(s.entity_ids)}
                                          for s in match.slots}}


def run_one(sample: dict[str, Any]) -> dict[str, Any]:
    """Decode one sample as the bridge would and score it."""
    decoder, recognizer, reviewer = _get(sample["home"], sample["seed"])
    path = Path(sample["path"])
    if os.environ.get("TUNE_AUDIO_DIR"):  # the same files, processed elsewhere (front-end experiments)
        path = Path(os.environ["TUNE_AUDIO_DIR"]) / path.name
    pcm = load_wav_pcm16k(path)
    pcm = pcm[: int((sample["end_of_speech"] + ENDPOINT_TAIL) * 16000) * 2]
    decoder.start()
    for i in range(0, len(pcm), 960):
        decoder.feed(pcm[i:i + 960])
        decoder.is_complete()  # the bridge asks after every chunk
    res = decoder.finish()
    from bridge.stt.worker import hear
    ear = decoder.follower
    verdict, intent, intent_cpu, hearing = hear(decoder, res, recognizer, reviewer, ear, sample["satellite_area"],
                                       VerdictSettings())
    match = intent
    out = dict(sample)
    score = decoder.last_score
    out.update(heard=res.text, rejected=verdict.outcome is not Outcome.ACT, verdict=str(verdict.outcome),
               reason=verdict.reason, choices=[c.get("name") for c in verdict.choices],
               open_text=hearing.open_text, open_agreement=hearing.open_agreement,
               open_fit_gap=hearing.open_fit_gap,
               open_opposite=hearing.open_opposite, open_broad_missing=hearing.open_broad_missing,
               open_cpu=ear.cpu_seconds if ear is not None else 0.0,
               open_end_cpu=ear.end_cpu_seconds if ear is not None else 0.0, intent_cpu=intent_cpu,
               confidence=res.confidence,
               per_frame=score.per_frame, speech_frames=score.speech_frames,
               worst_word=score.worst_word, words=score.words,
               cpu=res.cpu_seconds, audio=res.audio_seconds,
               f0=decoder.last_f0, warp=decoder.last_warp, snr_est=decoder.last_snr,
               scale=decoder.last_scale, intent=_intent_dict(match),
               threshold=getattr(res, "threshold", None))
    out["right_meaning"] = bool(sample["command"] and understood({"intent": out["intent"]}, sample["expected"]))
    out["outcome"] = outcome(out)
    return out


def run(samples: list[dict[str, Any]], settings: DecoderSettings, procs: int,
        open_ear: bool = True) -> list[dict[str, Any]]:
    """run_one over `samples` in `procs` worker processes (1: in this process)."""
    if procs <= 1:
        _init(settings, open_ear)
        return [run_one(s) for s in samples]
    with multiprocessing.get_context("fork").Pool(procs, _init, (settings, open_ear)) as pool:
        return pool.map(run_one, samples, chunksize=4)


def threshold_rule(threshold: float | None) -> Callable[[dict[str, Any]], bool] | None:
    """With `threshold`, rejection re-decided from the stored per-frame score (for --sweep)."""
    if threshold is None:
        return None

    def rejected(r: dict[str, Any]) -> bool:
        return (not r["heard"] or r["per_frame"] is None or r["per_frame"] > threshold
                or r["speech_frames"] < 15)
    return rejected


def summarize(results: list[dict[str, Any]], threshold: float | None = None) -> str:
    """The bench's markdown tables (bench/report.py) for offline results."""
    return tables(results, "offline", threshold_rule(threshold))


def add_selection_args(parser: argparse.ArgumentParser, split_flag: str) -> None:
    parser.add_argument(split_flag, dest="split", default="tuning", choices=("tuning", "heldout", "all"),
                        help="which side of THE SPLIT (bench/corpus.py); choose settings on tuning only")
    parser.add_argument("--sample", type=int, default=0, help="a seeded random subset of N samples")
    parser.add_argument("--limit", type=int, default=0, help="at most the first N samples (after --sample)")
    parser.add_argument("--seed", type=int, default=corpus.DEFAULT_SEED)
    parser.add_argument("--all-conditions", type=int, default=0, metavar="N",
                        help="render every condition for N sentences instead of one each")
    parser.add_argument("--voices", default="", help="only these voices (ids, e.g. espeak:en-us,flite:slt)")
    parser.add_argument("--homes", default="", help="only these homes (acc,flat,family,big,cottage)")
    parser.add_argument("--conditions", default="", help="only these conditions (clean,pink,babble,...)")
    parser.add_argument("--fresh-noise", action="store_true",
                        help="new noise each run (default: noise seeded per sample, the same every run)")
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--no-open-ear", action="store_true", help="(offline) without the open ear")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_selection_args(parser, "--split")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--tag", default="last")
    parser.add_argument("--sweep", action="store_true", help="re-score a stored --tag at thresholds")
    parser.add_argument("--failures", action="store_true")
    parser.add_argument("--thresholds", default="0.045,0.05,0.0505,0.055,0.06,0.065,0.07,0.08",
                        help="per-frame score thresholds for --sweep")
    args = parser.parse_args()
    out = CACHE / f"{args.tag}.json"
    if args.sweep:
        results = json.loads(out.read_text())
        for t in (float(x) for x in args.thresholds.split(",")):
            print(f"\n## threshold {t}\n{summarize(results, t)}")
        return
    settings = settings_from(args.set)
    overrides = {k: v for k, v in dataclasses.asdict(settings).items()
                 if v != getattr(DecoderSettings(), k)}
    started = time.monotonic()
    samples = build_samples(args.split, args.seed, args.sample, args.limit, args.all_conditions,
                            args.fresh_noise, args.voices, args.homes, args.conditions)
    rendered = time.monotonic()
    results = run(samples, settings, args.procs, not args.no_open_ear)
    CACHE.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=0, default=str))
    print(f"bridge code: {code_version()}")
    print(f"{len(samples)} samples ({args.split}); audio ready in {rendered - started:.0f} s, decoded in "
          f"{time.monotonic() - rendered:.0f} s; overrides {overrides}; results {out}\n")
    print(summarize(results))
    if args.failures:
        for r in results:
            if r["outcome"] in ("missed", "wrong", "acted"):
                print(f"  {r['outcome']:>6} {r['voice']:>22} {r['label']:>12} {r['text']!r} -> {r['heard']!r} "
                      f"rej={r['rejected']} pf={r['per_frame']}")


if __name__ == "__main__":
    main()
