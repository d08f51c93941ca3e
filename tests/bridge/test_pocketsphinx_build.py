"""Hearth's patched pocketsphinx (third_party/pocketsphinx) decodes exactly like PyPI's wheel.

scripts/_env.sh builds pocketsphinx from its PyPI source with three patches: two only make
decoding cheaper, the third adds cepstral statistics and scaling that the decoder uses in noise
(tests/bridge/test_recognition_cmvn.py). It installs PyPI's unpatched wheel beside it
(``<venv>/pocketsphinx-stock``). These tests check that the patched build is the one in use and
that, with the scaling off, both give the same words, scores and word timings for commands,
chatter and noisy speech.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bridge.recognition import DecoderSettings
from bridge.recognition.decoder import PATCHED_BUILD_MARK, pocketsphinx_build
from tests.support import decode_pcm
from tests.support.speech import have_espeak, read_pcm

STOCK = Path(sys.prefix) / "pocketsphinx-stock"
OPTED_OUT = bool(os.environ.get("HEARTH_STOCK_POCKETSPHINX"))
Say = Callable[..., Path]


@pytest.mark.skipif(OPTED_OUT, reason="HEARTH_STOCK_POCKETSPHINX: the PyPI wheel was chosen")
def test_the_patched_build_is_in_use() -> None:
    build = pocketsphinx_build()
    assert PATCHED_BUILD_MARK in build, (
        f"pocketsphinx {build} is PyPI's wheel; scripts/_env.sh builds the patched one")


def _noisy(pcm: bytes, snr_db: float, seed: int) -> bytes:
    """`pcm` with white noise at `snr_db` below the speech (its loudest half)."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    loud = np.sort(np.abs(samples))[len(samples) // 2:]
    level = np.sqrt(np.mean(loud ** 2)) / 10 ** (snr_db / 20)
    noise = np.random.default_rng(seed).normal(0.0, level, len(samples))
    return np.clip(samples + noise, -32768, 32767).astype(np.int16).tobytes()


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng is not installed")
@pytest.mark.skipif(OPTED_OUT, reason="HEARTH_STOCK_POCKETSPHINX: the PyPI wheel was chosen")
def test_patched_and_stock_pocketsphinx_decode_alike(say: Say, tmp_path: Path) -> None:
    assert (STOCK / "pocketsphinx").is_dir(), f"{STOCK} is missing: run scripts/test"
    utterances = [read_pcm(say(text, voice=voice, speed=speed)) for text, voice, speed in [
        ("turn on the kitchen light", "en-us", 160),
        ("set the bedroom lamp to forty percent", "en-gb-x-rp", 175),
        ("what is the temperature in the living room", "en-us+f3", 150),
        ("i think we should order pizza tonight", "en", 160),
        ("set a timer for five minutes", "en-us+m3", 140),
    ]]
    utterances.append(_noisy(utterances[0], 10.0, seed=1))
    # the warped (high) voice twice in a row: PyPI's wheel leaves a warp unapplied when it comes
    # back after an unwarped utterance (patch 0004 fixes that), which is not what is compared here
    utterances.insert(3, _noisy(utterances[2], 10.0, seed=2))
    batch = tmp_path / "utterances.pickle"
    batch.write_bytes(pickle.dumps(utterances))

    stock = subprocess.run(
        [sys.executable, decode_pcm.__file__, str(batch)], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(STOCK)}, check=True, timeout=300)
    answer = json.loads(stock.stdout)
    assert Path(answer["pocketsphinx"]).is_relative_to(STOCK)  # the subprocess had PyPI's wheel

    # the stock wheel cannot scale the cepstra (patch 0003); everything else must match exactly
    unscaled = dataclasses.replace(DecoderSettings(), cmvn=False)
    patched = json.loads(json.dumps(decode_pcm.decode_all(utterances, unscaled)))  # tuples -> lists
    assert patched[0]["text"] == "turn on the kitchen light"
    assert any(r["rejected"] for r in patched)  # the chatter: both paths are exercised
    assert patched == answer["results"]


def test_the_engine_names_its_build_and_warns_about_the_wheel(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from bridge.stt import local

    pool = SimpleNamespace(size=2)  # the engine only reads the pool's size here
    for build, warned in (("5.1.1+hearth.1.p7bb92e49", False), ("5.1.1", True)):
        monkeypatch.setattr(local, "pocketsphinx_build", lambda build=build: build)
        caplog.clear()
        with caplog.at_level("WARNING", logger="bridge.stt.local"):
            engine = local.PocketsphinxStt(pool)  # type: ignore[arg-type]
        assert engine.describe()["pocketsphinx"] == build
        assert ("not Hearth's patched build" in caplog.text) is warned
