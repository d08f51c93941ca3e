"""The endpointer in steady noise: the end of speech is found about as fast as in quiet, relative to
the room's noise floor, without cutting off a speaker who pauses mid-command.

Real audio: espeak-ng speech (a tuning voice) and sox pink noise mixed at 10 dB SNR, fed frame by
frame through the Endpointer with a real pymicro-vad and, for the `complete` flag, a real
GrammarDecoder on the demo home, as bridge/satellite/machine.py feeds them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bridge.pipeline.endpoint import Endpointer, EndpointSettings, EndReason
from bridge.pipeline.vad import FrameSplitter, Vad
from bridge.recognition import GrammarDecoder, compile_grammar
from bridge.resources import cmudict, load_demo_vocabulary, new_decoder
from bridge.tools.satellite import end_of_speech_offset

RATE = 16000
CHUNK = 960  # 30 ms, as satellites stream


def _speech(tmp: Path, text: str) -> np.ndarray:
    raw, out = tmp / "raw.wav", tmp / f"{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)
    x = np.frombuffer(out.read_bytes()[44:], dtype="<i2").astype(np.float64)
    end = int(end_of_speech_offset(x.astype("<i2").tobytes()) * RATE)
    start = len(x) - int(end_of_speech_offset(x[::-1].astype("<i2").tobytes()) * RATE)
    return x[start:end]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("endpoint-noise")


@pytest.fixture(scope="module")
def pink(tmp: Path) -> np.ndarray:
    path = tmp / "pink.wav"
    subprocess.run(["sox", "-R", "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), "synth", "12", "pinknoise",
                    "vol", "0.5"], check=True)
    return np.frombuffer(path.read_bytes()[44:], dtype="<i2").astype(np.float64)


@pytest.fixture(scope="module")
def decoder() -> Iterator[GrammarDecoder]:
    dec = new_decoder(compile_grammar(load_demo_vocabulary(), cmudict()))
    yield dec
    dec.close()


def _speech_rms(x: np.ndarray) -> float:
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    energy = np.sqrt((frames**2).mean(axis=1))
    return float(np.sqrt(np.mean(energy[energy > energy.max() * 0.1] ** 2)))


def _scene(speech: np.ndarray, noise: np.ndarray | None, preroll: float, lead: float,
           wake: np.ndarray | None = None) -> tuple[bytes, bytes, float]:
    """(pre-roll, session audio, true end of speech in seconds into the session)."""
    total = int((preroll + lead + 2.0) * RATE) + len(speech)
    clean = np.zeros(total)
    at = int((preroll + lead) * RATE)
    clean[at : at + len(speech)] = speech
    if wake is not None:
        end = int((preroll - 0.1) * RATE)
        clean[end - len(wake) : end] = wake
    mixed = clean
    if noise is not None:
        seg = noise[:total]
        mixed = clean + seg * _speech_rms(speech) / np.sqrt(np.mean(seg**2)) / 10 ** (10 / 20)
    pcm = np.clip(np.round(mixed), -32768, 32767).astype("<i2").tobytes()
    cut = int(preroll * RATE) * 2
    return pcm[:cut], pcm[cut:], (at + len(speech)) / RATE - preroll


def _run(pre: bytes, pcm: bytes, decoder: GrammarDecoder | None) -> tuple[EndReason | None, float]:
    """Feeds the session like the satellite's task; (reason, seconds into the session)."""
    vad, splitter = Vad(), FrameSplitter()
    endpointer = Endpointer(EndpointSettings(), judges_completion=decoder is not None)
    if pre:
        endpointer.prime(pre)
    if decoder is not None:
        decoder.start()
        if pre:
            decoder.prime(pre)
    try:
        for i in range(0, len(pcm), CHUNK):
            chunk = pcm[i : i + CHUNK]
            complete = False
            if decoder is not None:
                decoder.feed(chunk)
                complete = decoder.is_complete()
            for frame in splitter.split(chunk):
                reason = endpointer.process(frame, vad.process(frame), complete)
                if reason is not None:
                    return reason, endpointer.elapsed_ms / 1000
        return None, len(pcm) / (2 * RATE)
    finally:
        vad.close()
        if decoder is not None:
            decoder.finish()


COMMANDS = ["turn on the kitchen light", "lock the front door", "set a timer for five minutes"]


