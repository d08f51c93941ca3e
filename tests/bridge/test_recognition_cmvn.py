"""Cepstral scaling in noise: pocketsphinx's statistics and scale (patch 0003) and the decoder's use.

Noise compresses the spread of the cepstra; the decoder measures it on the audio it holds back
anyway and, when the estimated SNR says the audio is noisy, stretches c0..c2 back towards the
spread of clean speech (``DecoderSettings.cmvn``, docs/recognition.md).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from pocketsphinx import Config, Decoder

from bridge.recognition import DecoderSettings
from bridge.recognition import decoder as decoder_module
from bridge.recognition.conditioning import variance_scale
from bridge.resources import new_decoder
from tests.support.audio import decode_text as decode
from tests.support.audio import pcm16, samples, with_pink_noise
from tests.support.speech import read_pcm

RATE = 16000
DEFAULTS = DecoderSettings()
CMVN_MAX_SCALE = DEFAULTS.cmvn_max_scale
CMVN_REFERENCE = DEFAULTS.cmvn_reference
CMVN_SNR_FROM_DB = DEFAULTS.cmvn_snr_from_db
CMVN_SNR_FULL_DB = DEFAULTS.cmvn_snr_full_db
patched_only = pytest.mark.skipif(
    bool(os.environ.get("HEARTH_STOCK_POCKETSPHINX")),
    reason="HEARTH_STOCK_POCKETSPHINX: PyPI's wheel has no cepstral statistics or scale")


# the factors --------------------------------------------------------------------
def test_no_scaling_for_clean_audio_or_without_an_estimate() -> None:
    half = [r / 2 for r in CMVN_REFERENCE]
    assert variance_scale(half, None) is None
    assert variance_scale(half, CMVN_SNR_FROM_DB) is None
    assert variance_scale(half, 35.0) is None


def test_full_scaling_in_heavy_noise_and_a_ramp_between() -> None:
    half = [r / 2 for r in CMVN_REFERENCE]
    full = variance_scale(half, CMVN_SNR_FULL_DB - 5)
    assert full == pytest.approx([2.0] * len(CMVN_REFERENCE))
    midway = variance_scale(half, (CMVN_SNR_FROM_DB + CMVN_SNR_FULL_DB) / 2)
    assert midway == pytest.approx([2.0 ** 0.5] * len(CMVN_REFERENCE))


def test_factors_stay_within_bounds() -> None:
    tiny = [r / 10 for r in CMVN_REFERENCE]
    assert variance_scale(tiny, 10.0) == [CMVN_MAX_SCALE] * len(CMVN_REFERENCE)
    wide = [r * 2 for r in CMVN_REFERENCE]  # already wider than clean speech: never shrunk
    assert variance_scale(wide, 10.0) == [1.0] * len(CMVN_REFERENCE)
    # only the first dimensions are scaled, whatever the statistics hold; a zero spread is left
    assert len(variance_scale([5.0] * 13, 10.0) or []) == len(CMVN_REFERENCE)
    assert variance_scale([0.0] * 13, 10.0) == [1.0] * len(CMVN_REFERENCE)


def test_switched_off() -> None:
    assert variance_scale([1.0] * 13, 5.0, dataclasses.replace(DEFAULTS, cmvn=False)) is None


# pocketsphinx: statistics and scale (patch 0003) ------------------------------
def _plain_decoder() -> Decoder:
    return Decoder(Config(loglevel="FATAL"))


@patched_only
def test_statistics_count_the_frames_since_the_mean_was_set(say) -> None:
    speech = samples(read_pcm(say("turn on the kitchen light")))
    pcm = pcm16(speech + np.random.default_rng(1).normal(0, 100, len(speech)))
    dec = _plain_decoder()
    dec.set_cmn(",".join(["0"] * 13))
    dec.start_utt()
    dec.process_raw(pcm, no_search=True, full_utt=False)
    frames, mean, std = dec.get_cmn_stats()
    # live CMN was given a zero mean worth 500 frames: its updated mean is the frames' sum / (500 + n)
    updated = [float(x) for x in dec.get_cmn(True).split(",")]
    dec.end_utt()
    assert 0.9 * len(pcm) / 2 / 160 < frames <= len(pcm) / 2 / 160 + 1
    assert len(mean) == len(std) == 13
    assert [m * frames / (500 + frames) for m in mean] == pytest.approx(updated, abs=0.01)
    assert all(s > 0 for s in std)
    dec.set_cmn(",".join(["0"] * 13))  # setting the mean starts the count again
    assert dec.get_cmn_stats()[0] == 0


@patched_only
def test_noise_compresses_the_spread_of_the_first_cepstra(say) -> None:
    pcm = read_pcm(say("set the bedroom light to fifty percent"))
    quiet = pcm16(samples(pcm) + np.random.default_rng(2).normal(0, 100, len(pcm) // 2))

    def spread(audio: bytes) -> list[float]:
        dec = _plain_decoder()
        dec.set_cmn(",".join(["0"] * 13))
        dec.start_utt()
        dec.process_raw(audio, no_search=True, full_utt=False)
        std = dec.get_cmn_stats()[2]
        dec.end_utt()
        return std

    clean, noisy = spread(quiet), spread(with_pink_noise(pcm, 10.0, seed=4))
    assert all(n < 0.9 * c for n, c in zip(noisy[:3], clean[:3], strict=True))


@patched_only
def test_a_unit_scale_changes_nothing_and_a_real_one_does(say) -> None:
    pcm = with_pink_noise(read_pcm(say("turn off the kitchen light")), 10.0, seed=5)

    def decode(scale: list[float] | None, reinit: bool = False) -> tuple[str, float]:
        dec = _plain_decoder()
        if scale is not None:
            dec.set_cmn_scale(scale)
        if reinit:
            dec.reinit_feat()  # a new feature pipeline starts unscaled
        dec.start_utt()
        dec.process_raw(pcm, full_utt=False)
        dec.end_utt()
        hyp = dec.hyp()
        return hyp.hypstr, hyp.score

    plain = decode(None)
    assert decode([1.0] * 13) == plain
    assert decode([]) == plain  # an empty scale is "off"
    assert decode([1.8, 1.6, 1.4], reinit=True) == plain
    assert decode([1.8, 1.6, 1.4]) != plain


@patched_only
def test_a_scale_longer_than_the_cepstra_is_refused() -> None:
    dec = _plain_decoder()
    with pytest.raises(ValueError, match="cepstral scale"):
        dec.set_cmn_scale([1.0] * 14)
    dec.set_cmn_scale(None)  # and turning it off always works


# in the decoder -----------------------------------------------------------------------

@patched_only
def test_the_decoder_scales_noisy_audio_only(demo_decoder, say) -> None:
    pcm = read_pcm(say("turn off the kitchen light"))
    assert decode(demo_decoder, pcm) == "turn off the kitchen light"
    assert demo_decoder.last_scale is None  # clean: left alone
    assert decode(demo_decoder, with_pink_noise(pcm, 10.0, seed=6)) == "turn off the kitchen light"
    scale = demo_decoder.last_scale
    assert scale is not None and len(scale) == len(CMVN_REFERENCE)
    assert all(1.0 <= f <= CMVN_MAX_SCALE for f in scale) and scale[0] > 1.2
    # per utterance: the next clean one is decoded unscaled again
    decode(demo_decoder, pcm)
    assert demo_decoder.last_scale is None


def test_without_the_patched_build_nothing_is_scaled(demo_decoder, say, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyPI's wheel (HEARTH_STOCK_POCKETSPHINX) has neither statistics nor scale: decode as before."""
    monkeypatch.setattr(decoder_module, "HAS_CMN_SCALE", False)
    noisy = with_pink_noise(read_pcm(say("turn off the kitchen light")), 10.0, seed=6)
    decode(demo_decoder, noisy)
    assert demo_decoder.last_scale is None


@patched_only
def test_scaling_understands_more_noisy_commands(demo_decoder, say) -> None:
    """Commands of the demo home in two voices at 10 dB pink noise: scaled, no fewer are heard
    right than unscaled."""
    commands = ["turn off the kitchen light", "set the bedroom light to fifty percent",
                "open the living room blinds", "close the garage door",
                "turn on the ceiling fan", "pause the tv"]
    clips = [with_pink_noise(read_pcm(say(text, voice=voice)), 10.0, seed=n)
             for n, (text, voice) in enumerate((t, v) for t in commands for v in ("en-us", "en-us+f3"))]
    expected = [t for t in commands for _ in range(2)]

    assert demo_decoder.settings.cmvn
    unscaled = new_decoder(demo_decoder.grammar, dataclasses.replace(DEFAULTS, cmvn=False))

    def heard(decoder) -> list[str]:
        return [decode(decoder, pcm) for pcm in clips]

    scaled, plain = heard(demo_decoder), heard(unscaled)
    unscaled.close()
    right = sum(h == e for h, e in zip(scaled, expected, strict=True))
    assert right >= sum(h == e for h, e in zip(plain, expected, strict=True))
    assert right >= len(expected) // 2
