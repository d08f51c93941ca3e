"""The verdict (bridge/recognition/verdict.py): one function decides act / ask / refuse, each rule
with its reason. Pure and fast: no decoder, no audio (the open ear on real speech is in
test_recognition_openear.py)."""

from __future__ import annotations

import dataclasses

import pytest

from bridge.recognition.verdict import Hearing, Outcome, VerdictSettings, decide, opposite, scope

LIGHT = {"name": "HassTurnOn", "confidence": 1.0, "sensitive": False, "broad": False,
         "slots": {"name": {"value": "Kitchen light", "text": "kitchen light",
                            "entity_ids": ["light.kitchen"]}}}
OFF = {**LIGHT, "name": "HassTurnOff"}
UNLOCK = {"name": "HassTurnOff", "confidence": 1.0, "sensitive": True, "broad": False,
          "slots": {"name": {"value": "Front door", "text": "front door", "entity_ids": ["lock.front"]}}}
AREA = {"name": "HassTurnOff", "confidence": 1.0, "sensitive": False, "broad": True,
        "slots": {"area": {"value": "kitchen", "text": "kitchen", "entity_ids": ["light.kitchen"]}}}
HOME = {"name": "HassTurnOff", "confidence": 1.0, "sensitive": False, "broad": True,
        "slots": {"name": {"value": "all", "text": "", "entity_ids": []}}}
FLOOR = {**HOME, "slots": {"floor": {"value": "up", "text": "upstairs", "entity_ids": ["light.a"]}}}
TIMER = {"name": "HassStartTimer", "confidence": 1.0, "sensitive": False, "broad": False,
         "slots": {"minutes": {"value": 5, "text": "five", "entity_ids": []}}}
TIME = {"name": "HassGetCurrentTime", "confidence": 1.0, "sensitive": False, "broad": False, "slots": {}}
STATE = {"name": "HassGetState", "confidence": 1.0, "sensitive": False, "broad": False, "slots": {}}


def heard(intent: dict[str, object] | None, confidence: float = 0.8, **kw: object) -> Hearing:
    return Hearing("some words", confidence, intent, **kw)  # type: ignore[arg-type]


def test_a_clear_command_is_acted_on() -> None:
    verdict = decide(heard(LIGHT))
    assert (verdict.outcome, verdict.reason, verdict.choices, verdict.question) == (Outcome.ACT, "sure", (), None)


def test_nothing_understood_is_refused_with_the_decoders_reason() -> None:
    assert decide(heard(None)).reason == "no_intent"
    verdict = decide(heard(None, 0.0, rejected_reason="garbage"))
    assert (verdict.outcome, verdict.reason) == (Outcome.REFUSE, "garbage")


def test_a_rejected_hearing_is_refused_unless_harmless_and_heard_well_enough() -> None:
    assert decide(heard(LIGHT, 0.45, rejected_reason="score")).outcome is Outcome.REFUSE
    harmless = decide(heard(TIME, 0.45, rejected_reason="score"))
    assert (harmless.outcome, harmless.reason) == (Outcome.ACT, "harmless")
    assert decide(heard(TIME, 0.35, rejected_reason="score")).outcome is Outcome.REFUSE
    assert decide(heard(TIME, 0.45, rejected_reason="short")).outcome is Outcome.REFUSE


def test_chatter_the_open_ear_did_not_hear_as_a_command_is_refused() -> None:
    verdict = decide(heard(LIGHT, 0.9, open_text="i think we should order pizza", open_agreement=0.2))
    assert (verdict.outcome, verdict.reason) == (Outcome.REFUSE, "open_ear_disagrees")
    assert decide(heard(LIGHT, 0.9, open_agreement=0.9)).outcome is Outcome.ACT
    # the open ear's sentence fits the audio better than the grammar's: chatter; nearly as well: ask
    fits = decide(heard(LIGHT, 0.9, open_agreement=0.9, open_fit_gap=0.011))
    assert (fits.outcome, fits.reason) == (Outcome.REFUSE, "open_ear_disagrees")
    nearly = decide(heard(LIGHT, 0.9, open_agreement=0.9, open_fit_gap=0.009))
    assert (nearly.outcome, nearly.reason, nearly.question) == (Outcome.ASK, "open_ear_unsure", "did_you_mean")
    assert decide(heard(LIGHT, 0.9, open_agreement=0.9, open_fit_gap=-0.005)).outcome is Outcome.ACT
    # harmless intents change nothing: the open ear is not asked
    assert decide(heard(TIME, 0.9, open_agreement=0.0)).outcome is Outcome.ACT


