"""Grammar benchmark: a generated home of 20 areas and 300 entities.

Reports compile time, grammar size and decode speed (CPU seconds per audio second) on espeak-ng
commands, as a markdown table. Run from the repository root:

    .venv/bin/python bench/grammar_bench.py            # default: 20 areas, 300 entities
    .venv/bin/python bench/grammar_bench.py --areas 6 --entities 14 --voices en-us,en
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.recognition import (
    IntentRecognizer,
    Vocabulary,
    compile_grammar,
    parse_vocabulary,
)
from bridge.resources import cmudict, new_decoder
from tests.support.speech import read_pcm, synthesize

AREAS = ["Kitchen", "Living room", "Dining room", "Master bedroom", "Guest bedroom", "Kids room",
         "Office", "Hallway", "Garage", "Basement", "Laundry room", "Bathroom", "Guest bathroom",
         "Attic", "Patio", "Garden", "Porch", "Nursery", "Den", "Library", "Gym", "Sunroom"]
FLOORS = [("basement", "Basement floor"), ("ground", "Ground floor"), ("first", "First floor")]
# (domain, device_class, name pattern); an area gets the first N that fit its turn
DEVICES = [
    ("light", None, "{a} ceiling light"), ("light", None, "{a} lamp"),
    ("light", None, "{a} floor lamp"), ("light", None, "{a} spotlights"),
    ("light", None, "{a} LED strip"), ("switch", None, "{a} outlet"),
    ("cover", "blind", "{a} blinds"), ("binary_sensor", "motion", "{a} motion sensor"),
    ("sensor", "temperature", "{a} temperature"), ("media_player", None, "{a} speaker"),
    ("fan", None, "{a} fan"), ("switch", None, "{a} heater"), ("cover", "window", "{a} window"),
    ("light", None, "{a} accent light"), ("media_player", None, "{a} TV"),
    ("switch", None, "{a} dehumidifier"),
]
ALIASES = {"Living room": ["lounge"], "Office": ["study"], "Hallway": ["hall"],
           "Kids room": ["playroom"]}


def bench_home(n_areas: int = 20, n_entities: int = 300) -> Vocabulary:
    """A realistic generated home: n_areas areas on 3 floors, n_entities entities."""
    areas = []
    for i, name in enumerate(AREAS[:n_areas]):
        areas.append({"id": f"a{i}", "name": name, "aliases": ALIASES.get(name, []),
                      "floor": FLOORS[min(i * len(FLOORS) // n_areas, len(FLOORS) - 1)][0]})
    entities: list[dict[str, object]] = []
    per_area = [0] * n_areas
    i = 0
    while len(entities) < n_entities - len(FLOORS) - 1:
        a = i % n_areas
        domain, device_class, pattern = DEVICES[per_area[a] % len(DEVICES)]
        suffix = "" if per_area[a] < len(DEVICES) else f" {per_area[a] // len(DEVICES) + 1}"
        per_area[a] += 1
        entities.append({"id": f"{domain}.e{len(entities)}",
                         "name": pattern.format(a=AREAS[a]) + suffix, "domain": domain,
                         "area": f"a{a}", "device_class": device_class})
        i += 1
    for floor_id, floor_name in FLOORS:
        entities.append({"id": f"climate.{floor_id}",
                         "name": f"{floor_name.split()[0]} thermostat", "domain": "climate"})
    entities.append({"id": "lock.front_door", "name": "Front door", "domain": "lock"})
    return parse_vocabulary({"language": "en", "areas": areas,
                             "floors": [{"id": f, "name": n} for f, n in FLOORS],
                             "entities": entities})


COMMANDS = [
    "turn on the kitchen ceiling light", "turn off the office lamp",
    "turn off the lights in the garage", "set the den floor lamp to forty percent",
    "open the patio blinds", "set the library accent light to blue",
    "what is the kitchen temperature", "pause the living room speaker",
    "set a timer for ten minutes", "turn on the master bedroom fan",
    "what time is it", "turn off the downstairs lights".replace("downstairs", "ground floor"),
]


def _meaning(match: object) -> tuple[object, ...]:
    """What an intent would do: its name, entities and non-name slot values."""
    slots = match.slots
    values = tuple(sorted((k, str(v.value)) for k, v in slots.items()
                          if k not in ("name", "area", "floor")))
    return (match.name, match.entity_ids, values)


def main() -> None:
    """Run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--areas", type=int, default=20)
    parser.add_argument("--entities", type=int, default=300)
    parser.add_argument("--voices", default="en-us,en")
    parser.add_argument("--speed", type=int, default=160)
    parser.add_argument("--repeat", type=int, default=3,
                        help="decode each utterance this many times, keep the least CPU "
                             "(the machine is shared: the minimum is the least disturbed run)")
    args = parser.parse_args()

    vocab = bench_home(args.areas, args.entities)
    t0 = time.perf_counter()
    grammar = compile_grammar(vocab, cmudict())  # (the first call reads the dictionary)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    decoder = new_decoder(grammar)
    load_s = time.perf_counter() - t0
    recognizer = IntentRecognizer(vocab)

    voices = args.voices.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for voice, text in itertools.product(voices, COMMANDS):
            wav = synthesize(text, Path(tmp) / f"{len(rows)}.wav", voice=voice, speed=args.speed)
            pcm = read_pcm(wav)
            runs = []
            for _ in range(max(1, args.repeat)):
                decoder.start()
                for i in range(0, len(pcm), 960):
                    decoder.feed(pcm[i:i + 960])
                runs.append(decoder.finish())
            result = min(runs, key=lambda r: r.cpu_seconds)
            assert all(r.text == result.text for r in runs)  # decoding is deterministic
            ref = recognizer.recognize(text)
            hyp = recognizer.recognize(result.text) if not result.rejected else None
            same = ref is not None and hyp is not None and _meaning(hyp) == _meaning(ref)
            rows.append((voice, text, result, same))
    decoder.close()

    audio = sum(r[2].audio_seconds for r in rows)
    cpu = sum(r[2].cpu_seconds for r in rows)
    per_utt = [r[2].cpu_seconds / r[2].audio_seconds for r in rows]
    exact = sum(r[2].text == r[1] for r in rows)
    accepted_right = sum(r[3] for r in rows)
    accepted_wrong = sum((not r[2].rejected) and not r[3] for r in rows)
    rejected_exact = sum(r[2].rejected and r[2].text == r[1] for r in rows)
    s = grammar.stats
    load = os.getloadavg()[0]
    print(f"Home: {len(vocab.areas)} areas, {len(vocab.floors)} floors, "
          f"{len(vocab.entities)} entities; voices {', '.join(voices)} at {args.speed} wpm; "
          f"{len(rows)} utterances, {audio:.0f} s of audio; CPU = least of {args.repeat} runs; "
          f"load average {load:.1f} on {os.cpu_count()} CPUs\n")
    print("| metric | value |")
    print("|---|---|")
    print(f"| compile time (wall) | {compile_s:.2f} s |")
    print(f"| decoder load (wall) | {load_s:.2f} s |")
    print(f"| templates used / skipped | {s['templates_used']} / {s['templates_skipped']} |")
    print(f"| FSG states / transitions (null) | {s['states']} / {s['transitions']} "
          f"({s['null_transitions']}) |")
    print(f"| top graph states / transitions, list copies | {s['top_states']} / "
          f"{s['top_transitions']}, {s['list_copies']} |")
    print(f"| words | {s['words']} |")
    print(f"| decode CPU per audio second (mean, worst) | {cpu / audio:.4f}, "
          f"{max(per_utt):.4f} |")
    print(f"| median decode CPU per utterance | {statistics.median(r[2].cpu_seconds for r in rows):.3f} s |")
    print(f"| exact text | {exact}/{len(rows)} |")
    print(f"| accepted with the right intent + entities | {accepted_right}/{len(rows)} |")
    print(f"| accepted with a wrong intent/entities | {accepted_wrong}/{len(rows)} |")
    print(f"| rejected although the text was exact | {rejected_exact}/{len(rows)} |")
    print()
    for voice, text, result, same in rows:
        if result.rejected:
            flag = "rejected"
        elif same:
            flag = "ok" if result.text == text else "same intent"
        else:
            flag = "WRONG"
        if flag != "ok":
            print(f"- {voice}: {text!r} -> {result.text!r} ({flag}, confidence "
                  f"{result.confidence:.2f})")


if __name__ == "__main__":
    main()
