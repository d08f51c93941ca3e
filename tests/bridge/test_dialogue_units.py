"""Asking back, unit by unit: the answer grammar and its meanings, the question's words, the
"which one" split of a name that fits several entities."""

from __future__ import annotations

import pytest

from bridge.engines import IntentResult, SlotValue
from bridge.recognition.verdict import Hearing, Outcome, decide, one_per_entity
from bridge.recognition.vocabulary import Area, Entity, Vocabulary
from bridge.recognition.yesno import PHRASES, Answer, Understood, answer_grammar, meaning
from bridge.service.dialogue import narrow_to_area
from bridge.service.questions import command_text, question_text, which_text
from tests.support.audio import stream
from tests.support.speech import read_pcm

HOME = Vocabulary("en", (Area("kitchen", "Kitchen"), Area("bedroom", "Bedroom"), Area("office", "Office")), (), (
    Entity("light.kitchen", "Kitchen light", "light", area="kitchen"),
    Entity("lock.front_door", "Front door", "lock"),
    Entity("cover.garage_door", "Garage door", "cover", area="kitchen", device_class="garage"),
    Entity("light.bedroom_lamp", "Lamp", "light", area="bedroom"),
    Entity("light.office_lamp", "Lamp", "light", area="office"),
))


def _intent(intent: str, /, **slots: tuple[object, tuple[str, ...]]) -> IntentResult:
    return IntentResult(intent, 1.0, slots=tuple(SlotValue(k, v, str(v).lower(), ids) for k, (v, ids) in slots.items()))


@pytest.mark.parametrize(("text", "choices", "understood"), [
    ("yes", 1, Understood(Answer.YES)), ("yeah", 1, Understood(Answer.YES)), ("go ahead", 1, Understood(Answer.YES)),
    ("no thank you", 1, Understood(Answer.NO)), ("nope", 3, Understood(Answer.NO)),
    ("never mind", 2, Understood(Answer.CANCEL)),
    ("the second one", 2, Understood(Answer.CHOICE, 1)), ("the last one", 3, Understood(Answer.CHOICE, 2)),
    ("first", 3, Understood(Answer.CHOICE, 0)),
    ("yes", 2, None),  # which of two? not an answer
    ("the second one", 1, None), ("second", 1, None),
    ("turn on light", 1, None), ("", 1, None),
])
def test_what_an_answer_means(text: str, choices: int, understood: Understood | None) -> None:
    assert meaning(text, choices) == understood


def test_the_answer_grammar_pronounces_every_word_and_has_no_third() -> None:
    grammar = answer_grammar()
    words = {w for line in grammar.fsg.splitlines() if line.startswith("TRANSITION") for w in line.split()[4:]}
    assert words <= set(grammar.dictionary) and "yes" in words and "turn" in words  # the decoys
    assert "third" not in words  # heard for "first": a wrong choice is worse than none
    assert all(meaning(p, 3) is not None or meaning(p, 1) is not None for p in PHRASES)


def test_answers_are_decoded_and_a_command_instead_of_an_answer_is_none(say) -> None:
    from bridge.resources import new_decoder

    decoder = new_decoder(answer_grammar())
    heard = {t: stream(decoder, read_pcm(say(t))) for t in ("yes", "no", "the first one", "turn on the kitchen light",
                                                              "i think we should order pizza tonight")}
    assert meaning(heard["yes"].text, 1) == Understood(Answer.YES)
    assert meaning(heard["no"].text, 1) == Understood(Answer.NO)
    assert meaning(heard["the first one"].text, 2) == Understood(Answer.CHOICE, 0)
    for remark in ("turn on the kitchen light", "i think we should order pizza tonight"):
        result = heard[remark]
        assert result.rejected or all(meaning(result.text, n) is None for n in (1, 2, 3)), result.text


def test_command_sentences_and_questions() -> None:
    light = _intent("HassTurnOn", name=("Kitchen light", ("light.kitchen",))).to_json()
    unlock = _intent("HassTurnOff", name=("Front door", ("lock.front_door",))).to_json()
    garage = _intent("HassTurnOn", name=("Garage door", ("cover.garage_door",))).to_json()
    dim = _intent("HassLightSet", name=("Kitchen light", ("light.kitchen",)), brightness=(50, ())).to_json()
    area = _intent("HassTurnOff", area=("kitchen", ("light.kitchen",)), domain=("light", ())).to_json()
    assert command_text(light, HOME) == "turn on the kitchen light"
    assert command_text(unlock, HOME) == "unlock the front door"
    assert command_text(garage, HOME) == "open the garage door"
    assert command_text(dim, HOME) == "set the kitchen light to 50 percent"
    assert command_text(area, HOME) == "turn off the lights in the kitchen"
    assert command_text(_intent("HassStartTimer", minutes=(5, ())).to_json(), HOME) is None
    assert question_text(["unlock the front door"]) == "Unlock the front door?"
    assert question_text(["turn on the kitchen light", "turn on the kitchen lamp"]) == \
        "Turn on the kitchen light or the kitchen lamp?"
    assert which_text("turn on the lamp", ["bedroom", "office"]) == \
        "Turn on the lamp: the one in the bedroom or the one in the office?"


