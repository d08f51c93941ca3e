"""Privacy inside Home Assistant: what people said never reaches the recorder's database."""

from __future__ import annotations

import pytest
from homeassistant.components.recorder import Recorder
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .fake_bridge import HassBridge


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: object) -> None:
    """Home Assistant's real recorder (SQLite), set up before Home Assistant itself."""


async def test_transcripts_stay_out_of_the_recorder(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    bridge: HassBridge,
    transcripts_enabled: None,
    loaded: MockConfigEntry,
) -> None:
    """Home Assistant's recorder stores the transcript sensor's states without the words."""
    from homeassistant.components.recorder.history import get_significant_states
    from pytest_homeassistant_custom_component.components.recorder.common import (
        async_wait_recording_done,
    )

    start = dt_util.utcnow()
    await bridge.transcript("kitchen", "turn on the kitchen light")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert (
        hass.states.get("sensor.kitchen_last_transcript").attributes["text"]
        == "turn on the kitchen light"
    )
    await async_wait_recording_done(hass)
    history = await recorder_mock.async_add_executor_job(
        get_significant_states, hass, start, None, ["sensor.kitchen_last_transcript"]
    )
    recorded = history["sensor.kitchen_last_transcript"]
    assert recorded  # it is recorded, with the time it was heard
    assert all("text" not in state.attributes for state in recorded)
    assert "kitchen light" not in str([state.as_dict() for state in recorded])


async def test_questions_and_answers_stay_out_of_the_recorder(
    hass: HomeAssistant,
    recorder_mock: Recorder,
    bridge: HassBridge,
    loaded: MockConfigEntry,
) -> None:
    """A question's event is recorded with its kind and outcome, never the question's words."""
    from homeassistant.components.recorder.history import get_significant_states
    from pytest_homeassistant_custom_component.components.recorder.common import (
        async_wait_recording_done,
    )

    start = dt_util.utcnow()
    await bridge.send("satellite/kitchen/question", {
        "session_id": "q1", "satellite": "kitchen", "kind": "did_you_mean", "reason": "close_call",
        "choices": 1, "intents": ["HassTurnOff"], "entity_ids": ["lock.front_door"], "timeout": 5.0,
        "private": False, "text": "Unlock the front door?"})
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("event.kitchen_voice").attributes["kind"] == "did_you_mean"
    await bridge.send("satellite/kitchen/answer", {
        "session_id": "q1", "satellite": "kitchen", "outcome": "no", "acted": False, "choice": None,
        "intent": None})
    await hass.async_block_till_done(wait_background_tasks=True)
    await async_wait_recording_done(hass)
    history = await recorder_mock.async_add_executor_job(
        lambda: get_significant_states(
            hass, start, None, ["event.kitchen_voice"], significant_changes_only=False
        )
    )
    recorded = [state.as_dict() for state in history["event.kitchen_voice"]]
    assert {state["attributes"].get("event_type") for state in recorded} >= {"question", "answer"}
    assert "front door" not in str(recorded).lower()
