"""End-of-speech bench: how soon after the real end of a command the endpointer ends the utterance.

    .venv/bin/python bench/endpoint_bench.py [--voices en-us:160,en-gb:165,...] [--commands 8]
        [--conditions clean,pink20,pink10,pink5,babble10] [--starts wake,cold,immediate]
        [--pauses 4] [--decoder] [--seed 1]

Commands (the demo home's words) are synthesized with TUNING voices only (espeak-ng, flite slt;
bench/corpus.py's split), and noise is mixed in with numpy at an SNR measured like
bench/accuracy_bench.py's `add_noise` (speech RMS over voiced frames): sox pink noise, or babble
made of four tracks of other tuning voices reading ordinary sentences. A few commands are
synthesized in two halves with 0.5 s of silence (plus the condition's noise) between them: a
speaker pausing mid-command. Each utterance is fed in 30 ms chunks, frame by frame, through
bridge.pipeline.endpoint.Endpointer with a real pymicro-vad (bridge.pipeline.vad.Vad), exactly as
bridge/satellite/machine.py feeds it; with `--decoder` a GrammarDecoder on the demo home supplies
the recognizer's `complete` flag after every chunk (synchronously: the bridge learns it from its
worker a little later). Start modes: `wake` (the satellite heard the wake word itself: the second
before the session holds the wake word and the room, and seeds the endpointer), `cold` (a
Hermes/button start: no pre-roll, 0.3 s of room before the command), `immediate` (no pre-roll and
the command from the first frame).

The true end of speech is taken from the clean synthesis (the last 10 ms frame within 40 dB of
the peak). Reported per condition and start: the end reasons, the delay from the true end to the
endpoint (p50 / p95 / max), and cut-offs: endpoints before the true end (`cut`), of which those
more than 50 ms before it (`cut>50ms`: words lost, not a trailing breath).
Audio is cached under bench/out/endpoint/ (synthesized speech only; nothing from people).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.pipeline.endpoint import Endpointer, EndpointSettings  # noqa: E402
from bridge.pipeline.vad import FrameSplitter, Vad  # noqa: E402
from bridge.tools.satellite import end_of_speech_offset, load_wav_pcm16k  # noqa: E402

CACHE = ROOT / "bench/out/endpoint"
RATE = 16000
CHUNK = 960  # 30 ms, as the bridge bench streams
TAIL = 2.5  # seconds of room after the command (longer than any tail but the hard maximum)
LEAD = 0.3  # seconds of room before the command (cold and wake starts)
PAUSE = 0.5

# TUNING voices only (never the held-out ones): espeak-ng voice:speed, or flite:<voice>
DEFAULT_VOICES = "en-us:160,en-gb:165,en-029:160,flite:slt"
COMMANDS = [
    "turn on the kitchen light", "turn off the reading lamp", "open the garage door",
    "set the bedroom light to fifty percent", "set a timer for five minutes",
    "lock the front door", "turn off the lights in the office", "pause the tv",
    "turn on the coffee maker", "close the living room blinds", "turn off the ceiling fan",
    "what is the outdoor temperature", "turn on the desk lamp", "set the temperature to twenty one degrees",
]
PAUSED = [  # (first half, second half): a speaker searching for the name
    ("turn on the", "kitchen light"), ("set the bedroom light to", "fifty percent"),
    ("turn off the", "ceiling fan"), ("open the", "garage door"), ("set a timer for", "five minutes"),
    ("lock the", "front door"),
]
BABBLE_SENTENCES = [  # ordinary talk (not commands), read by other tuning voices
    "my sister is coming to visit next week and she is bringing the children",
    "the weather was lovely yesterday afternoon so we walked along the river",
    "where did i leave my keys i had them a minute ago",
    "the train was late again this morning and everybody was annoyed",
    "we should really think about painting the fence before the winter",
    "have you seen the new bakery on the corner their bread is wonderful",
    "i think the meeting moved to thursday but nobody told me",
    "the garden needs water every evening when it is this hot",
]
BABBLE_VOICES = ["en-us+m3", "en-gb+f2", "en-gb-x-rp", "en-us"]
WAKE_WORD = "okay nabu"


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def synthesize(text: str, voice: str, path: Path) -> np.ndarray:
    """16 kHz int16 speech without padding (cached)."""
    if not path.exists():
        raw = path.with_suffix(".raw.wav")
        if voice.startswith("flite:"):
            _run(["flite", "-voice", voice.split(":", 1)[1], "-t", text, "-o", str(raw)])
        else:
            name, _, speed = voice.partition(":")
            _run(["espeak-ng", "-v", name, "-s", speed or "160", "-w", str(raw), text])
        _run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path)])
        raw.unlink()
    return np.frombuffer(load_wav_pcm16k(path), dtype="<i2").astype(np.float64)


def trim(x: np.ndarray) -> np.ndarray:
    """Speech between its first and last frame within 40 dB of the peak."""
    pcm = x.astype("<i2").tobytes()
    end = int(end_of_speech_offset(pcm) * RATE)
    start = len(x) - int(end_of_speech_offset(x[::-1].astype("<i2").tobytes()) * RATE)
    return x[start:end] if end > start else x


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)[:50]


def pink_noise(seconds: float) -> np.ndarray:
    path = CACHE / "pink.wav"
    if not path.exists():
        _run(["sox", "-R", "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), "synth", f"{seconds:.0f}",
              "pinknoise", "vol", "0.5"])
    return np.frombuffer(load_wav_pcm16k(path), dtype="<i2").astype(np.float64)


def babble() -> np.ndarray:
    tracks = []
    for k, voice in enumerate(BABBLE_VOICES):
        parts = [trim(synthesize(s, voice + ":165", CACHE / f"babble-{voice.replace('+', '_')}-{i}.wav"))
                 for i, s in enumerate(BABBLE_SENTENCES[k:] + BABBLE_SENTENCES[:k])]
        gap = np.zeros(int(0.15 * RATE))
        tracks.append(np.concatenate([np.concatenate([p, gap]) for p in parts]))
    n = min(len(t) for t in tracks)
    return np.asarray(sum(t[:n] / np.sqrt(np.mean(t[:n] ** 2)) for t in tracks))


def speech_rms(x: np.ndarray) -> float:
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    energy = np.sqrt((frames**2).mean(axis=1))
    return float(np.sqrt(np.mean(energy[energy > energy.max() * 0.1] ** 2)))


@dataclass
class Utterance:
    voice: str
    text: str
    condition: str
    start: str
    pcm: bytes  # the session's audio
    preroll: bytes  # the second before the session (wake starts only)
    true_end: float  # seconds into pcm
    paused: bool


def build(voices: list[str], n_commands: int, n_paused: int, conditions: list[str], starts: list[str],
          seed: int) -> list[Utterance]:
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    noises = {"pink": pink_noise(120.0)}
    if any(c.startswith("babble") for c in conditions):
        noises["babble"] = babble()
    out: list[Utterance] = []
    for voice in voices:
        vslug = voice.replace("+", "_").replace(":", "-")
        wake = trim(synthesize(WAKE_WORD, voice, CACHE / f"{vslug}-wake.wav"))
        items: list[tuple[str, np.ndarray, bool]] = []
        for text in COMMANDS[:n_commands]:
            items.append((text, trim(synthesize(text, voice, CACHE / f"{vslug}-{slug(text)}.wav")), False))
        for first, second in PAUSED[:n_paused]:
            a = trim(synthesize(first, voice, CACHE / f"{vslug}-{slug(first)}.wav"))
            b = trim(synthesize(second, voice, CACHE / f"{vslug}-{slug(second)}.wav"))
            items.append((f"{first} ... {second}", np.concatenate([a, np.zeros(int(PAUSE * RATE)), b]), True))
        for text, speech, paused in items:
            for cond in conditions:
                for start in starts:
                    lead = 0.0 if start == "immediate" else LEAD
                    pre = 1.0 if start == "wake" else 0.0
                    total = int((pre + lead + TAIL) * RATE) + len(speech)
                    clean = np.zeros(total)
                    at = int((pre + lead) * RATE)
                    clean[at: at + len(speech)] = speech
                    if pre:  # the wake word ends 0.1 s before the session starts
                        w = wake[-int(0.9 * RATE):]
                        end = int((pre - 0.1) * RATE)
                        clean[end - len(w): end] = w
                    mixed = clean
                    if cond != "clean":
                        kind = "babble" if cond.startswith("babble") else "pink"
                        snr = float(cond[len(kind):])
                        noise = noises[kind]
                        off = int(rng.integers(0, len(noise) - total))
                        seg = noise[off: off + total]
                        factor = speech_rms(speech) / (np.sqrt(np.mean(seg**2)) or 1.0) / 10 ** (snr / 20)
                        mixed = clean + factor * seg
                    pcm = np.clip(np.round(mixed), -32768, 32767).astype("<i2").tobytes()
                    cut = int(pre * RATE) * 2
                    true_end = (at + len(speech)) / RATE - pre
                    out.append(Utterance(voice, text, cond, start, pcm[cut:], pcm[:cut], true_end, paused))
    return out


class CompleteFlag:
    """The recognizer's view: a GrammarDecoder on the demo home, asked after every chunk."""

    def __init__(self) -> None:
        from bridge.recognition import compile_grammar
        from bridge.resources import cmudict, load_demo_vocabulary, new_decoder
        self.decoder = new_decoder(compile_grammar(load_demo_vocabulary(), cmudict()))

    def start(self, preroll: bytes) -> None:
        self.decoder.start()
        if preroll:
            self.decoder.prime(preroll)

    def feed(self, chunk: bytes) -> bool:
        self.decoder.feed(chunk)
        return self.decoder.is_complete()

    def stop(self) -> None:
        self.decoder.finish()


