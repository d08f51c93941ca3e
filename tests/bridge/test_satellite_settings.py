"""Per-satellite settings from Home Assistant (`settings/set`): validated, saved, applied, answered.

A real bridge built in process (no broker): commands go in through `dispatch`, what it would
publish is read back. Persistence is checked by building a second bridge on the same data folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.pipeline.endpoint import EndpointSettings
from bridge.protocol.hearth import WAKE_WORDS
from bridge.protocol.messages import SENSITIVITIES
from bridge.service import Bridge
from bridge.service.preferences import SETTINGS_FILE, endpoint_for
from tests.support.fuzz import NORMAL, json_values, shaped
from tests.support.inprocess import close_in_process, in_process_bridge, on, send_signed, sent


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    made = in_process_bridge(tmp_path, limits={"max_satellites": 3})
    yield made
    await close_in_process(made)


def status(bridge: Bridge, sat_id: str, **extra: object) -> None:
    bridge.dispatch(f"hearth/satellite/{sat_id}/status", json.dumps({"state": "online", **extra}).encode())


def settings_set(bridge: Bridge, sat_id: str, payload: dict[str, object] | bytes) -> None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    send_signed(bridge, f"hearth/satellite/{sat_id}/settings/set", raw)


async def test_a_wake_word_and_sensitivity_are_applied_saved_and_acknowledged(
    bridge: Bridge, tmp_path: Path
) -> None:
    status(bridge, "kitchen", wake_word="alexa")
    sat = bridge.satellites["kitchen"]
    base = sat.settings.endpoint
    assert sat.wake_word == "alexa"
    sent(bridge)

    settings_set(bridge, "kitchen", {"request_id": "s1", "wake_word": "hey_jarvis", "sensitivity": "relaxed"})
    out = sent(bridge)
    assert on(out, "hearth/satellite/kitchen/settings/result") == [
        {"request_id": "s1", "ok": True, "code": None, "error": None,
         "settings": {"wake_word": "hey_jarvis", "sensitivity": "relaxed", "confirm": "unsure"}}]
    (state,) = on(out, "hearth/satellite/kitchen/state")
    assert state["settings"] == {"wake_word": "hey_jarvis", "sensitivity": "relaxed", "confirm": "unsure"}
    assert [retain for topic, _, retain in out if topic.endswith("/state")] == [True]
    assert sat.wake_word == "hey_jarvis"
    # The next session's endpointer gets longer tails; the other endpoint settings stay.
    assert sat.settings.endpoint.silence_tail == pytest.approx(base.silence_tail * 1.8)
    assert sat.settings.endpoint.vad_tail == pytest.approx(base.vad_tail * 1.8)
    assert sat.settings.endpoint.complete_tail == pytest.approx(base.complete_tail * 1.8)
    assert sat.settings.endpoint.max_utterance == base.max_utterance

    saved = tmp_path / SETTINGS_FILE
    assert json.loads(saved.read_text())["satellites"]["kitchen"] == {
        "wake_word": "hey_jarvis", "sensitivity": "relaxed", "confirm": "unsure"}
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600

    # The satellite announcing its own wake word again does not undo the owner's choice.
    status(bridge, "kitchen", wake_word="alexa")
    assert sat.wake_word == "hey_jarvis"

    # A partial update leaves the rest; null goes back to the satellite's own wake word.
    settings_set(bridge, "kitchen", {"request_id": "s2", "sensitivity": "aggressive"})
    assert sat.wake_word == "hey_jarvis"
    assert sat.settings.endpoint.silence_tail == pytest.approx(base.silence_tail * 0.6)
    settings_set(bridge, "kitchen", {"request_id": "s3", "wake_word": None})
    assert sat.wake_word == "alexa"
    (result,) = on(sent(bridge), "hearth/satellite/kitchen/settings/result")[-1:]
    assert result["settings"] == {"wake_word": None, "sensitivity": "aggressive", "confirm": "unsure"}


async def test_a_configured_wake_word_is_in_the_retained_state(tmp_path: Path) -> None:
    """A satellite's wake word from the configuration (the add-on's satellite option) reaches a
    satellite that hears the wake word itself: its retained state's `settings.wake_word`, which
    the satellite program follows; Home Assistant's choice still wins, and clearing it goes back
    to the configured one."""
    made = in_process_bridge(tmp_path, satellites={"den": {"wake_word": "hey_mycroft"}})
    try:
        status(made, "den", wake_word="okay_nabu")
        (state,) = on(sent(made), "hearth/satellite/den/state")[-1:]
        assert state["settings"] == {"wake_word": "hey_mycroft", "sensitivity": "default", "confirm": "unsure"}
        assert made.satellites["den"].wake_word == "hey_mycroft"
        settings_set(made, "den", {"request_id": "a", "wake_word": "alexa"})
        (state,) = on(sent(made), "hearth/satellite/den/state")[-1:]
        assert state["settings"]["wake_word"] == "alexa"
        settings_set(made, "den", {"request_id": "b", "wake_word": None})
        out = sent(made)
        assert on(out, "hearth/satellite/den/state")[-1]["settings"]["wake_word"] == "hey_mycroft"
        assert on(out, "hearth/satellite/den/settings/result")[-1]["settings"]["wake_word"] == "hey_mycroft"
        assert made.satellites["den"].wake_word == "hey_mycroft"
    finally:
        await close_in_process(made)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"request_id": "r", "wake_word": "hey_siri"}, "unknown_wake_word"),
        ({"request_id": "r", "wake_word": 3}, "unknown_wake_word"),
        ({"request_id": "r", "sensitivity": "extreme"}, "bad_sensitivity"),
        ({"request_id": "r", "sensitivity": None}, "bad_sensitivity"),
        ({"request_id": "r", "volume": 11}, "bad_setting"),
        ({"request_id": "r", "confirm": "always"}, "bad_confirm"),
        ({"request_id": "r", "confirm": None}, "bad_confirm"),
    ],
)
async def test_a_bad_setting_is_refused_with_a_code_and_changes_nothing(
    bridge: Bridge, tmp_path: Path, payload: dict[str, object], code: str
) -> None:
    status(bridge, "kitchen")
    sat = bridge.satellites["kitchen"]
    before = (sat.wake_word, sat.settings.endpoint)
    sent(bridge)
    settings_set(bridge, "kitchen", payload)
    out = sent(bridge)
    (result,) = on(out, "hearth/satellite/kitchen/settings/result")
    assert (result["request_id"], result["ok"], result["code"]) == ("r", False, code)
    assert isinstance(result["error"], str) and result["error"]
    assert result["settings"] == {"wake_word": None, "sensitivity": "default", "confirm": "unsure"}
    assert [e["code"] for e in on(out, "hearth/bridge/error")] == [code]
    assert (sat.wake_word, sat.settings.endpoint) == before
    assert not (tmp_path / SETTINGS_FILE).exists()


async def test_invalid_json_is_refused_on_the_result_topic(bridge: Bridge) -> None:
    settings_set(bridge, "kitchen", b"{nope")
    (result,) = on(sent(bridge), "hearth/satellite/kitchen/settings/result")
    assert (result["ok"], result["code"], result["request_id"]) == (False, "invalid_json", None)


async def test_settings_are_bounded_by_the_satellite_limit(bridge: Bridge) -> None:
    for index in range(3):
        settings_set(bridge, f"s{index}", {"request_id": f"r{index}", "sensitivity": "relaxed"})
    settings_set(bridge, "s3", {"request_id": "r3", "sensitivity": "relaxed"})
    results = [r for t, r, _ in sent(bridge) if t.endswith("/settings/result")]
    assert [(r["ok"], r["code"]) for r in results] == [(True, None)] * 3 + [(False, "too_many_satellites")]


async def test_settings_survive_a_restart(tmp_path: Path) -> None:
    first = in_process_bridge(tmp_path)
    try:
        settings_set(first, "den", {"request_id": "a", "wake_word": "hey_mycroft", "sensitivity": "aggressive",
                                    "confirm": "sensitive"})
    finally:
        await close_in_process(first)

    second = in_process_bridge(tmp_path)
    try:
        # Set before the satellite ever announced itself: in force from its first session.
        status(second, "den", wake_word="alexa")
        sat = second.satellites["den"]
        assert sat.wake_word == "hey_mycroft"
        assert sat.settings.endpoint == endpoint_for(second.settings.endpoint, "aggressive")
        assert sat.settings.endpoint.silence_tail < second.settings.endpoint.silence_tail
        (state,) = on(sent(second), "hearth/satellite/den/state")
        assert state["settings"] == {"wake_word": "hey_mycroft", "sensitivity": "aggressive", "confirm": "sensitive"}
        assert second.preferences.confirm("den") == "sensitive"
    finally:
        await close_in_process(second)


async def test_an_unusable_settings_file_is_ignored_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / SETTINGS_FILE
    path.write_text("{torn")
    path.chmod(0o600)
    made = in_process_bridge(tmp_path)
    try:
        status(made, "den")
        assert made.satellites["den"].settings.endpoint == made.settings.endpoint
    finally:
        await close_in_process(made)


def test_endpoint_for_scales_only_the_tails() -> None:
    base = EndpointSettings()
    assert endpoint_for(base, "default") is base
    relaxed = endpoint_for(base, "relaxed")
    assert (relaxed.silence_tail, relaxed.complete_tail, relaxed.vad_tail) == (0.54, 0.18, 1.26)
    assert (relaxed.max_utterance, relaxed.no_speech_timeout) == (base.max_utterance, base.no_speech_timeout)


CODES = {"invalid_json", "bad_setting", "unknown_wake_word", "bad_sensitivity", "too_many_satellites"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(
    shaped({"request_id": st.text(max_size=8), "wake_word": st.sampled_from([*WAKE_WORDS, None]),
            "sensitivity": st.sampled_from(SENSITIVITIES)}, NORMAL),
    json_values(NORMAL, max_leaves=6),
))
def test_any_settings_command_is_applied_or_refused_with_a_code(tmp_path: Path, payload: object) -> None:
    """Whatever Home Assistant (or anyone allowed to) sends: a coded answer, never an exception,
    and the settings in force always valid."""

    async def run() -> None:
        made = in_process_bridge(tmp_path, limits={"max_satellites": 3})
        try:
            status(made, "kitchen")
            sent(made)
            settings_set(made, "kitchen", json.dumps(payload).encode())
            out = sent(made)
            (result,) = on(out, "hearth/satellite/kitchen/settings/result")
            assert result["ok"] is (result["code"] is None)
            assert result["ok"] or result["code"] in CODES, result
            assert [e["code"] for e in on(out, "hearth/bridge/error")] == (
                [] if result["ok"] else [result["code"]])
            in_force = result["settings"]
            assert in_force["wake_word"] in (*WAKE_WORDS, None) and in_force["sensitivity"] in SENSITIVITIES
            sat = made.satellites["kitchen"]
            assert sat.wake_word in WAKE_WORDS
            assert sat.settings.endpoint == endpoint_for(made.settings.endpoint, in_force["sensitivity"])
        finally:
            await close_in_process(made)

    asyncio.run(run())
