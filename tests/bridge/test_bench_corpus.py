"""The accuracy bench's test set (bench/corpus.py, bench/homes.py, bench/audio_mix.py).

Checks what the bench's figures rest on, not the figures: the tuning / held-out split is disjoint,
the set is the same for the same seed, every generated command means (as text, on its own home)
exactly what the bench expects, every voice of both sets speaks 16 kHz mono audio, and the mixers
give the SNR they are asked for.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import audio_mix  # noqa: E402
import corpus  # noqa: E402
import homes  # noqa: E402
from report import understood  # noqa: E402

from bridge.recognition import IntentRecognizer, parse_vocabulary  # noqa: E402


def test_split_is_disjoint_and_complete() -> None:
    tuning = {(v.synth, v.name) for v in corpus.TUNING_VOICES}
    heldout = {(v.synth, v.name) for v in corpus.HELDOUT_VOICES}
    assert not tuning & heldout
    assert len(tuning) == len(corpus.TUNING_VOICES) and len(heldout) == len(corpus.HELDOUT_VOICES)
    assert not {v.id for v in corpus.TUNING_VOICES} & {v.id for v in corpus.HELDOUT_VOICES}
    assert not set(corpus.TUNING_HOMES) & set(corpus.HELDOUT_HOMES)
    assert not set(corpus.TUNING_NON_COMMANDS) & set(corpus.HELDOUT_NON_COMMANDS)
    # more than one synthesizer on each side
    assert {v.synth for v in corpus.TUNING_VOICES} >= {"espeak-ng", "flite"}
    assert {v.synth for v in corpus.HELDOUT_VOICES} >= {"espeak-ng", "flite", "festival"}
    # the samples of each side use only that side's voices, homes and sentences
    built = homes.build_homes(corpus.DEFAULT_SEED)
    commands = {c.text for h in built.values() for c in h.commands}
    assert not commands & (set(corpus.TUNING_NON_COMMANDS) | set(corpus.HELDOUT_NON_COMMANDS))
    assert not set(corpus.BABBLE_SENTENCES) & (commands | set(corpus.TUNING_NON_COMMANDS)
                                                | set(corpus.HELDOUT_NON_COMMANDS))
    for split, voices, home_keys, nons in (
            ("tuning", corpus.TUNING_VOICES, corpus.TUNING_HOMES, corpus.TUNING_NON_COMMANDS),
            ("heldout", corpus.HELDOUT_VOICES, corpus.HELDOUT_HOMES, corpus.HELDOUT_NON_COMMANDS)):
        items = corpus.samples(split)
        assert {s.voice for s in items} == {v.id for v in voices}
        assert {s.home for s in items} == set(home_keys)
        assert {s.text for s in items if not s.command} == set(nons)
        assert {s.split for s in items} == {split}
        # the rotation spreads every condition over the voices
        per_label = Counter(s.label for s in items)
        assert set(per_label) == {corpus.label(c, snr) for c, snr in corpus.CONDITIONS}
        assert min(per_label.values()) > len(items) / len(corpus.CONDITIONS) / 2
        for v in voices:
            assert len({s.label for s in items if s.voice == v.id}) == len(per_label)
        wpm = [s.wpm for s in items]
        assert min(wpm) >= corpus.SPEEDS[0] and max(wpm) <= corpus.SPEEDS[1] and len(set(wpm)) > 30


def test_same_seed_same_set_other_seed_other_set() -> None:
    a, b = homes.build_homes(16), homes.build_homes(16)
    assert {k: (h.vocab, h.commands) for k, h in a.items()} == {k: (h.vocab, h.commands) for k, h in b.items()}
    c = homes.build_homes(17)
    assert c["big"].vocab != a["big"].vocab
    assert c["acc"].vocab == a["acc"].vocab  # the hand-made home stays
    first = [dataclasses.astuple(s) for s in corpus.samples("all", 16)]
    assert first == [dataclasses.astuple(s) for s in corpus.samples("all", 16)]
    assert first != [dataclasses.astuple(s) for s in corpus.samples("all", 17)]
    picked = corpus.pick(corpus.samples("tuning"), sample=50)
    assert [s.id for s in picked] == [s.id for s in corpus.pick(corpus.samples("tuning"), sample=50)]
    assert len(picked) == 50 and len({s.id for s in corpus.samples("all")}) == len(corpus.samples("all"))


def test_homes_differ_in_size_and_naming() -> None:
    built = homes.build_homes(corpus.DEFAULT_SEED)
    sizes = {k: len(h.vocab["entities"]) for k, h in built.items()}
    assert sizes["flat"] <= 15 and 30 <= sizes["family"] <= 60 and sizes["big"] >= 120
    names = [e["name"] for h in built.values() for e in h.vocab["entities"]]
    assert any("'s " in n for n in names)  # possessive
    assert any(n[-1].isdigit() for n in names)  # numbered
    assert any(" over the " in n or " by the " in n for n in names)  # descriptive
    assert any(e.get("aliases") for h in built.values() for e in h.vocab["entities"])
    for h in built.values():
        parse_vocabulary(h.vocab)  # valid vocabularies
        assert len(h.vocab["floors"]) >= 1 and all(a.get("floor") for a in h.vocab["areas"])


def test_every_command_means_what_the_bench_expects() -> None:
    """Text level, no audio: a broken generator (wrong entity, value, intent) fails here."""
    built = homes.build_homes(corpus.DEFAULT_SEED)
    kinds: Counter[str] = Counter()
    for key, home in built.items():
        recognizer = IntentRecognizer(parse_vocabulary(home.vocab))
        for cmd in home.commands:
            match = recognizer.recognize(cmd.text, area_id=home.satellite_area)
            assert match is not None, (key, cmd.text)
            got = {"name": match.name, "slots": {k: {"value": s.value, "entity_ids": list(s.entity_ids)}
                                                 for k, s in match.slots.items()}}
            assert understood({"intent": got}, cmd.expected()), (key, cmd.text, cmd.expected(), got)
            kinds[cmd.kind] += 1
    for kind in ("on_off_name", "on_off_area", "brightness", "colour", "cover", "cover_position", "lock",
                 "lock_state", "climate", "media", "timer", "cancel_timer", "time", "never_mind"):
        assert kinds[kind] >= 3, kind
    timers = {c.values for h in built.values() for c in h.commands if c.kind == "timer"}
    assert len(timers) >= 8  # varied numbers


@pytest.mark.parametrize("voice", corpus.TUNING_VOICES + corpus.HELDOUT_VOICES, ids=lambda v: v.id)
def test_every_voice_speaks_16k_mono(voice: corpus.Voice, tmp_path: Path) -> None:
    out = tmp_path / "x.wav"
    audio_mix.speak(voice.synth, voice.name, "turn on the light", 170, out)
    x = audio_mix.read_wav(out)  # raises unless 16 kHz mono 16-bit
    speech = len(x) / audio_mix.RATE - audio_mix.LEAD - audio_mix.TAIL
    assert 0.4 < speech < 2.5
    assert abs(audio_mix.voiced_rms(x) / 32768 - audio_mix.SPEECH_LEVEL) < 0.01


def test_speed_changes_duration_for_every_synthesizer(tmp_path: Path) -> None:
    for synth, name in (("espeak-ng", "en-us"), ("flite", "slt"), ("festival", "kal")):
        lengths = []
        for wpm in corpus.SPEEDS:
            out = tmp_path / f"{synth}-{wpm}.wav"
            audio_mix.speak(synth, name, "set a timer for ten minutes", wpm, out)
            pad = (audio_mix.LEAD + audio_mix.TAIL) * audio_mix.RATE
            lengths.append(len(audio_mix.read_wav(out)) - pad)
        assert lengths[0] > lengths[1] * 1.2, synth  # 130 wpm clearly slower than 200


def _measured_snr(clean: np.ndarray, mixed: np.ndarray) -> float:
    noise = mixed[: len(clean)] - clean
    return 20 * np.log10(audio_mix.voiced_rms(clean) / audio_mix.rms(noise))


@pytest.mark.parametrize("condition", ["pink", "babble", "music"])
def test_mixers_give_the_asked_snr(condition: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus, "CACHE", tmp_path)
    base = next(s for s in corpus.samples("tuning") if s.voice == "espeak:en-us")
    for snr in (20.0, 10.0, 5.0):
        s = corpus.render_sample(dataclasses.replace(base, condition=condition, snr=snr, id=f"{base.id}{snr}"))
        clean, mixed = audio_mix.read_wav(Path(s.clean)), audio_mix.read_wav(Path(s.path))
        assert len(mixed) == len(clean)
        assert abs(_measured_snr(clean, mixed) - snr) <= 1.5, (condition, snr)
        again = corpus.render_sample(dataclasses.replace(s, path=""))
        assert again.path == s.path  # cached by what made it


def test_far_speaker_is_quiet_reverberant_and_noisy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus, "CACHE", tmp_path)
    base = next(s for s in corpus.samples("tuning") if s.voice == "espeak:en-us")
    far = corpus.render_sample(dataclasses.replace(base, condition="far", snr=20.0))
    clean, x = audio_mix.read_wav(Path(far.clean)), audio_mix.read_wav(Path(far.path))
    drop = 20 * np.log10(audio_mix.voiced_rms(clean) / audio_mix.voiced_rms(x))
    assert 17 <= drop <= 27
    lead = x[: int(0.4 * audio_mix.RATE)]
    assert audio_mix.rms(lead) > 0  # room noise before the speech
    room = corpus.render_sample(dataclasses.replace(base, condition="reverb", snr=None))
    y = audio_mix.read_wav(Path(room.path))
    end = int((room.end_of_speech + 0.05) * audio_mix.RATE)
    tail = slice(end, end + int(0.2 * audio_mix.RATE))
    assert audio_mix.rms(y[tail]) > 4 * audio_mix.rms(clean[tail]) + 1  # the room rings on
