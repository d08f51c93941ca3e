"""Grammar compilation from the real home-assistant-intents templates."""

from __future__ import annotations

import logging
import pickle
import re

import pytest

from bridge.recognition import (
    CompiledGrammar,
    compile_grammar,
    parse_vocabulary,
)
from bridge.recognition.pronounce import Pronouncer
from bridge.recognition.scoring import sentence_checker
from bridge.recognition.text import normalize_text
from bridge.resources import cmudict, load_demo_vocabulary

REQUIRED_INTENTS = {
    "HassTurnOn", "HassTurnOff", "HassLightSet", "HassGetState", "HassClimateGetTemperature",
    "HassClimateSetTemperature", "HassSetPosition", "HassMediaPause", "HassMediaUnpause",
    "HassMediaNext", "HassStartTimer", "HassCancelTimer", "HassGetCurrentTime", "HassNevermind",
    "HearthSentence",
}


@pytest.fixture(scope="module")
def demo() -> CompiledGrammar:
    return compile_grammar(load_demo_vocabulary(), cmudict())


def _home(entities: list[dict[str, object]], **extra: object) -> CompiledGrammar:
    data = {"language": "en", "floors": [{"id": "g", "name": "Ground floor"}],
            "areas": [{"id": "kitchen", "name": "Kitchen", "floor": "g"},
                      {"id": "bedroom", "name": "Bedroom", "floor": "g"}],
            "entities": entities, **extra}
    return compile_grammar(parse_vocabulary(data), cmudict())


def test_required_intents_are_compiled(demo: CompiledGrammar) -> None:
    used = demo.stats["templates_used_by_intent"]
    assert isinstance(used, dict)
    assert REQUIRED_INTENTS <= set(used), REQUIRED_INTENTS - set(used)


@pytest.mark.parametrize("sentence", [
    "turn on the kitchen light", "turn off the reading lamp", "switch off the bedroom light",
    "turn on the lights in the kitchen", "turn off the downstairs lights",
    "set the bedroom light to fifty percent", "set the kitchen light brightness to 100 percent",
    "set the kitchen light to red", "open the garage door", "close the living room blinds",
    "set the living room blinds position to 30 percent", "what is the temperature",
    "set the temperature to 21 degrees", "set the temperature to twenty one point five degrees",
    "pause the tv", "unpause the television", "next track", "set a timer for five minutes",
    "set a timer for 1 hour and 30 minutes", "cancel the timer", "what time is it", "never mind",
    "what is the weather like", "is the front door locked", "turn on the coffee maker",
])
def test_grammar_accepts_commands(demo: CompiledGrammar, sentence: str) -> None:
    assert sentence_checker(demo.fsg)(normalize_text(sentence)), sentence


@pytest.mark.parametrize("sentence", [
    "i think we should order pizza tonight",
    "turn on the garage lights",  # no light in the garage: the area is not offered for lights
    "turn on the dishwasher",  # no such name
    "the office green",  # verbless colour command (dropped on purpose)
    "kitchen light on",  # verbless on/off (dropped on purpose)
])
def test_grammar_rejects_other_sentences(demo: CompiledGrammar, sentence: str) -> None:
    assert not sentence_checker(demo.fsg)(sentence)


def test_fsg_is_well_formed_and_picklable(demo: CompiledGrammar) -> None:
    lines = demo.fsg.splitlines()
    assert lines[0].startswith("FSG_BEGIN") and lines[-1] == "FSG_END"
    n_states = int(lines[1].split()[1])
    final = int(lines[3].split()[1])
    words = set()
    for line in lines[4:-1]:
        parts = line.split()
        assert parts[0] == "TRANSITION"
        assert 0 <= int(parts[1]) < n_states and 0 <= int(parts[2]) < n_states
        assert 0.0 < float(parts[3]) <= 1.0
        if len(parts) == 5:
            words.add(parts[4])
    assert final < n_states
    assert words == set(demo.dictionary)
    for word, prons in demo.dictionary.items():
        assert all(w == normalize_text(w) for w in word.split("_")) and prons
        assert all(re.fullmatch(r"[A-Z]+( [A-Z]+)*", p) for p in prons), (word, prons)
    assert pickle.loads(pickle.dumps(demo)) == demo
    assert demo.hash == load_demo_vocabulary().hash()
    for key in ("states", "transitions", "words", "templates_used", "templates_skipped",
                "unpronounceable", "compile_seconds"):
        assert key in demo.stats


