"""DecoderSettings: one frozen object, defaults as measured, and a replaced field reaches
pocketsphinx (bridge/recognition/settings.py)."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.recognition import CompiledGrammar, DecoderSettings, compile_grammar
from bridge.resources import cmudict, load_demo_vocabulary, new_decoder
from tests.support.audio import stream
from tests.support.speech import have_espeak, read_pcm

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def grammar() -> CompiledGrammar:
    return compile_grammar(load_demo_vocabulary(), cmudict())


def test_settings_are_frozen_and_documented() -> None:
    settings = DecoderSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.beam = 1e-10  # type: ignore[misc]
    source = (ROOT / "bridge/recognition/settings.py").read_text(encoding="utf-8")
    for item in dataclasses.fields(DecoderSettings):
        # every field is followed by its docstring
        after = source.split(f"    {item.name}: ", 1)[1].split("\n", 1)[1]
        assert after.lstrip().startswith('"""'), item.name


def test_defaults_reach_the_pocketsphinx_config(grammar: CompiledGrammar) -> None:
    decoder = new_decoder(grammar)
    try:
        assert decoder._decoder is not None
        config = decoder._decoder.config
        defaults = DecoderSettings()
        assert config["beam"] == defaults.beam == 1e-48
        assert config["wbeam"] == defaults.wbeam == 1e-45
        assert config["maxhmmpf"] == defaults.maxhmmpf == 3000
        assert config["lw"] == defaults.lw == 6.5
        assert config["cmninit"] == defaults.cmn_init
    finally:
        decoder.close()


def test_replaced_settings_reach_the_pocketsphinx_config(grammar: CompiledGrammar) -> None:
    settings = dataclasses.replace(
        DecoderSettings(), beam=1e-40, wbeam=1e-30, pbeam=1e-35, maxhmmpf=1234, lw=7.5, wip=0.5,
        topn=2, ds=2, compallsen=True,
        cmn_init="40,-9,-3,8,-7,-1,-4,-10,-2,-4,2,-1,-2")
    decoder = new_decoder(grammar, settings)
    try:
        assert decoder.settings is settings
        assert decoder._decoder is not None
        config = decoder._decoder.config
        assert (config["beam"], config["wbeam"], config["pbeam"]) == (1e-40, 1e-30, 1e-35)
        assert (config["maxhmmpf"], config["lw"], config["wip"]) == (1234, 7.5, 0.5)
        assert (config["topn"], config["ds"]) == (2, 2)
        assert config["compallsen"] is True
        assert config["cmninit"] == settings.cmn_init
        decoder.start()  # every utterance starts from the configured mean
        mean = [float(x) for x in decoder._decoder.get_cmn(False).split(",")]
        assert mean == [float(x) for x in settings.cmn_init.split(",")]
        decoder.finish()
    finally:
        decoder.close()


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng is not installed")
def test_a_replaced_beam_changes_the_search(grammar: CompiledGrammar, say) -> None:
    """A word-exit beam far too narrow loses the grammar path that the default finds."""
    pcm = read_pcm(say("turn on the kitchen light"))
    narrow = new_decoder(grammar, dataclasses.replace(DecoderSettings(), wbeam=1e-5))
    default = new_decoder(grammar)
    try:
        assert stream(default, pcm).text == "turn on the kitchen light"
        lost = stream(narrow, pcm)
        assert lost.rejected and lost.reject_reason == "no_path"
    finally:
        narrow.close()
        default.close()


def _tune_offline():
    spec = importlib.util.spec_from_file_location("tune_offline", ROOT / "bench/tune_offline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tune_offline_overrides_settings_by_name() -> None:
    tune = _tune_offline()
    settings = tune.settings_from(["MAXHMMPF=30000", "cmvn=False", "PITCH_WARPS=((160.0, 1.1),)",
                                   "CMN_INIT=1,2,3"])
    assert settings == dataclasses.replace(DecoderSettings(), maxhmmpf=30000, cmvn=False,
                                           pitch_warps=((160.0, 1.1),), cmn_init="1,2,3")
    with pytest.raises(SystemExit, match="VERIFY_WARP"):
        tune.settings_from(["VERIFY_WARP=1.1"])  # removed: not a setting


@pytest.mark.parametrize("script", ["bench/tune_offline.py", "bench/grammar_bench.py"])
def test_benches_start(script: str) -> None:
    done = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout
