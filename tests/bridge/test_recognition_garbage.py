"""The garbage word loop beside the grammar (bridge/recognition/garbage.py), its stored word list
(bridge/resources.py) and the tool that makes it (bridge/tools/frequent_words.py)."""

from __future__ import annotations

import dataclasses

import pytest

from bridge.recognition import DecoderSettings, GrammarDecoder, compile_grammar, garbage
from bridge.recognition.decoder import garbage_words
from bridge.recognition.fsg import JOIN
from bridge.recognition.scoring import sentence_checker
from bridge.resources import cmudict, frequent_words, load_demo_vocabulary, new_decoder
from bridge.tools.frequent_words import STORED_WORDS, rank_words
from tests.support.speech import read_pcm


@pytest.fixture(scope="module")
def grammar():
    return compile_grammar(load_demo_vocabulary(), cmudict())


def _transitions(fsg: str) -> list[tuple[str, ...]]:
    return [tuple(line.split()) for line in fsg.splitlines() if line.startswith("TRANSITION")]


def test_stored_words_are_the_language_models_most_frequent() -> None:
    """The shipped list is what the bundled language model says (regenerable, not hand-picked)."""
    stored = tuple(frequent_words())
    assert len(stored) == STORED_WORDS
    assert list(stored[:200]) == rank_words(200)
    assert stored[:3] == ("the", "to", "i")
    prons = cmudict()
    assert all(frequent_words()[w] == prons[w] for w in stored)  # the dictionary's, every variant


def test_loop_words_leave_out_the_grammars_words(grammar) -> None:
    used = {w for token in grammar.dictionary for w in token.split(JOIN)}
    words = garbage_words(grammar, frequent_words(), DecoderSettings().garbage_words)
    assert len(words) == DecoderSettings().garbage_words
    assert not used & set(words)
    assert {"think", "because", "people"} <= set(words)
    assert all(w in cmudict() for w in words)
    assert garbage.loop_words(frequent_words(), 5, frozenset({"the", "to"})) == [
        "i", "and", "a", "of", "you"]


def test_loop_is_a_side_branch_that_leaves_the_grammar_as_it_was(grammar) -> None:
    words = ["think", "people", "because"]
    fsg = garbage.add_garbage_loop(grammar.fsg, 1e-5, words)
    n = int(next(x for x in grammar.fsg.splitlines() if x.startswith("NUM_STATES")).split()[1])
    final = next(x for x in grammar.fsg.splitlines() if x.startswith("FINAL_STATE")).split()[1]
    assert f"NUM_STATES {n + 1}" in fsg
    before = set(_transitions(grammar.fsg))
    added = [t for t in _transitions(fsg) if t not in before]
    assert len(_transitions(fsg)) == len(before) + len(added)
    assert ("TRANSITION", "0", str(n), "1e-05") in added
    assert ("TRANSITION", str(n), final, "0.5") in added
    loops = [t for t in added if len(t) == 5]
    assert sorted(t[4] for t in loops) == sorted(f"{garbage.PREFIX}{w}" for w in words)
    assert all(t[1] == t[2] == str(n) for t in loops)
    # the commands are still commands, and no loop word makes one
    accepts = sentence_checker(fsg)
    assert accepts("turn on the kitchen light")
    assert not accepts(f"{garbage.PREFIX}think")
    # off: unchanged
    assert garbage.add_garbage_loop(grammar.fsg, 0.0, words) == grammar.fsg
    assert garbage.add_garbage_loop(grammar.fsg, 1e-5, []) == grammar.fsg
    lines = garbage.dictionary_lines(frequent_words(), ["people"])
    assert lines[0] == f"{garbage.PREFIX}people {cmudict()['people'][0]}"


def _decode(decoder: GrammarDecoder, pcm: bytes):
    decoder.start()
    for i in range(0, len(pcm), 960):
        decoder.feed(pcm[i:i + 960])
    return decoder.finish()


def test_chatter_goes_to_the_loop_and_commands_do_not(grammar, say) -> None:
    decoder = new_decoder(grammar)
    try:
        for voice in ("en-us", "en-gb"):
            chatter = _decode(decoder, read_pcm(say("we need more eggs and bread", voice=voice)))
            assert chatter.rejected and chatter.reject_reason == "garbage", chatter
            assert chatter.text == "" and chatter.confidence == 0.0
            command = _decode(decoder, read_pcm(say("turn off the kitchen light", voice=voice)))
            assert not command.rejected and command.text == "turn off the kitchen light"
    finally:
        decoder.close()
    # without the loop the same chatter is forced into the grammar (and only the score says no)
    plain = new_decoder(grammar, dataclasses.replace(DecoderSettings(), garbage_enter=0.0))
    try:
        chatter = _decode(plain, read_pcm(say("we need more eggs and bread")))
        assert chatter.reject_reason != "garbage"
    finally:
        plain.close()
