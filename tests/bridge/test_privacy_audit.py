"""The content-free audit log."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bridge.engines import Locality
from bridge.privacy.audit import COUNTER_NAMES, AuditEntry, AuditLog, EngineUse

NOW = 1_764_100_000.0


def entry(**overrides: object) -> AuditEntry:
    fields: dict[str, object] = {
        "time": NOW,
        "satellite": "kitchen",
        "session_id": "s-1",
        "engines": (
            EngineUse("wake", "micro-wake-word", Locality.IN_PROCESS),
            EngineUse("stt", "wyoming-whisper", Locality.LAN),
            EngineUse("intent", "hassil", Locality.IN_PROCESS),
        ),
        "bytes_off_process": 64000,
        "address_class": "lan",
        "blocked": (),
    }
    fields.update(overrides)
    return AuditEntry(**fields)  # type: ignore[arg-type]


def test_entry_has_no_field_for_text_or_audio() -> None:
    names = {f.name for f in dataclasses.fields(AuditEntry)}
    assert names == {
        "time",
        "satellite",
        "session_id",
        "engines",
        "bytes_off_process",
        "address_class",
        "blocked",
    }
    assert {f.name for f in dataclasses.fields(EngineUse)} == {"kind", "name", "locality"}


def test_entry_json() -> None:
    data = entry(blocked=("tts:cloud-tts:local_only",)).to_json()
    assert data == {
        "time": NOW,
        "satellite": "kitchen",
        "session_id": "s-1",
        "engines": [
            {"kind": "wake", "name": "micro-wake-word", "locality": "in_process"},
            {"kind": "stt", "name": "wyoming-whisper", "locality": "lan"},
            {"kind": "intent", "name": "hassil", "locality": "in_process"},
        ],
        "bytes_off_process": 64000,
        "address_class": "lan",
        "blocked": ["tts:cloud-tts:local_only"],
    }
    json.dumps(data)


@pytest.mark.parametrize(
    "overrides",
    [
        {"blocked": ("turn on the kitchen light",)},  # a sentence cannot hide in a reason
        {"blocked": ("",)},
        {"satellite": "what did you say"},
        {"session_id": "x" * 65},
        {"engines": (("stt", "x", "lan"),)},
        {"bytes_off_process": -1},
        {"bytes_off_process": 1.5},
        {"address_class": "mars"},
        {"address_class": "none"},  # bytes left the process, so it cannot be "none"
        {"time": "now"},
    ],
)
def test_entry_rejects_content_and_bad_values(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        entry(**overrides)


@pytest.mark.parametrize(
    ("kind", "name", "locality"),
    [("asr", "x", "lan"), ("stt", "", "lan"), ("stt", "a b", "lan"), ("stt", "x", "moon")],
)
def test_engine_use_validation(kind: str, name: str, locality: str) -> None:
    with pytest.raises(ValueError):
        EngineUse(kind, name, locality)  # type: ignore[arg-type]


def test_counters_by_destination() -> None:
    log = AuditLog()
    log.record(entry(bytes_off_process=100, address_class="lan"))
    log.record(entry(bytes_off_process=10, address_class="loopback"))
    log.record(entry(bytes_off_process=7, address_class="public"))
    log.record(entry(bytes_off_process=0, address_class="none"))
    log.count_blocked("cloud-stt", "local_only")
    log.count_blocked("cloud-stt", "local_only")
    log.note_muted_frame()
    log.note_muted_frame(4)
    log.note_error()
    log.note_refused_command()
    assert log.counters == {
        "utterances": 4,
        "blocked_cloud_requests": 2,
        "bytes_off_lan": 7,
        "bytes_to_lan": 110,
        "dropped_muted_frames": 5,
        "errors": 1,
        "refused_commands": 1,
    }
    assert log.blocked_by() == {("cloud-stt", "local_only"): 2}
    assert tuple(log.counters) == COUNTER_NAMES


def test_recent_is_bounded_oldest_first() -> None:
    log = AuditLog(max_recent=3)
    for n in range(5):
        log.record(entry(session_id=f"s-{n}"))
    assert [e.session_id for e in log.recent] == ["s-2", "s-3", "s-4"]
    assert log.counters["utterances"] == 5


def test_to_json_matches_the_audit_topic() -> None:
    log = AuditLog()
    log.record(entry())
    data = log.to_json()
    assert set(data) == {"counters", "recent"}
    assert data["counters"] == log.counters
    assert data["recent"] == [entry().to_json()]
    json.dumps(data)


def test_purge_drops_recent_but_keeps_counters() -> None:
    log = AuditLog()
    log.record(entry())
    log.record(entry())
    assert log.purge() == 2
    assert log.recent == ()
    assert log.counters["utterances"] == 2
    assert log.to_json()["recent"] == []


def test_restore_counters() -> None:
    log = AuditLog()
    log.restore_counters(
        {"utterances": 9, "errors": -1, "bytes_off_lan": True, "unknown": 3, "bytes_to_lan": 4.5}
    )
    assert log.counters["utterances"] == 9
    assert log.counters["errors"] == 0
    assert log.counters["bytes_off_lan"] == 0
    assert log.counters["bytes_to_lan"] == 0
    assert "unknown" not in log.counters
    saved = log.counters_to_json()
    again = AuditLog()
    again.restore_counters(json.loads(json.dumps(saved)))
    assert again.counters == log.counters
