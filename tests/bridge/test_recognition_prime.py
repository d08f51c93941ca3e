"""Priming: audio before the utterance calibrates the recognizer but is never decoded."""

from __future__ import annotations

import pytest

from bridge.recognition import GrammarDecoder, compile_grammar
from bridge.resources import cmudict, load_demo_vocabulary, new_decoder
from tests.support.speech import read_pcm


@pytest.fixture(scope="module")
def decoder() -> GrammarDecoder:
    return new_decoder(compile_grammar(load_demo_vocabulary(), cmudict()))


def decode(decoder: GrammarDecoder, pcm: bytes, prime: bytes = b"") -> str:
    decoder.start()
    if prime:
        decoder.prime(prime)
    for i in range(0, len(pcm), 960):
        decoder.feed(pcm[i:i + 960])
    return decoder.finish().text


def test_primed_audio_is_not_decoded(decoder, say) -> None:
    wake = read_pcm(say("okay nabu"))
    command = read_pcm(say("turn off the kitchen light"))[16000:]  # no lead-in silence
    assert decode(decoder, command, prime=wake) == "turn off the kitchen light"
    other = read_pcm(say("what time is it"))
    assert decode(decoder, command, prime=other) == "turn off the kitchen light"


def test_prime_only_right_after_start(decoder, say) -> None:
    pcm = read_pcm(say("what time is it"))
    decoder.start()
    decoder.feed(pcm[:960])
    with pytest.raises(RuntimeError):
        decoder.prime(pcm)
    decoder.finish()