def test_dead_templates_are_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bridge.recognition.grammar"):
        grammar = _home([{"id": "light.k", "name": "Kitchen light", "domain": "light",
                          "area": "kitchen"}])
    reasons = grammar.stats["templates_skipped_reasons"]
    assert isinstance(reasons, dict)
    # no cover in this home: cover templates are dead, and "open ..." is not in the grammar
    assert reasons.get("no_entity:cover/*", 0) > 0
    assert "HassSetPosition" not in grammar.stats["templates_used_by_intent"]  # type: ignore[operator]
    assert not sentence_checker(grammar.fsg)("open the garage door")
    # what the recognizer cannot express is counted, not lost
    assert reasons.get("wildcard:timer_name", 0) > 0
    assert reasons.get("intent_not_supported", 0) > 0
    assert grammar.stats["templates_skipped"] == sum(reasons.values())
    # ... and logged once
    records = [r for r in caplog.records if r.name == "bridge.recognition.grammar"]
    assert len(records) == 1 and "skipped" in records[0].getMessage()
    assert sentence_checker(grammar.fsg)("turn on the kitchen light")


def test_home_without_entities_still_has_timers_and_time() -> None:
    grammar = _home([])
    check = sentence_checker(grammar.fsg)
    assert check("what time is it") and check("set a timer for ten minutes")
    assert not check("turn on the kitchen light")


def test_out_of_dictionary_names_get_pronunciations() -> None:
    grammar = _home([
        {"id": "light.z", "name": "Zigbee hub lamp", "domain": "light", "area": "kitchen"},
        {"id": "media_player.s", "name": "Sonos", "domain": "media_player", "area": "kitchen"},
        {"id": "light.kid", "name": "Kid's café lamp", "domain": "light", "area": "bedroom"},
        {"id": "light.b2", "name": "Bedroom 2 light", "domain": "light", "area": "bedroom"},
        {"id": "switch.cn", "name": "客厅灯", "domain": "switch", "area": "bedroom"},
    ])
    spoken = {w for token in grammar.dictionary for w in token.split("_")}
    assert {"zigbee", "sonos", "café", "two"} <= spoken
    methods = grammar.stats["invented_pronunciations"]
    assert isinstance(methods, dict)
    assert methods["zigbee"] == "compound" and methods["café"] == "accents"
    check = sentence_checker(grammar.fsg)
    assert check("turn on the zigbee hub lamp") and check("turn off bedroom two light")
    assert check("pause sonos")
    # a name in a script the recognizer cannot pronounce is reported, not silently dropped
    assert grammar.stats["unpronounceable"] == ["客厅灯"]


def test_pronouncer_methods() -> None:
    p = Pronouncer(cmudict())
    assert p.pronounce("kitchen") == ("K IH CH AH N",)
    assert p.pronounce("unpause") == ("AH N P AO Z",)  # un + pause
    assert p.pronounce("hows") == ("HH AW Z",)  # how's
    assert p.pronounce("awnings") is not None
    assert p.pronounce("nas") is not None  # short: spelled out if nothing else works
    assert p.pronounce("ñññññññ") is None