def test_a_name_of_several_entities_is_asked_about_one_by_one_unless_the_satellites_area_decides() -> None:
    lamps = _intent("HassTurnOn", name=("Lamp", ("light.bedroom_lamp", "light.office_lamp")))
    verdict = decide(Hearing("turn on the lamp", 0.9, lamps.to_json()))
    assert verdict.outcome is Outcome.ASK and verdict.question == "which" and verdict.reason == "ambiguous_name"
    assert [c["slots"]["name"]["entity_ids"] for c in verdict.choices] == [["light.bedroom_lamp"],  # type: ignore[index]
                                                                           ["light.office_lamp"]]
    assert command_text(verdict.choices[1], HOME, with_area=True) == "turn on the lamp in the office"
    # said in the bedroom: the bedroom's lamp, no question
    here = narrow_to_area(lamps, "bedroom", HOME)
    assert here.slots[0].entity_ids == ("light.bedroom_lamp",)
    assert decide(Hearing("turn on the lamp", 0.9, here.to_json())).outcome is Outcome.ACT
    assert narrow_to_area(lamps, "kitchen", HOME) == lamps  # no lamp there: still both
    # one entity, or an area's "all": no question
    assert one_per_entity(_intent("HassTurnOn", name=("Kitchen light", ("light.kitchen",))).to_json()) == ()
    assert one_per_entity(_intent("HassTurnOn", name=("all", ("light.a", "light.b"))).to_json()) == ()
    many = _intent("HassTurnOn", name=("Lamp", ("light.a", "light.b", "light.c", "light.d")))
    assert decide(Hearing("turn on the lamp", 0.9, many.to_json())).outcome is Outcome.REFUSE


class _Host:
    satellites: dict[str, object] = {}
    muted = False

    def is_muted(self, _sat_id: str) -> bool:
        return self.muted


class _Speaker:
    tts = object()


class _Sat:
    id = "den"


@pytest.mark.parametrize(("kind", "confirm", "outcome"), [
    ("did_you_mean", "unsure", Outcome.ASK), ("did_you_mean", "sensitive", Outcome.REFUSE),
    ("did_you_mean", "never", Outcome.REFUSE), ("confirm", "unsure", Outcome.ASK),
    ("confirm", "sensitive", Outcome.ASK), ("confirm", "never", Outcome.ACT),
])
def test_the_confirm_setting_decides_what_is_asked(kind: str, confirm: str, outcome: Outcome) -> None:
    from bridge.engines import Transcript
    from bridge.recognition.verdict import Verdict
    from bridge.service.dialogue import Dialogue

    dialogue = Dialogue(_Host(), _Speaker(), lambda: HOME)  # type: ignore[arg-type]
    unlock = _intent("HassTurnOff", name=("Front door", ("lock.front_door",))).to_json()
    verdict = Verdict(Outcome.ASK, "sensitive_unsure", "unsure", choices=(unlock,), question=kind)  # type: ignore[arg-type]
    heard = Transcript(text="unlock the front door", confidence=0.5)
    decided, question = dialogue.consider(_Sat(), verdict, heard, None, False, confirm)  # type: ignore[arg-type]
    assert decided is outcome
    assert (question is not None) == (outcome is Outcome.ASK)
    if question is not None:
        assert question.text == "Unlock the front door?" and question.kind == kind
    act = Verdict(Outcome.ACT, "sure", "heard clearly")
    assert dialogue.consider(_Sat(), act, heard, None, False, confirm) == (Outcome.ACT, None)  # type: ignore[arg-type]
    muted = _Host()
    muted.muted = True
    asked = Dialogue(muted, _Speaker(), lambda: HOME).consider(  # type: ignore[arg-type]
        _Sat(), verdict, heard, None, False, "unsure")  # type: ignore[arg-type]
    assert asked == (Outcome.REFUSE, None)  # a muted satellite is asked nothing: refused


def test_an_answer_that_comes_after_its_question_ended_is_never_a_command() -> None:
    """The time-out (or a mute) may end a question while its answer is still being decoded: the
    late answer ("yes") must not be published as a command for Home Assistant to act on."""
    from types import SimpleNamespace

    from bridge.engines import Transcript
    from bridge.service.dialogue import Dialogue, Question

    sent: list[tuple[str, object]] = []
    host = _Host()
    host.outbox = SimpleNamespace(topics=SimpleNamespace(satellite=lambda s, leaf: f"{s}/{leaf}"),  # type: ignore[attr-defined]
                                  send=lambda topic, payload: sent.append((topic, payload)), stats_dirty=False)
    speaker = _Speaker()
    dialogue = Dialogue(host, speaker, lambda: HOME)  # type: ignore[arg-type]
    sat = SimpleNamespace(id="den", protocol="hearth", session=None)
    question = Question("den", None, "confirm", "asked", (), "Open the garage door?", Transcript(text="", confidence=0),
                        False, count=1)
    dialogue.questions["den"] = question
    question.stage = "listening"
    dialogue._answers[question.answer_session] = None  # as _run does when it starts listening
    host.muted = True  # so ending says nothing (no voice in this test)
    dialogue.end(sat, question, "timeout")  # type: ignore[arg-type]
    late = SimpleNamespace(id=question.answer_session)
    assert dialogue.deliver(sat, late, Transcript(text="yes", confidence=0.9)) is True  # type: ignore[arg-type]
    assert dialogue.is_answer(question.answer_session)
    other = SimpleNamespace(id="a-command")
    assert dialogue.deliver(sat, other, Transcript(text="yes", confidence=0.9)) is False  # type: ignore[arg-type]
    assert [t for t, _ in sent] == ["den/answer"] and sent[0][1]["outcome"] == "timeout"  # type: ignore[index]