@pytest.mark.parametrize(("code", "outcome"), [("close_call", Outcome.ASK), ("number_unsure", Outcome.ASK),
                                               ("unlikely_value", Outcome.REFUSE),
                                               ("question_unsure", Outcome.REFUSE)])
def test_the_close_call_reviews_doubts(code: str, outcome: Outcome) -> None:
    rival = {**LIGHT, "slots": {"name": {"value": "Kitchen lamp", "text": "kitchen lamp", "entity_ids": ["light.lamp"]}}}
    verdict = decide(heard(TIMER, 0.9, unsure=code, alternatives=(rival,)))
    assert (verdict.outcome, verdict.reason) == (outcome, code)
    if outcome is Outcome.ASK:
        # a rival that is another action on other targets is a reason to ask, not a choice to offer
        assert verdict.question == "did_you_mean" and verdict.choices == (TIMER,)
    # the intent's own "unsure" key (other engines' intents) counts as well
    assert decide(heard({**TIMER, "unsure": code})).reason == code


def test_opposite_actions_are_reviewed_against_each_other() -> None:
    assert opposite(LIGHT) == OFF and opposite(TIMER) is None
    verdict = decide(heard(LIGHT, 0.9, open_opposite=True))
    assert (verdict.outcome, verdict.reason) == (Outcome.ASK, "opposite_heard")
    assert verdict.choices == (LIGHT, OFF)
    unsure = decide(heard(OFF, 0.52))
    assert (unsure.outcome, unsure.reason, unsure.choices) == (Outcome.ASK, "opposite_unsure", (OFF, LIGHT))
    assert decide(heard(OFF, 0.6)).outcome is Outcome.ACT
    assert decide(heard(TIMER, 0.52)).outcome is Outcome.ACT  # no opposite


def test_broad_actions() -> None:
    assert (scope(LIGHT), scope(AREA), scope(HOME), scope(FLOOR)) == (None, "area", "home", "floor")
    assert decide(heard(AREA, 0.7)).outcome is Outcome.ACT
    unsure = decide(heard(AREA, 0.53))
    assert (unsure.outcome, unsure.reason) == (Outcome.ASK, "broad_unsure")
    unheard = decide(heard(AREA, 0.9, open_broad_missing=True))
    assert (unheard.outcome, unheard.reason) == (Outcome.ASK, "broad_unheard")
    for intent, reason in ((HOME, "home_wide"), (FLOOR, "floor_wide")):
        wide = decide(heard(intent, 0.7))
        assert (wide.outcome, wide.reason, wide.question) == (Outcome.ASK, reason, "confirm")
        assert decide(heard(intent, 0.85)).outcome is Outcome.ACT  # heard with high confidence


def test_sensitive_actions_are_confirmed_whatever_the_confidence() -> None:
    sure = decide(heard(UNLOCK, 0.99))
    assert (sure.outcome, sure.reason, sure.question, sure.choices) == (Outcome.ASK, "sensitive", "confirm", (UNLOCK,))
    unsure = decide(heard(UNLOCK, 0.55))
    assert (unsure.outcome, unsure.reason, unsure.question) == (Outcome.ASK, "sensitive_unsure", "did_you_mean")
    owner_off = VerdictSettings(confirm_sensitive=False)
    assert decide(heard(UNLOCK, 0.99), owner_off).outcome is Outcome.ACT


def test_the_settings_are_one_frozen_object_and_config_maps_onto_it() -> None:
    from bridge.settings import RecognitionSettings

    settings = RecognitionSettings(sensitive_confidence=0.9, broad_confidence=0.8).verdict()
    assert (settings.sensitive_min, settings.broad_min) == (0.9, 0.8)
    assert decide(heard(AREA, 0.75), settings).reason == "broad_unsure"
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.broad_min = 0.1  # type: ignore[misc]


def test_choices_are_at_most_three_and_never_repeat() -> None:
    """Offered: readings that differ in one slot (another lamp) or in the action alone (off for
    on); never a repeat of the same meaning, never an unrelated intent; at most three."""
    lamp = {**LIGHT, "slots": {"name": {"value": "Kitchen lamp", "text": "kitchen lamp", "entity_ids": ["light.lamp"]}}}
    desk = {**LIGHT, "slots": {"name": {"value": "Desk lamp", "text": "desk lamp", "entity_ids": ["light.desk"]}}}
    verdict = decide(heard(LIGHT, 0.52, alternatives=(OFF, LIGHT, STATE, TIMER, lamp, desk)))
    assert verdict.choices == (LIGHT, OFF, lamp)
