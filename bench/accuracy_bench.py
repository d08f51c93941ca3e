"""Recognition accuracy through the real bridge over MQTT (issue 3). Not a test.

    .venv/bin/python bench/accuracy_bench.py [--voices 3] [--parallel 3] [--out bench/out/accuracy.json]

Builds its own test set: a home unlike the demo home (its own areas, entities and aliases),
command sentences across the intents Hearth covers, several espeak-ng voices and speeds, pink noise
mixed in with sox at 20 dB and 10 dB SNR, and sentences that are not commands. Every sample is
streamed in real time by a simulated satellite to a real bridge (real Mosquitto) that was given the
home as a vocabulary over MQTT. Reports: commands understood exactly (intent, entities and values),
non-commands rejected, transcript word error rate, and latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite  # noqa: E402
from tests.support.bridge_proc import BridgeProcess, Probe  # noqa: E402
from tests.support.broker import Mosquitto  # noqa: E402

HOME: dict[str, Any] = {
    "language": "en",
    "floors": [{"id": "main", "name": "Main floor"}, {"id": "loft", "name": "Loft", "aliases": ["attic"]}],
    "areas": [
        {"id": "pantry", "name": "Pantry", "floor": "main"},
        {"id": "sunroom", "name": "Sunroom", "aliases": ["conservatory"], "floor": "main"},
        {"id": "nursery", "name": "Nursery", "floor": "loft"},
        {"id": "workshop", "name": "Workshop", "floor": "main"},
        {"id": "dining_room", "name": "Dining room", "floor": "main"},
        {"id": "study", "name": "Study", "aliases": ["library"], "floor": "loft"},
        {"id": "porch", "name": "Porch", "floor": "main"},
        {"id": "guest_room", "name": "Guest room", "floor": "loft"},
    ],
    "entities": [
        {"id": "light.pantry", "name": "Pantry light", "domain": "light", "area": "pantry"},
        {"id": "light.aquarium", "name": "Aquarium light", "domain": "light", "area": "sunroom", "aliases": ["fish tank light"]},
        {"id": "light.night_light", "name": "Night light", "domain": "light", "area": "nursery"},
        {"id": "light.workbench", "name": "Workbench lamp", "domain": "light", "area": "workshop"},
        {"id": "light.chandelier", "name": "Chandelier", "domain": "light", "area": "dining_room"},
        {"id": "light.reading_lamp", "name": "Reading lamp", "domain": "light", "area": "study"},
        {"id": "light.porch", "name": "Porch light", "domain": "light", "area": "porch"},
        {"id": "light.guest_bedside", "name": "Bedside lamp", "domain": "light", "area": "guest_room"},
        {"id": "switch.kettle", "name": "Kettle", "domain": "switch", "area": "pantry"},
        {"id": "switch.heater", "name": "Patio heater", "domain": "switch", "area": "porch"},
        {"id": "fan.nursery", "name": "Nursery fan", "domain": "fan", "area": "nursery"},
        {"id": "cover.shed", "name": "Shed door", "domain": "cover", "area": "workshop", "device_class": "garage"},
        {"id": "cover.sunroom_blinds", "name": "Sunroom blinds", "domain": "cover", "area": "sunroom", "device_class": "blind"},
        {"id": "climate.loft", "name": "Loft thermostat", "domain": "climate", "area": "study"},
        {"id": "media_player.radio", "name": "Kitchen radio", "domain": "media_player", "area": "dining_room", "aliases": ["radio"]},
        {"id": "lock.porch_door", "name": "Porch door", "domain": "lock", "area": "porch"},
    ],
}

# (sentence, intent, entity ids the intent must resolve to (subset), {slot: value} that must match)
COMMANDS: list[tuple[str, str, set[str], dict[str, Any]]] = [
    ("turn on the pantry light", "HassTurnOn", {"light.pantry"}, {}),
    ("turn off the aquarium light", "HassTurnOff", {"light.aquarium"}, {}),
    ("switch on the fish tank light", "HassTurnOn", {"light.aquarium"}, {}),
    ("turn on the night light", "HassTurnOn", {"light.night_light"}, {}),
    ("turn off the workbench lamp", "HassTurnOff", {"light.workbench"}, {}),
    ("turn on the chandelier", "HassTurnOn", {"light.chandelier"}, {}),
    ("turn off the reading lamp", "HassTurnOff", {"light.reading_lamp"}, {}),
    ("turn on the kettle", "HassTurnOn", {"switch.kettle"}, {}),
    ("turn off the patio heater", "HassTurnOff", {"switch.heater"}, {}),
    ("turn on the nursery fan", "HassTurnOn", {"fan.nursery"}, {}),
    ("turn on the lights in the study", "HassTurnOn", {"light.reading_lamp"}, {}),
    ("turn off the lights in the guest room", "HassTurnOff", {"light.guest_bedside"}, {}),
    ("set the chandelier to 40 percent", "HassLightSet", {"light.chandelier"}, {"brightness": 40}),
    ("set the reading lamp brightness to 75 percent", "HassLightSet", {"light.reading_lamp"}, {"brightness": 75}),
    ("set the porch light to red", "HassLightSet", {"light.porch"}, {"color": "red"}),
    ("open the shed door", "HassTurnOn", {"cover.shed"}, {}),
    ("close the shed door", "HassTurnOff", {"cover.shed"}, {}),
    ("close the sunroom blinds", "HassTurnOff", {"cover.sunroom_blinds"}, {}),
    ("set the sunroom blinds to 30 percent", "HassSetPosition", {"cover.sunroom_blinds"}, {"position": 30}),
    ("is the porch door locked", "HassGetState", {"lock.porch_door"}, {}),
    ("what is the temperature", "HassClimateGetTemperature", set(), {}),
    ("set the temperature to 21 degrees", "HassClimateSetTemperature", set(), {"temperature": 21}),
    ("pause the radio", "HassMediaPause", {"media_player.radio"}, {}),
    ("resume the radio", "HassMediaUnpause", {"media_player.radio"}, {}),
    ("next track on the radio", "HassMediaNext", {"media_player.radio"}, {}),
    ("set a timer for 5 minutes", "HassStartTimer", set(), {"minutes": 5}),
    ("cancel the timer", "HassCancelTimer", set(), {}),
    ("what time is it", "HassGetCurrentTime", set(), {}),
    ("never mind", "HassNevermind", set(), {}),
]

NON_COMMANDS = [
    "i think we should order pizza tonight",
    "did you remember to call your mother",
    "the weather was lovely at the beach yesterday",
    "can you pass me the salt please",
    "my favourite film is about a lighthouse keeper",
    "we are going to be late for the train",
    "have you seen my keys anywhere",
    "the children are playing in the garden",
    "this soup needs a little more pepper",
    "let us watch something funny later",
    "i finished reading that book about bees",
    "the meeting moved to thursday afternoon",
]

# Where the bench's satellites stand: like any Home Assistant satellite they have an area, which is
# what "what is the temperature" (a template that needs the speaker's area) resolves against.
SATELLITE_AREA = "study"

VOICES = [("en-us", 160), ("en-us+f3", 175), ("en-us+m7", 145), ("en", 165), ("en-us+f2", 150)]
CONDITIONS = [("clean", None), ("20 dB", 20.0), ("10 dB", 10.0)]


@dataclass
class Sample:
    text: str
    voice: str
    speed: int
    condition: str
    snr: float | None
    command: tuple[str, set[str], dict[str, Any]] | None
    path: Path = field(default=Path())


SOX = ["sox"]  # ["sox", "-R"] with --repeatable-noise: no random dither or noise between runs


def synthesize(text: str, voice: str, speed: int, path: Path) -> None:
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run([*SOX, str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path), "pad", "0.5", "0.8"], check=True)
    raw.unlink()


def add_noise(clean: Path, snr_db: float, out: Path) -> None:
    """Pink noise at `snr_db` below the speech (RMS over voiced frames), mixed with sox.

    With --repeatable-noise (sox's `-R`) the same noise in every run, so that two builds can be
    compared transcript for transcript; otherwise fresh noise each time."""
    pcm = np.frombuffer(load_wav_pcm16k(clean), dtype="<i2").astype(np.float64)
    frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160)
    energy = np.sqrt((frames**2).mean(axis=1))
    speech_rms = float(np.sqrt(np.mean(energy[energy > energy.max() * 0.1] ** 2)))
    seconds = len(pcm) / 16000
    noise = out.with_suffix(".noise.wav")
    subprocess.run([*SOX, "-n", "-r", "16000", "-c", "1", "-b", "16", str(noise), "synth", f"{seconds:.3f}",
                    "pinknoise", "vol", "0.5"], check=True)
    n = np.frombuffer(load_wav_pcm16k(noise), dtype="<i2").astype(np.float64)
    noise_rms = float(np.sqrt(np.mean(n**2))) or 1.0
    factor = speech_rms / noise_rms / (10 ** (snr_db / 20))
    subprocess.run([*SOX, "-m", "-v", "1", str(clean), "-v", f"{factor:.5f}", str(noise), str(out)], check=True)
    noise.unlink()


def wer(ref: str, hyp: str) -> tuple[int, int]:
    r, h = ref.split(), hyp.split()
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)], len(r)


def understood(result: dict[str, Any], expected: tuple[str, set[str], dict[str, Any]]) -> bool:
    intent = result.get("intent")
    name, entities, values = expected
    if not isinstance(intent, dict) or intent.get("name") != name or result.get("rejected"):
        return False
    slots = intent.get("slots", {})
    resolved = {e for slot in slots.values() for e in slot.get("entity_ids", [])}
    if not entities <= resolved:
        return False
    if entities and resolved - entities - {e for e in resolved if e.split(".")[0] not in {x.split(".")[0] for x in entities}}:
        return False  # would act on something else of the same kind as well
    for key, value in values.items():
        slot = slots.get(key)
        if slot is None or str(slot.get("value")).lower() != str(value).lower():
            return False
    return True


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--voices", type=int, default=3, help="how many of the voices to use")
    parser.add_argument("--parallel", type=int, default=2, help="satellites speaking at once")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/accuracy.json")
    parser.add_argument("--clean-non-commands", action="store_true",
                        help="non-commands only clean (by default also at 20 and 10 dB)")
    parser.add_argument("--repeatable-noise", action="store_true",
                        help="the same noise in every run (sox -R), to compare two builds sample by sample")
    args = parser.parse_args()
    if args.repeatable_noise:
        SOX.append("-R")
    tmp = Path(tempfile.mkdtemp(prefix="hearth-accuracy-"))
    samples: list[Sample] = []
    non_conditions = CONDITIONS[:1] if args.clean_non_commands else CONDITIONS
    for voice, speed in VOICES[: args.voices]:
        items = [(text, (intent, entities, values), CONDITIONS) for text, intent, entities, values in COMMANDS]
        items += [(text, None, non_conditions) for text in NON_COMMANDS]
        for text, expected, conditions in items:
            clean = tmp / f"{len(samples):04d}.wav"
            synthesize(text, voice, speed, clean)
            for condition, snr in conditions:
                path = clean if snr is None else tmp / f"{len(samples):04d}-{int(snr)}.wav"
                if snr is not None:
                    add_noise(clean, snr, path)
                samples.append(Sample(text, voice, speed, condition, snr, expected, path))
    broker = Mosquitto().start()
    bridge = BridgeProcess(broker.host, broker.port, tmp / "data").start()
    results: list[tuple[Sample, dict[str, Any]]] = []
    started = time.monotonic()
    try:
        async with Probe(broker.host, broker.port, ["hearth/bridge/vocabulary/state"]) as probe:
            await probe.client.publish("hearth/bridge/vocabulary/set", json.dumps(HOME), retain=True)
            await probe.wait_for("vocabulary/state", lambda d: d["status"] == "ok" and d["entities"] == len(HOME["entities"]), 120)
        queue: asyncio.Queue[Sample] = asyncio.Queue()
        for sample in samples:
            queue.put_nowait(sample)

        async def speaker(index: int) -> None:
            while not queue.empty():
                sample = queue.get_nowait()
                opts = SatelliteOptions(sat_id=f"acc{index}", host=broker.host, port=broker.port, timeout=20,
                                        trailing_silence=1.5, area=SATELLITE_AREA)
                try:
                    result = await run_satellite(opts, load_wav_pcm16k(sample.path))
                except Exception as err:  # noqa: BLE001 - counted as not understood
                    result = {"transcript": "", "rejected": True, "error": str(err), "latency_ms": None}
                results.append((sample, result))

        await asyncio.gather(*(speaker(i) for i in range(args.parallel)))
    finally:
        bridge.stop()
        broker.close()
    elapsed = time.monotonic() - started

    print("## Recognition accuracy through the bridge\n")
    print(f"Command: `.venv/bin/python bench/accuracy_bench.py --voices {args.voices} --parallel {args.parallel}"
          f"{' --repeatable-noise' if args.repeatable_noise else ''}` — "
          f"{len(HOME['entities'])} entities in {len(HOME['areas'])} areas (not the demo home), "
          f"{len(COMMANDS)} command sentences × voices {', '.join(v for v, _ in VOICES[: args.voices])} × clean/20 dB/10 dB pink noise, "
          f"plus {len(NON_COMMANDS)} non-commands per voice"
          f"{' (clean)' if args.clean_non_commands else ' (clean, 20 dB, 10 dB)'}; real-time streaming over MQTT, {args.parallel} satellites at once "
          f"({elapsed / 60:.1f} min).\n")
    print("| condition | commands understood exactly | word error rate | latency p50 / p95 |")
    print("|---|---|---|---|")
    report: dict[str, Any] = {"conditions": {}, "failures": []}
    for condition, _ in CONDITIONS:
        rows = [(s, r) for s, r in results if s.command is not None and s.condition == condition]
        ok = sum(understood(r, s.command) for s, r in rows if s.command)
        errors = words = 0
        for s, r in rows:
            e, n = wer(s.text, r.get("transcript") or "")
            errors, words = errors + e, words + n
        lat = [r["latency_ms"] for _, r in rows if r.get("latency_ms") is not None]
        p50 = statistics.median(lat) if lat else float("nan")
        p95 = sorted(lat)[int(0.95 * (len(lat) - 1))] if lat else float("nan")
        print(f"| {condition} | {ok}/{len(rows)} ({100 * ok / max(1, len(rows)):.1f}%) | {100 * errors / max(1, words):.1f}% | {p50:.0f} / {p95:.0f} ms |")
        report["conditions"][condition] = {"understood": ok, "total": len(rows), "wer": errors / max(1, words)}
        report["failures"] += [{"said": s.text, "heard": r.get("transcript"), "voice": s.voice, "condition": condition,
                                "intent": r.get("intent")} for s, r in rows if s.command and not understood(r, s.command)]
    report["samples"] = [{"said": s.text, "voice": s.voice, "condition": s.condition, "heard": r.get("transcript"),
                          "rejected": r.get("rejected"), "intent": r.get("intent")}
                         for s, r in sorted(results, key=lambda sr: (sr[0].voice, sr[0].condition, sr[0].text))]
    report["non_commands"] = {}
    for condition, _ in CONDITIONS:
        non = [(s, r) for s, r in results if s.command is None and s.condition == condition]
        if not non:
            continue
        rejected = sum(bool(r.get("rejected")) or not r.get("intent") for _, r in non)
        print(f"\nNon-commands rejected (no intent), {condition}: {rejected}/{len(non)} "
              f"({100 * rejected / max(1, len(non)):.1f}%)")
        report["non_commands"][condition] = {
            "rejected": rejected, "total": len(non),
            "accepted": [{"said": s.text, "heard": r.get("transcript"), "voice": s.voice, "intent": r.get("intent")}
                         for s, r in non if not (r.get("rejected") or not r.get("intent"))]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(f"\nPer-sample failures: {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