@pytest.mark.parametrize(("text", "expected"), [
    ("Kitchen Light!", "kitchen light"), ("Bedroom 2", "bedroom two"), ("50%", "fifty percent"),
    ("21.5°", "twenty one point five degrees"), ("What\u2019s up-to-date?", "what's up to date"),
    ("1st floor", "first floor"), ("  lots   of  space ", "lots of space"), ("TV", "tv"),
])
def test_normalisation(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


# politeness (Home Assistant's skip words), only when the vocabulary asks for it -------------------
POLITE = ["please turn on the kitchen light", "can you turn on the kitchen light",
          "could you set a timer for five minutes please", "would you turn off the kitchen light",
          "turn on the kitchen light please"]


@pytest.fixture(scope="module")
def polite() -> CompiledGrammar:
    import dataclasses

    return compile_grammar(dataclasses.replace(load_demo_vocabulary(), polite=True), cmudict())


@pytest.mark.parametrize("sentence", POLITE)
def test_polite_forms_only_when_asked(demo: CompiledGrammar, polite: CompiledGrammar,
                                      sentence: str) -> None:
    assert sentence_checker(polite.fsg)(sentence)
    assert not sentence_checker(demo.fsg)(sentence)


@pytest.mark.parametrize("sentence", [
    "please please turn on the kitchen light",  # one opening only
    "please", "can you", "turn on please the kitchen light", "please can you",
])
def test_polite_words_alone_or_inside_are_not_sentences(polite: CompiledGrammar, sentence: str) -> None:
    assert not sentence_checker(polite.fsg)(sentence)


def test_polite_grammar_keeps_the_plain_sentences(demo: CompiledGrammar, polite: CompiledGrammar) -> None:
    for sentence in ("turn on the kitchen light", "what time is it", "set a timer for five minutes"):
        assert sentence_checker(polite.fsg)(sentence)
    assert polite.hash != demo.hash


def _sentence_probability(fsg: str, words: list[str]) -> float:
    """Sum over the FSG's paths that say `words` (multi-word tokens, null transitions)."""
    arcs: dict[int, list[tuple[int, float, tuple[str, ...]]]] = {}
    final = -1
    for line in fsg.splitlines():
        parts = line.split()
        if parts[0] == "FINAL_STATE":
            final = int(parts[1])
        elif parts[0] == "TRANSITION":
            token = tuple(parts[4].split("_")) if len(parts) > 4 else ()
            arcs.setdefault(int(parts[1]), []).append((int(parts[2]), float(parts[3]), token))

    def prob(state: int, pos: int) -> float:
        total = 1.0 if state == final and pos == len(words) else 0.0
        for dst, p, token in arcs.get(state, ()):
            if tuple(words[pos:pos + len(token)]) == token:
                total += p * prob(dst, pos + len(token))
        return total

    return prob(0, 0)


def test_every_number_of_a_range_is_equally_likely(demo: CompiledGrammar) -> None:
    """"forty" (a prefix of "forty one" ... "forty nine") weighs as much as "fourteen"."""
    def p(number: str) -> float:
        return _sentence_probability(
            demo.fsg, normalize_text(f"set the bedroom light to {number} percent").split())

    forty, fourteen, forty_five = p("forty"), p("fourteen"), p("forty five")
    assert forty > 0.0
    assert forty == pytest.approx(fourteen, rel=1e-3)
    assert forty == pytest.approx(forty_five, rel=1e-3)


def test_names_that_prefix_others_are_not_penalised() -> None:
    grammar = _home([
        {"id": "light.porch", "name": "Porch light", "area": "kitchen"},
        *({"id": f"light.porch_{i}", "name": f"Porch light {n}", "area": "kitchen"}
          for i, n in enumerate(["one", "two", "three", "four"])),
        {"id": "light.desk", "name": "Desk lamp", "area": "bedroom"},
    ])

    def p(name: str) -> float:
        return _sentence_probability(grammar.fsg, f"turn on the {name}".split())

    assert p("porch light") == pytest.approx(p("desk lamp"), rel=1e-3)
    assert p("porch light two") == pytest.approx(p("desk lamp"), rel=1e-3)


def test_non_rhotic_pronunciations() -> None:
    from bridge.recognition.pronounce import non_rhotic

    assert non_rhotic("D AO R") == "D AO"  # door
    assert non_rhotic("T ER N") == "T AH N"  # turn
    assert non_rhotic("T AY M ER") == "T AY M AH"  # timer
    assert non_rhotic("DH EH R") == "DH EH AH"  # there
    assert non_rhotic("R EH D") == "R EH D"  # red: an r before a vowel stays
    assert non_rhotic("AO R AH N JH") == "AO R AH N JH"  # orange


def test_pronouncer_adds_non_rhotic_variants_but_not_for_numbers_or_bare_vowels() -> None:
    pronouncer = Pronouncer(cmudict())
    porch = pronouncer.pronounce("porch")
    assert porch is not None and "P AO CH" in porch and "P AO R CH" in porch
    for number in ("forty", "four", "fourteen", "thirty"):
        prons = pronouncer.pronounce(number)
        assert prons is not None and all("R" in p.split() or "ER" in p.split() for p in prons), number
    are = pronouncer.pronounce("are")
    assert are is not None and "AA" not in are  # one bare vowel would match anything
