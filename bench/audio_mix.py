"""Synthesis and mixing for the bench's test set (bench/corpus.py decides what to render).

Owns: speaking a sentence with espeak-ng, flite or festival at a given speed (16 kHz mono 16-bit,
0.5 s lead and TAIL seconds after the speech, level-normalized), and the conditions mixed into it:
pink noise, babble (other voices talking), music-like noise (chords with tremolo, not speech), a
room's reverberation (sox `reverb`) and a quiet far-away speaker (attenuated, reverberant, with a
low room noise). SNR is speech RMS over voiced frames against noise RMS over the whole noise, as
the bench has always measured it. Noise comes from a numpy generator seeded by the caller, so a
file is a pure function of its parameters (and can be cached by their hash).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

RATE = 16000
LEAD = 0.5  # seconds of silence (or noise) before the speech
TAIL = 2.0  # ...and after it: the room's noise goes on while the endpointer decides
SPEECH_LEVEL = 0.08  # voiced-frame RMS every clean sentence is scaled to (about -22 dBFS)

# words per minute each synthesizer speaks at with its duration stretch at 1.0 (measured on one
# long sentence against espeak-ng's -s): stretch = BASE / wanted speed
BASE_WPM = {("flite", "slt"): 180.0, ("flite", "awb"): 180.0, ("flite", "kal16"): 188.0,
            ("flite", "rms"): 155.0, ("festival", "kal"): 172.0}


def read_wav(path: Path) -> np.ndarray:
    """Samples of a 16 kHz mono 16-bit wav as float64 in int16 units."""
    with wave.open(str(path), "rb") as w:
        if (w.getframerate(), w.getsampwidth(), w.getnchannels()) != (RATE, 2, 1):
            raise ValueError(f"{path}: not 16 kHz mono 16-bit")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def write_wav(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(samples), -32768, 32767).astype("<i2")
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    tmp.replace(path)  # a cache file is whole or absent


def voiced_rms(x: np.ndarray) -> float:
    """RMS over 10 ms frames whose RMS is above a tenth of the loudest frame's (the speech)."""
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    energy = np.sqrt((frames**2).mean(axis=1))
    if not len(energy) or energy.max() <= 0:
        return 0.0
    return float(np.sqrt(np.mean(energy[energy > energy.max() * 0.1] ** 2)))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0


def speak(synth: str, voice: str, text: str, wpm: int, out: Path) -> None:
    """`text` spoken by `synth` ("espeak-ng" | "flite" | "festival") into `out`: 16 kHz mono,
    LEAD and TAIL of silence, voiced RMS scaled to SPEECH_LEVEL."""
    with tempfile.TemporaryDirectory(prefix="hearth-speak-") as tmp:
        raw = Path(tmp) / "raw.wav"
        if synth == "espeak-ng":
            cmd = ["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), text]
            subprocess.run(cmd, check=True, capture_output=True)
        elif synth == "flite":
            stretch = BASE_WPM[(synth, voice)] / wpm
            cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}", "-t", text, "-o", str(raw)]
            subprocess.run(cmd, check=True, capture_output=True)
        elif synth == "festival":
            stretch = BASE_WPM[(synth, voice)] / wpm
            cmd = ["text2wave", "-eval", f"(voice_{voice}_diphone)",
                   "-eval", f"(Parameter.set 'Duration_Stretch {stretch:.3f})", "-o", str(raw)]
            subprocess.run(cmd, input=text.encode(), check=True, capture_output=True)
        else:
            raise ValueError(f"unknown synthesizer {synth!r}")
        conv = Path(tmp) / "conv.wav"
        subprocess.run(["sox", "-R", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(conv)],
                       check=True, capture_output=True)
        x = read_wav(conv)
    # trim the synthesizer's own silence, then the bench's fixed lead and tail
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    energy = np.sqrt((frames**2).mean(axis=1))
    loud = np.nonzero(energy > max(energy.max() * 0.01, 1.0))[0]
    if len(loud):
        x = x[loud[0] * 160: (loud[-1] + 1) * 160]
    level = voiced_rms(x)
    if level > 0:
        x = x * (SPEECH_LEVEL * 32768 / level)
    peak = np.abs(x).max() if len(x) else 0.0
    if peak > 32000:
        x = x * (32000 / peak)
    write_wav(out, np.concatenate([np.zeros(int(LEAD * RATE)), x, np.zeros(int(TAIL * RATE))]))


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) noise, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    noise = np.fft.irfft(spectrum / np.sqrt(f), n)
    return noise / (rms(noise) or 1.0)


