"""Text → intent → the entity ids the home means (judged by entity ids, not slot spelling)."""

from __future__ import annotations

import pytest

from bridge.recognition import IntentRecognizer, parse_vocabulary
from bridge.resources import load_demo_vocabulary


@pytest.fixture(scope="module")
def recognizer() -> IntentRecognizer:
    return IntentRecognizer(load_demo_vocabulary())


KITCHEN_LIGHTS = ("light.kitchen", "light.kitchen_counter")


@pytest.mark.parametrize(("text", "intent", "entity_ids"), [
    ("turn on the kitchen light", "HassTurnOn", ("light.kitchen",)),
    ("Turn ON the Kitchen Light!", "HassTurnOn", ("light.kitchen",)),
    ("turn off the ceiling light", "HassTurnOff", ("light.kitchen",)),  # alias
    ("turn off the reading lamp", "HassTurnOff", ("light.living_room_lamp",)),
    ("turn on the lights in the kitchen", "HassTurnOn", KITCHEN_LIGHTS),
    ("turn off the downstairs lights", "HassTurnOff",
     ("light.kitchen", "light.kitchen_counter", "light.living_room_lamp", "light.hallway")),
    ("open the garage door", "HassTurnOn", ("cover.garage_door",)),
    ("close the living room blinds", "HassTurnOff", ("cover.living_room_blinds",)),
    ("set the bedroom light to fifty percent", "HassLightSet", ("light.bedroom",)),
    ("set the kitchen light to red", "HassLightSet", ("light.kitchen",)),
    ("what is the temperature in the hallway", "HassClimateGetTemperature",
     ("climate.thermostat",)),
    ("pause the tv", "HassMediaPause", ("media_player.tv",)),
    ("unpause the television", "HassMediaUnpause", ("media_player.tv",)),
    ("turn on the coffee maker", "HassTurnOn", ("switch.coffee_maker",)),
    ("is the front door locked", "HassGetState", ("lock.front_door",)),
    ("set the living room blinds position to 30 percent", "HassSetPosition",
     ("cover.living_room_blinds",)),
    ("what time is it", "HassGetCurrentTime", ()),
    ("set a timer for five minutes", "HassStartTimer", ()),
    ("cancel the timer", "HassCancelTimer", ()),
    ("never mind", "HassNevermind", ()),
    ("what is the weather like", "HearthSentence", ()),
])
def test_intents_resolve_to_entities(recognizer: IntentRecognizer, text: str, intent: str,
                                     entity_ids: tuple[str, ...]) -> None:
    match = recognizer.recognize(text)
    assert match is not None, text
    assert match.name == intent
    assert set(match.entity_ids) == set(entity_ids)


def test_slot_values(recognizer: IntentRecognizer) -> None:
    match = recognizer.recognize("set the bedroom light to fifty percent")
    assert match is not None and match.slots["brightness"].value == 50
    match = recognizer.recognize("set the temperature to twenty one point five degrees")
    assert match is not None and match.name == "HassClimateSetTemperature"
    assert match.slots["temperature"].value == 21.5
    match = recognizer.recognize("set a timer for five minutes")
    assert match is not None and match.slots["minutes"].value == 5
    match = recognizer.recognize("what is the weather like")
    assert match is not None and match.slots["sentence"].value == "what is the weather like"


def test_satellite_area_context(recognizer: IntentRecognizer) -> None:
    assert recognizer.recognize("turn on the lights") is None  # whose lights?
    match = recognizer.recognize("turn on the lights", area_id="bedroom")
    assert match is not None and match.entity_ids == ("light.bedroom",)
    match = recognizer.recognize("next track", area_id="living_room")
    assert match is not None and match.name == "HassMediaNext"
    assert match.entity_ids == ("media_player.tv",)


def test_not_a_command(recognizer: IntentRecognizer) -> None:
    assert recognizer.recognize("i think we should order pizza tonight") is None
    assert recognizer.recognize("") is None
    assert recognizer.recognize("turn on the dishwasher") is None


def test_spoken_forms_of_names_and_duplicates() -> None:
    vocab = parse_vocabulary({
        "language": "en",
        "areas": [{"id": "b1", "name": "Bedroom 2"}, {"id": "b2", "name": "Guest room"}],
        "entities": [
            {"id": "light.b2", "name": "Bedroom 2 light", "domain": "light", "area": "b1"},
            {"id": "light.guest_lamp", "name": "Lamp", "domain": "light", "area": "b2"},
            {"id": "light.b2_lamp", "name": "Lamp", "domain": "light", "area": "b1"},
        ]})
    recognizer = IntentRecognizer(vocab)
    match = recognizer.recognize("turn on bedroom two light")  # the decoder's spelling
    assert match is not None and match.entity_ids == ("light.b2",)
    match = recognizer.recognize("turn off the lamp in the guest room")
    assert match is not None and match.entity_ids == ("light.guest_lamp",)


def test_sensitive_intents_are_flagged() -> None:
    from bridge.recognition import IntentRecognizer
    from bridge.resources import load_demo_vocabulary

    recognizer = IntentRecognizer(load_demo_vocabulary())
    flags = {text: recognizer.recognize(text).sensitive for text in (
        "unlock the front door", "open the garage door", "lock the front door",
        "close the garage door", "turn on the kitchen light", "open the living room blinds")}
    assert flags == {"unlock the front door": True, "open the garage door": True,
                     "lock the front door": False, "close the garage door": False,
                     "turn on the kitchen light": False, "open the living room blinds": False}


def test_broad_actions_are_flagged(recognizer: IntentRecognizer) -> None:
    """Actions on devices none of which was named: a whole area, floor, the home, the satellite's
    area. Named devices, questions and timers are not broad."""
    def broad(text: str, area: str | None = None) -> bool:
        match = recognizer.recognize(text, area_id=area)
        assert match is not None, text
        return match.broad

    assert broad("turn on the lights", area="bedroom")
    assert broad("light up", area="bedroom")
    assert broad("turn off the lights in the kitchen")
    assert broad("next track", area="living_room")
    assert not broad("turn on the kitchen light")
    assert not broad("turn off the kitchen light", area="bedroom")
    assert not broad("set the bedroom light to red")
    assert not broad("is the front door locked")
    assert not broad("what is the temperature", area="living_room")
    assert not broad("set a timer for five minutes")
    assert not broad("what time is it")


# how sure the recognizer must be depends on what the intent does ---------------------------------
@pytest.mark.parametrize(("text", "confidence", "reason", "acted"), [
    ("never mind", 0.45, "score", True),
    ("what time is it", 0.41, "score", True),
    ("what is the date", 0.45, "score", True),
    ("what time is it", 0.35, "score", False),  # too far from the threshold even for an answer
    ("never mind", 0.45, "short", False),  # too little speech is never a command
    ("never mind", 0.45, "no_path", False),
    ("never mind", 0.45, None, True),  # not rejected at all
    ("turn on the kitchen light", 0.49, "score", False),  # acts on the home: general threshold
    ("cancel the timer", 0.49, "score", False),
    ("unlock the front door", 0.49, "score", False),
    ("", 0.45, "score", False),
])
def test_harmless_intents_need_less_confidence(recognizer, text, confidence, reason, acted) -> None:
    from bridge.recognition.verdict import Hearing, Outcome, decide
    from bridge.stt.worker import intent_result

    match = intent_result(recognizer.recognize(text)) if text else None
    hearing = Hearing(text, confidence, match.to_json() if match else None, reason)
    assert (decide(hearing).outcome is Outcome.ACT) is acted
