"""Offline tuning loop for the recognizer (no MQTT, no bridge): minutes instead of the bridge bench's 8.

    .venv/bin/python bench/tune_offline.py [--homes acc,demo,bench] [--voices en-us:160,en-us+f3:175]
        [--conditions clean,20,10] [--set NAME=VALUE ...] [--procs 2] [--tag NAME]

Test set: the same kind as bench/accuracy_bench.py (its HOME, COMMANDS, NON_COMMANDS, synthesize and
add_noise helpers: espeak-ng, 0.5 s lead, pink noise mixed with sox at 20 / 10 dB SNR), cached under
bench/out/tune/. Besides the accuracy bench's home, the demo home and the 300-entity home of
bench/grammar_bench.py are available (commands there are scored as "same intent, entities and
values as the reference sentence"), so a setting is never judged on one home only.

Each file is cut where the bridge's endpointer would end it (end of speech + 0.25 s), fed to
GrammarDecoder in 960-byte chunks, then IntentRecognizer; commands of the accuracy home are scored
exactly like accuracy_bench's `understood()`. `--set NAME=VALUE` replaces a field of the decoder's
DecoderSettings (bridge/recognition/settings.py; upper or lower case, e.g. `--set MAXHMMPF=30000`,
`--set cmvn=False`, `--set "PITCH_WARPS=((160.0, 1.1),)"`). Raw per-sample results
go to bench/out/tune/<tag>.json for threshold sweeps without decoding again (`--sweep`).
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
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from accuracy_bench import COMMANDS, HOME, NON_COMMANDS, SATELLITE_AREA, add_noise, synthesize, understood  # noqa: E402

from bridge.recognition import DecoderSettings  # noqa: E402
from bridge.recognition.intents import accept_harmless, refusal  # noqa: E402
from bridge.tools.satellite import end_of_speech_offset, load_wav_pcm16k  # noqa: E402

CACHE = ROOT / "bench/out/tune"
HELDOUT_NON_COMMANDS = [  # written after the recognizer's word lists: never tuned on
    "we should paint the fence before winter", "my brother bought a new bicycle",
    "the dentist appointment is on monday", "could you believe how cold it was",
    "the neighbours are having a party", "i lost my umbrella on the bus",
    "she plays the piano every evening", "the library closes at six",
    "that movie was far too long", "grandma sent us a postcard from spain",
    "the printer ran out of ink again", "we need more eggs and bread",
]
DEFAULT_VOICES = "en-us:160,en-us+f3:175,en-us+m7:145"
GENERAL_VOICES = "en-gb:165,en-gb-scotland:160,en-029:160,en-us+m3:160,en-us+f2:150"
ENDPOINT_TAIL = 0.25  # the bridge's endpointer ends ~0.1-0.3 s after speech

# Commands for the other homes: words of those homes only (no accuracy-bench names).
DEMO_COMMANDS = [
    "turn on the kitchen light", "turn off the reading lamp", "open the garage door",
    "set the bedroom light to fifty percent", "set the kitchen light to red",
    "set the temperature to twenty one degrees", "what time is it", "set a timer for five minutes",
    "lock the front door", "turn off the lights in the office", "pause the tv",
    "turn on the coffee maker", "close the living room blinds", "turn off the ceiling fan",
    "what is the outdoor temperature", "turn on the desk lamp",
]
DEMO_NON_COMMANDS = ["where did i leave my keys", "my sister is coming to visit next week",
                     "the weather is nice today isn't it", "hello how are you doing"]


def bench_commands() -> list[str]:
    from grammar_bench import COMMANDS as BENCH_COMMANDS
    return list(BENCH_COMMANDS)


def home_vocab(home: str) -> Any:
    from bridge.recognition import parse_vocabulary
    from bridge.resources import load_demo_vocabulary
    if home == "acc":
        return parse_vocabulary(HOME)
    if home == "demo":
        return load_demo_vocabulary()
    from grammar_bench import bench_home
    return bench_home()


def build_samples(homes: list[str], voices: list[tuple[str, int]], conditions: list[str],
                  noisy_non: bool = False) -> list[dict[str, Any]]:
    CACHE.mkdir(parents=True, exist_ok=True)
    samples: list[dict[str, Any]] = []
    for home in homes:
        if home == "acc":
            cmds = [(t, (i, e, v)) for t, i, e, v in COMMANDS]
            nons = HELDOUT_NON_COMMANDS if os.environ.get("TUNE_HELDOUT_NON") else NON_COMMANDS
        elif home == "demo":
            cmds = [(t, None) for t in DEMO_COMMANDS]
            nons = DEMO_NON_COMMANDS
        else:
            cmds = [(t, None) for t in bench_commands()]
            nons = NON_COMMANDS[:4]
        for voice, speed in voices:
            items = [(t, exp, True) for t, exp in cmds] + [(t, None, False) for t in nons]
            for text, expected, is_command in items:
                slug = "".join(c if c.isalnum() else "_" for c in text)[:60]
                clean = CACHE / f"{voice.replace('+', '_')}-{speed}-{slug}.wav"
                if not clean.exists():
                    synthesize(text, voice, speed, clean)
                for cond in conditions if is_command or noisy_non else ["clean"]:
                    path = clean
                    if cond != "clean":
                        path = clean.with_name(clean.stem + f"-{cond}db.wav")
                        if not path.exists():
                            add_noise(clean, float(cond), path)
                    samples.append({"home": home, "text": text, "voice": voice, "speed": speed,
                                    "condition": cond, "command": is_command,
                                    "expected": (expected[0], sorted(expected[1]), expected[2])
                                    if expected else None,
                                    "path": str(path), "clean": str(clean)})
    return samples


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


def _init(settings: DecoderSettings) -> None:
    _STATE["settings"] = settings


def _get(home: str) -> tuple[Any, Any, Any]:
    if home not in _STATE:
        from bridge.recognition import IntentRecognizer, compile_grammar
        from bridge.resources import cmudict, new_decoder
        vocab = home_vocab(home)
        decoder = new_decoder(compile_grammar(vocab, cmudict()), _STATE["settings"])
        _STATE[home] = (decoder, IntentRecognizer(vocab), vocab)
    return _STATE[home]


def _meaning(match: Any) -> Any:
    if match is None:
        return None
    values = tuple(sorted((k, str(v.value)) for k, v in match.slots.items()
                          if k not in ("name", "area", "floor")))
    return [match.name, sorted(match.entity_ids), values]


def _intent_dict(match: Any) -> dict[str, Any] | None:
    if match is None:
        return None
    return {"name": match.name, "slots": {k: {"value": s.value, "entity_ids": list(s.entity_ids)}
                                          for k, s in match.slots.items()}}


def run_one(sample: dict[str, Any]) -> dict[str, Any]:
    decoder, recognizer, _vocab = _get(sample["home"])
    path = Path(sample["path"])
    if os.environ.get("TUNE_AUDIO_DIR"):  # the same files, processed elsewhere (front-end experiments)
        path = Path(os.environ["TUNE_AUDIO_DIR"]) / path.name
    pcm = load_wav_pcm16k(path)
    eos = end_of_speech_offset(load_wav_pcm16k(Path(sample["clean"])))
    pcm = pcm[: int((eos + ENDPOINT_TAIL) * 16000) * 2]
    decoder.start()
    for i in range(0, len(pcm), 960):
        decoder.feed(pcm[i:i + 960])
        decoder.is_complete()  # the bridge asks after every chunk
    res = decoder.finish()
    area = SATELLITE_AREA if sample["home"] == "acc" else None
    match = recognizer.recognize(res.text, area_id=area) if res.text else None
    rejected = res.rejected and not accept_harmless(res.text, res.confidence, res.reject_reason, recognizer)
    # what the bridge refuses to act on (bridge/service.py, default config)
    rejected = rejected or (match is not None and refusal(match, res.confidence) is not None)
    out = dict(sample)
    score = decoder.last_score
    out.update(heard=res.text, rejected=rejected, confidence=res.confidence,
               per_frame=score.per_frame, speech_frames=score.speech_frames,
               worst_word=score.worst_word, words=score.words,
               cpu=res.cpu_seconds, audio=res.audio_seconds,
               f0=decoder.last_f0, warp=decoder.last_warp, snr=decoder.last_snr,
               scale=decoder.last_scale,
               intent=_intent_dict(match), meaning=_meaning(match),
               threshold=getattr(res, "threshold", None))
    if sample["command"]:
        if sample["expected"] is not None:
            name, ents, values = sample["expected"]
            out["right_meaning"] = understood({"intent": out["intent"], "rejected": False},
                                              (name, set(ents), values))
        else:
            ref = recognizer.recognize(sample["text"])
            out["right_meaning"] = ref is not None and _meaning(ref) == out["meaning"]
    return out


def summarize(results: list[dict[str, Any]], threshold: float | None = None) -> str:
    """Markdown tables. With `threshold`, rejection is re-decided from the stored score."""
    def rejected(r: dict[str, Any]) -> bool:
        if threshold is None:
            return bool(r["rejected"])
        return (not r["heard"] or r["per_frame"] is None or r["per_frame"] > threshold
                or r["speech_frames"] < 15)

    lines = []
    homes = sorted({r["home"] for r in results})
    voices = list(dict.fromkeys(r["voice"] for r in results))
    conds = list(dict.fromkeys(r["condition"] for r in results if r["command"]))
    lines.append("| home | voice | " + " | ".join(conds) + " | wrong acc. | non-cmd rejected |")
    lines.append("|---|---|" + "---|" * len(conds) + "---|---|")
    totals: dict[str, list[int]] = {c: [0, 0] for c in conds}
    tot_wrong = 0
    tot_non = [0, 0]
    for home in homes:
        for voice in voices + ["all"]:
            rows = [r for r in results if r["home"] == home and (voice == "all" or r["voice"] == voice)]
            if not rows:
                continue
            cells = []
            for c in conds:
                cr = [r for r in rows if r["command"] and r["condition"] == c]
                ok = sum(1 for r in cr if r["right_meaning"] and not rejected(r))
                cells.append(f"{ok}/{len(cr)}")
                if voice == "all":
                    totals[c][0] += ok
                    totals[c][1] += len(cr)
            wrong = sum(1 for r in rows if r["command"] and not r["right_meaning"]
                        and not rejected(r) and r["intent"])
            non = [r for r in rows if not r["command"]]
            nrej = sum(1 for r in non if rejected(r) or not r["intent"])
            if voice == "all":
                tot_wrong += wrong
                tot_non[0] += nrej
                tot_non[1] += len(non)
            lines.append(f"| {home} | {voice} | " + " | ".join(cells)
                         + f" | {wrong} | {nrej}/{len(non)} |")
    lines.append("| **all** | | " + " | ".join(f"**{a}/{b} ({100 * a / max(1, b):.0f}%)**"
                                                for a, b in totals.values())
                 + f" | {tot_wrong} | {tot_non[0]}/{tot_non[1]} |")
    non_conds = list(dict.fromkeys(r["condition"] for r in results if not r["command"]))
    if len(non_conds) > 1:
        parts = []
        for c in non_conds:
            non = [r for r in results if not r["command"] and r["condition"] == c]
            parts.append(f"{c} {sum(1 for r in non if rejected(r) or not r['intent'])}/{len(non)}")
        lines.append("\nnon-commands rejected per condition: " + ", ".join(parts))
    cpu = sum(r["cpu"] for r in results)
    audio = sum(r["audio"] for r in results)
    empty = sum(1 for r in results if r["command"] and not r["heard"])
    lines.append(f"\nCPU {cpu / max(audio, 1e-9):.4f} s per audio second over {audio:.0f} s; "
                 f"empty hypotheses on commands: {empty}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--homes", default="acc")
    parser.add_argument("--voices", default=DEFAULT_VOICES,
                        help=f"voice:speed,... ('general' = {GENERAL_VOICES})")
    parser.add_argument("--conditions", default="clean,20,10")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--tag", default="last")
    parser.add_argument("--sweep", action="store_true", help="re-score a stored --tag at thresholds")
    parser.add_argument("--failures", action="store_true")
    parser.add_argument("--noisy-non", action="store_true",
                        help="non-commands in every condition too (rejection under noise)")
    parser.add_argument("--thresholds", default="0.045,0.05,0.0505,0.055,0.06,0.065,0.07,0.08",
                        help="per-frame score thresholds for --sweep")
    args = parser.parse_args()
    out = CACHE / f"{args.tag}.json"
    if args.sweep:
        results = json.loads(out.read_text())
        for t in (float(x) for x in args.thresholds.split(",")):
            print(f"\n### threshold {t}\n{summarize(results, t)}")
        return
    voices_arg = GENERAL_VOICES if args.voices == "general" else args.voices
    voices = [(v.split(":")[0], int(v.split(":")[1])) for v in voices_arg.split(",")]
    settings = settings_from(args.set)
    overrides = {k: v for k, v in dataclasses.asdict(settings).items()
                 if v != getattr(DecoderSettings(), k)}
    samples = build_samples(args.homes.split(","), voices, args.conditions.split(","),
                            noisy_non=args.noisy_non)
    started = time.monotonic()
    with multiprocessing.get_context("fork").Pool(args.procs, _init, (settings,)) as pool:
        results = pool.map(run_one, samples, chunksize=4)
    out.write_text(json.dumps(results, indent=0, default=str))
    print(f"{len(samples)} samples in {time.monotonic() - started:.0f} s; overrides {overrides}\n")
    print(summarize(results))
    if args.failures:
        for r in results:
            if r["command"] and (r["rejected"] or not r["right_meaning"]):
                print(f"  {r['voice']:>10} {r['condition']:>5} {r['text']!r} -> {r['heard']!r} "
                      f"rej={r['rejected']} pf={r['per_frame']}")
            elif not r["command"] and not r["rejected"] and r["intent"]:
                print(f"  NONCMD {r['voice']} {r['text']!r} -> {r['heard']!r} pf={r['per_frame']}")


if __name__ == "__main__":
    main()