# older Endpointers (no prime, no judges_completion) run too: the "before" tables
_JUDGES = "judges_completion" in Endpointer.__init__.__code__.co_varnames


def run_one(u: Utterance, settings: EndpointSettings, vad: Vad, flag: CompleteFlag | None) -> tuple[str, float]:
    """Feeds the utterance as machine.py does; returns (end reason, seconds into the session)."""
    vad.reset()
    splitter = FrameSplitter()
    endpointer = Endpointer(settings, judges_completion=flag is not None) if _JUDGES else Endpointer(settings)
    if u.preroll and hasattr(endpointer, "prime"):
        endpointer.prime(u.preroll)
    if flag is not None:
        flag.start(u.preroll)
    reason: Any = None
    try:
        for i in range(0, len(u.pcm), CHUNK):
            chunk = u.pcm[i: i + CHUNK]
            complete = flag.feed(chunk) if flag is not None else False
            for frame in splitter.split(chunk):
                reason = endpointer.process(frame, vad.process(frame), complete)
                if reason is not None:
                    return str(reason), endpointer.elapsed_ms / 1000
    finally:
        if flag is not None:
            flag.stop()
    return "stream_end", len(u.pcm) / (2 * RATE)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voices", default=DEFAULT_VOICES)
    parser.add_argument("--commands", type=int, default=6)
    parser.add_argument("--pauses", type=int, default=4)
    parser.add_argument("--conditions", default="clean,pink20,pink10,pink5,babble10")
    parser.add_argument("--starts", default="wake,cold")
    parser.add_argument("--decoder", action="store_true", help="a real GrammarDecoder supplies `complete`")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--procs", type=int, default=1, help="accepted for symmetry; always one process")
    args = parser.parse_args()
    voices = [v for v in args.voices.split(",") if v]
    conditions = [c for c in args.conditions.split(",") if c]
    starts = [s for s in args.starts.split(",") if s]
    t0 = time.monotonic()
    utterances = build(voices, args.commands, args.pauses, conditions, starts, args.seed)
    flag = CompleteFlag() if args.decoder else None
    vad = Vad()
    settings = EndpointSettings()
    rows: dict[tuple[str, str, bool], list[tuple[str, float]]] = {}
    for u in utterances:
        reason, at = run_one(u, settings, vad, flag)
        rows.setdefault((u.condition, u.start, u.paused), []).append((reason, at - u.true_end))
    cmd = "bench/endpoint_bench.py " + " ".join(sys.argv[1:])
    print(f"`{cmd.strip()}` — {len(utterances)} utterances, voices {', '.join(voices)}; "
          f"complete flag: {'GrammarDecoder (demo home)' if flag else 'never set'}; "
          f"{time.monotonic() - t0:.0f} s\n")
    print("| condition | start | paused | n | end reasons | delay p50 | p95 | max | cut | cut>50ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (cond, start, paused), res in rows.items():
        reasons = Counter(r for r, _ in res)
        delays = [d for _, d in res]
        cut = sum(d < 0 for d in delays)
        cut50 = sum(d < -0.05 for d in delays)
        print(f"| {cond} | {start} | {'yes' if paused else 'no'} | {len(res)} | "
              f"{', '.join(f'{k} {v}' for k, v in reasons.most_common())} | "
              f"{pct(delays, 50) * 1000:.0f} ms | {pct(delays, 95) * 1000:.0f} ms | {max(delays) * 1000:.0f} ms | "
              f"{cut} | {cut50} |")
    vad.close()


if __name__ == "__main__":
    main()