def music(n: int, rng: np.random.Generator) -> np.ndarray:
    """Music-like noise: a chord progression (three notes, a few harmonics each) with tremolo and
    a soft attack per chord — tonal and steady, clearly not speech. Unit RMS."""
    t = np.arange(n) / RATE
    out = np.zeros(n)
    base = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    chords = [(0, 4, 7), (5, 9, 12), (7, 11, 14), (-3, 0, 4), (2, 5, 9)]
    tremolo = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
    start = 0
    while start < n:
        length = int(RATE * rng.uniform(0.6, 1.4))
        seg = slice(start, min(n, start + length))
        ts = t[seg] - t[start]
        chord = chords[rng.integers(0, len(chords))]
        env = np.minimum(1.0, ts / 0.05) * np.exp(-ts * 0.8)
        for semitone in chord:
            f0 = base * 2 ** (semitone / 12)
            for h, a in ((1, 1.0), (2, 0.4), (3, 0.2)):
                out[seg] += a * env * np.sin(2 * np.pi * f0 * h * ts + rng.uniform(0, 2 * np.pi))
        start += length
    out *= tremolo
    return out / (rms(out) or 1.0)


def babble(n: int, talkers: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Several other voices at once, each looped from a random offset. Unit RMS."""
    out = np.zeros(n)
    for x in talkers:
        speech = x[np.abs(x) > 0] if np.any(x) else np.zeros(1)
        reps = int(np.ceil((n + len(speech)) / max(1, len(speech)))) + 1
        looped = np.tile(speech, reps)
        offset = int(rng.integers(0, max(1, len(speech))))
        out += looped[offset: offset + n] * rng.uniform(0.7, 1.0)
    return out / (rms(out) or 1.0)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + noise scaled so voiced speech RMS / noise RMS is `snr_db`."""
    factor = voiced_rms(speech) / (rms(noise) or 1.0) / 10 ** (snr_db / 20)
    return speech + noise[: len(speech)] * factor


def reverb(x: np.ndarray, reverberance: int = 50, room_scale: int = 100, pre_delay: int = 20) -> np.ndarray:
    """A room's reverberation with sox `reverb` (wet and dry), the same length as `x`."""
    with tempfile.TemporaryDirectory(prefix="hearth-reverb-") as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        write_wav(src, x * 0.5)  # headroom: the tail adds energy
        subprocess.run(["sox", "-R", str(src), str(dst), "reverb", str(reverberance), "50", str(room_scale),
                        "100", str(pre_delay)], check=True, capture_output=True)
        y = read_wav(dst)[: len(x)] * 2.0
    return np.pad(y, (0, len(x) - len(y)))


def render(clean: np.ndarray, condition: str, snr: float | None, rng: np.random.Generator,
           talkers: list[np.ndarray] | None = None) -> np.ndarray:
    """`clean` in `condition` (clean | pink | babble | music | reverb | far) at `snr` dB."""
    n = len(clean)
    if condition == "clean":
        return clean
    if condition == "reverb":
        return reverb(clean, reverberance=int(rng.integers(40, 80)), room_scale=int(rng.integers(50, 100)))
    if condition == "far":
        quiet = clean * 10 ** (-rng.uniform(20, 25) / 20)
        wet = reverb(quiet, reverberance=int(rng.integers(60, 90)), room_scale=100)
        return mix_at_snr(wet, pink(n, rng), snr if snr is not None else 20.0)
    if snr is None:
        raise ValueError(f"{condition} needs an SNR")
    if condition == "pink":
        return mix_at_snr(clean, pink(n, rng), snr)
    if condition == "music":
        return mix_at_snr(clean, music(n, rng), snr)
    if condition == "babble":
        return mix_at_snr(clean, babble(n, talkers or [], rng), snr)
    raise ValueError(f"unknown condition {condition!r}")
