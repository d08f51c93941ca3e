"""The recognizer's front end: speaker pitch → VTLN warp, and the streaming noise suppressor."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bridge.recognition import DecoderSettings, compile_grammar
from bridge.recognition.denoise import Denoiser, estimate_noise
from bridge.recognition.pitch import median_f0, warp_for_f0
from bridge.resources import cmudict, load_demo_vocabulary, new_decoder
from tests.support.audio import decode_text as decode
from tests.support.audio import pcm16, pink_noise, samples, with_pink_noise
from tests.support.speech import read_pcm

RATE = 16000
DEFAULTS = DecoderSettings()


# pitch ---------------------------------------------------------------------
def test_pitch_of_a_low_and_a_high_voice(say) -> None:
    low = median_f0(read_pcm(say("turn on the kitchen light", voice="en-us")))
    high = median_f0(read_pcm(say("turn on the kitchen light", voice="en-us+f3")))
    assert low is not None and high is not None
    assert 80 < low < 150 < 170 < high < 300


def test_pitch_survives_noise(say) -> None:
    clean = samples(read_pcm(say("set a timer for five minutes", voice="en-us+f3")))
    speech_rms = np.sqrt(np.mean(clean[np.abs(clean) > 100] ** 2))
    noisy = clean + pink_noise(len(clean), speech_rms / 10 ** (10 / 20))  # 10 dB SNR
    f0 = median_f0(pcm16(noisy))
    assert f0 is not None and 170 < f0 < 300


def test_no_pitch_without_voice() -> None:
    assert median_f0(b"") is None
    assert median_f0(bytes(2 * RATE)) is None  # digital silence
    assert median_f0(pcm16(np.random.default_rng(1).normal(0, 300, RATE))) is None  # noise only


def test_warp_table() -> None:
    table = ((165.0, 1.2), (260.0, 1.3))
    assert warp_for_f0(None, table) is None
    assert warp_for_f0(110.0, table) is None
    assert warp_for_f0(210.0, table) == 1.2
    assert warp_for_f0(300.0, table) == 1.3


# noise suppressor -------------------------------------------------------------
def test_denoiser_gives_back_clean_audio_unchanged(say) -> None:
    pcm = read_pcm(say("what time is it"))
    den = Denoiser(np.full(257, 1e-9))
    out = b"".join(den.process(pcm[i:i + 999]) for i in range(0, len(pcm), 999)) + den.flush()
    assert out == pcm  # odd chunk sizes, same length, every sample exact


def test_denoiser_does_not_depend_on_chunking(say) -> None:
    clean = samples(read_pcm(say("open the garage door")))
    pcm = pcm16(clean + pink_noise(len(clean), 800))
    noise = estimate_noise(pcm[: 2 * RATE])
    assert noise is not None
    whole = Denoiser(noise)
    parts = Denoiser(noise)
    a = whole.process(pcm) + whole.flush()
    b = b"".join(parts.process(pcm[i:i + 960]) for i in range(0, len(pcm), 960)) + parts.flush()
    assert a == b and len(a) == len(pcm)


def test_denoiser_lowers_noise_and_keeps_speech(say) -> None:
    clean = samples(read_pcm(say("turn off the reading lamp")))
    speech = np.abs(clean) > 300
    noise = pink_noise(len(clean), 600)
    noisy = pcm16(clean + noise)
    den = Denoiser(estimate_noise(noisy[: int(1.3 * 2 * RATE)]))
    out = samples(den.process(noisy) + den.flush())
    residual = out - clean
    # where there is no speech, the noise is lower (a low percentile makes the estimate conservative)
    quiet = ~np.convolve(speech, np.ones(800), "same").astype(bool)
    assert quiet.sum() > RATE // 4
    ratio_db = 10 * np.log10(np.mean(out[quiet] ** 2) / np.mean(noise[quiet] ** 2))
    assert ratio_db < -2
    # and the speech itself is still there: SNR over the speech improves, not worsens
    snr_before = 10 * np.log10(np.mean(clean[speech] ** 2) / np.mean(noise[speech] ** 2))
    snr_after = 10 * np.log10(np.mean(clean[speech] ** 2) / np.mean(residual[speech] ** 2))
    assert snr_after > snr_before + 1


def test_too_little_audio_for_a_noise_estimate() -> None:
    assert estimate_noise(b"") is None
    assert estimate_noise(bytes(2 * 700)) is None


# both in the decoder ------------------------------------------------------------

def test_decoder_warps_only_high_voices(demo_decoder, say) -> None:
    assert decode(demo_decoder, read_pcm(say("turn off the kitchen light"))) == "turn off the kitchen light"
    assert demo_decoder.last_warp is None and demo_decoder.last_f0 is not None and demo_decoder.last_f0 < 150
    text = decode(demo_decoder, read_pcm(say("turn off the kitchen light", voice="en-us+f3")))
    assert demo_decoder.last_f0 is not None and demo_decoder.last_f0 > 170
    assert demo_decoder.last_warp == DEFAULTS.pitch_warps[0][1]
    assert text == "turn off the kitchen light"
    # the warp is per utterance: the next low voice is decoded unwarped again
    decode(demo_decoder, read_pcm(say("what time is it")))
    assert demo_decoder.last_warp is None
    assert demo_decoder._decoder.config["warp_params"] is None


def test_decoder_understands_speech_in_noise(demo_decoder, say) -> None:
    noisy = with_pink_noise(read_pcm(say("set the bedroom light to fifty percent")), 15, seed=3)
    assert decode(demo_decoder, noisy) == "set the bedroom light to fifty percent"


def test_short_utterance_is_decoded_whole(demo_decoder, say) -> None:
    """Shorter than the held-back buffer: everything (incl. the suppressor's delay) is decoded."""
    pcm = read_pcm(say("what time is it"))
    speech = pcm[int(0.45 * 2 * RATE):]  # no lead-in, well under cmn_buffer_s
    demo_decoder.start()
    demo_decoder.feed(speech)
    result = demo_decoder.finish()
    assert result.text == "what time is it"
    assert result.audio_seconds == pytest.approx(len(speech) / 2 / RATE)


def test_reject_reasons(demo_decoder, say) -> None:
    def finish(pcm: bytes):
        demo_decoder.start()
        demo_decoder.feed(pcm)
        return demo_decoder.finish()

    good = finish(read_pcm(say("turn on the kitchen light")))
    assert not good.rejected and good.reject_reason is None
    silence = finish(bytes(2 * 2 * RATE))
    assert silence.rejected and silence.reject_reason in ("no_path", "short")
    chatter = finish(read_pcm(say("I think we should order pizza tonight")))
    assert chatter.rejected and chatter.reject_reason in ("no_path", "score", "garbage")


def test_polite_speech_with_a_polite_vocabulary(say) -> None:
    import dataclasses

    from bridge.recognition import IntentRecognizer

    vocab = dataclasses.replace(load_demo_vocabulary(), polite=True)
    polite = new_decoder(compile_grammar(vocab, cmudict()))
    text = decode(polite, read_pcm(say("please turn on the kitchen light")))
    assert text == "please turn on the kitchen light"
    match = IntentRecognizer(vocab).recognize(text)
    assert match is not None and match.name == "HassTurnOn" and match.entity_ids == ("light.kitchen",)


def test_a_quiet_room_is_left_alone() -> None:
    """Steady noise far below speech is not worth suppressing: no estimate, no suppressor."""
    rng = np.random.default_rng(5)
    assert estimate_noise(pcm16(rng.normal(0, 15, RATE))) is None  # about -67 dBFS
    assert estimate_noise(pcm16(rng.normal(0, 300, RATE))) is not None  # about -41 dBFS


# rejection in noise ---------------------------------------------------------------
def test_snr_estimate_follows_the_noise(say) -> None:
    from bridge.recognition.conditioning import estimate_snr

    clean = samples(read_pcm(say("turn on the kitchen light")))
    speech_rms = np.sqrt(np.mean(clean[np.abs(clean) > 100] ** 2))
    at = {db: estimate_snr(pcm16(clean + pink_noise(len(clean), speech_rms / 10 ** (db / 20))))
          for db in (20, 10)}
    quiet = estimate_snr(pcm16(clean), floor_std=100.0)  # digital silence counts as the floor
    assert quiet is not None and at[20] is not None and at[10] is not None
    assert quiet > at[20] + 5 > at[10] + 10
    assert 5 < at[10] < 25
    assert estimate_snr(bytes(2 * 1000)) is None  # too short to say


def test_threshold_tightens_only_in_noise() -> None:
    from bridge.recognition.conditioning import reject_threshold

    base = DEFAULTS.reject_score_per_frame
    assert reject_threshold(None) == base
    assert reject_threshold(DEFAULTS.noisy_ref_snr_db + 10) == base
    assert reject_threshold(20.0) < base
    assert reject_threshold(10.0) < reject_threshold(20.0)


@pytest.mark.parametrize("text", ["have you seen my keys anywhere",
                                  "let us watch something funny later"])
def test_chatter_in_noise_is_rejected(demo_decoder, say, text: str) -> None:
    """At 10 dB SNR these fit a command better than the clean threshold allows for: measured,
    both were accepted before the threshold followed the noise."""
    clean = samples(read_pcm(say(text)))
    speech_rms = np.sqrt(np.mean(clean[np.abs(clean) > 100] ** 2))
    noisy = pcm16(clean + pink_noise(len(clean), speech_rms / 10 ** (10 / 20), seed=3))
    demo_decoder.start()
    for i in range(0, len(noisy), 960):
        demo_decoder.feed(noisy[i:i + 960])
    result = demo_decoder.finish()
    assert result.rejected, result
    assert result.threshold < DEFAULTS.reject_score_per_frame


@pytest.mark.skipif(bool(os.environ.get("HEARTH_STOCK_POCKETSPHINX")),
                    reason="HEARTH_STOCK_POCKETSPHINX: PyPI's wheel has this bug")
def test_a_warp_chosen_again_is_applied_again(demo_decoder, say) -> None:
    """pocketsphinx kept the warp's parameters in static variables and skipped a factor it had
    seen before, even after warping was turned off in between: high voice, low voice, high voice
    left the second high voice unwarped (patch 0004). The same audio must decode the same way."""
    high = read_pcm(say("set the bedroom light to fifty percent", voice="en-us+f3"))
    low = read_pcm(say("turn off the kitchen light"))

    def scored(pcm: bytes) -> tuple[str, object]:
        text = decode(demo_decoder, pcm)
        return text, demo_decoder.last_score

    first = scored(high)
    assert demo_decoder.last_warp == DEFAULTS.pitch_warps[0][1]
    scored(low)
    assert demo_decoder.last_warp is None
    assert scored(high) == first