def test_steady_noise_ends_about_as_fast_as_quiet(tmp: Path, pink: np.ndarray) -> None:
    """Relative to the room's floor (seeded by the second before the session) the energy finds the
    end of speech; the VAD's own silence took ~1.2 s here."""
    wake = _speech(tmp, "okay nabu")
    for text in COMMANDS:
        pre, pcm, true_end = _scene(_speech(tmp, text), pink, preroll=1.0, lead=0.3, wake=wake)
        reason, at = _run(pre, pcm, None)
        assert reason is EndReason.SILENCE, (text, reason)
        # quiet: 0.3 s; in noise the tail grows by 0.2 s but the weak last sounds are under the noise
        assert -0.05 <= at - true_end <= 0.55, (text, reason, at - true_end)


def test_steady_noise_with_the_recognizers_view(tmp: Path, pink: np.ndarray, decoder: GrammarDecoder) -> None:
    """A whole command heard by the recognizer ends as soon; one it does not hear whole waits for a
    possible pause, but never beyond the old VAD fallback; nothing is cut off."""
    wake = _speech(tmp, "okay nabu")
    reasons = []
    for text in COMMANDS:
        pre, pcm, true_end = _scene(_speech(tmp, text), pink, preroll=1.0, lead=0.3, wake=wake)
        reason, at = _run(pre, pcm, decoder)
        reasons.append(reason)
        assert reason in (EndReason.COMPLETE, EndReason.SILENCE), (text, reason)
        assert at - true_end >= -0.05, (text, reason, at - true_end)
        assert at - true_end <= (0.45 if reason is EndReason.COMPLETE else 1.0), (text, reason, at - true_end)
    assert EndReason.COMPLETE in reasons


def test_steady_noise_without_a_recognizer_view_or_preroll(tmp: Path, pink: np.ndarray) -> None:
    """A Hermes/button start (no pre-roll) with an engine that says nothing about completeness."""
    pre, pcm, true_end = _scene(_speech(tmp, COMMANDS[0]), pink, preroll=0.0, lead=0.3)
    reason, at = _run(pre, pcm, None)
    assert reason is EndReason.SILENCE
    assert -0.05 <= at - true_end <= 0.6


def test_speech_from_the_first_frame_in_noise(tmp: Path, pink: np.ndarray, decoder: GrammarDecoder) -> None:
    """No pre-roll and no room before the command: the floor is learnt during the command."""
    pre, pcm, true_end = _scene(_speech(tmp, "turn off the reading lamp"), pink, preroll=0.0, lead=0.0)
    reason, at = _run(pre, pcm, decoder)
    assert reason in (EndReason.COMPLETE, EndReason.SILENCE)
    assert -0.05 <= at - true_end <= 1.0


@pytest.mark.parametrize("noisy", [False, True])
def test_a_pause_mid_command_does_not_end_the_utterance(tmp: Path, pink: np.ndarray, decoder: GrammarDecoder,
                                                         noisy: bool) -> None:
    first, second = _speech(tmp, "turn on the"), _speech(tmp, "kitchen light")
    speech = np.concatenate([first, np.zeros(int(0.5 * RATE)), second])
    # 0.8 s after the wake word: pymicro-vad says nothing for its first ~0.8 s of a session
    pre, pcm, true_end = _scene(speech, pink if noisy else None, preroll=1.0, lead=0.8,
                                wake=_speech(tmp, "okay nabu"))
    reason, at = _run(pre, pcm, decoder)
    assert reason is not None and at >= true_end - 0.05, (reason, at, true_end)


def test_clean_speech_unchanged(tmp: Path, decoder: GrammarDecoder) -> None:
    pre, pcm, true_end = _scene(_speech(tmp, COMMANDS[1]), None, preroll=1.0, lead=0.3,
                                wake=_speech(tmp, "okay nabu"))
    reason, at = _run(pre, pcm, decoder)  # the recognizer hears a whole command: 0.1 s
    assert reason is EndReason.COMPLETE and 0.05 <= at - true_end <= 0.15
    pre, pcm, true_end = _scene(_speech(tmp, COMMANDS[1]), None, preroll=0.0, lead=0.3)
    reason, at = _run(pre, pcm, None)  # no recognizer view: the 0.3 s silence tail
    assert reason is EndReason.SILENCE and 0.25 <= at - true_end <= 0.35
