"""The pure privacy policy: defaults, commands, validation, expiry, JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.engines import Locality
from bridge.privacy.policy import MicrophoneMute, Policy, PolicyError, Retention, loosened

NOW = 1_764_100_000.0


def test_defaults_are_the_safe_ones() -> None:
    policy = Policy()
    assert policy.local_only is True
    assert policy.privacy_mode is False
    assert policy.retention is Retention.NONE
    assert policy.publish_transcripts is True
    assert dict(policy.microphones) == {}
    assert policy.revision == 0
    assert not policy.allows(Locality.CLOUD)
    assert policy.allows(Locality.LAN)
    assert policy.allows(Locality.IN_PROCESS)


def test_policy_is_immutable_and_hashable() -> None:
    mics = {"kitchen": MicrophoneMute(True)}
    policy = Policy(microphones=mics)
    mics["bedroom"] = MicrophoneMute(True)  # the caller's dict must not leak in
    assert list(policy.microphones) == ["kitchen"]
    with pytest.raises(TypeError):
        policy.microphones["x"] = MicrophoneMute(True)  # type: ignore[index]
    with pytest.raises(AttributeError):
        policy.local_only = False  # type: ignore[misc]
    assert hash(policy) == hash(Policy(microphones={"kitchen": MicrophoneMute(True)}))


def test_apply_the_protocol_example() -> None:
    command = {
        "request_id": "b1",
        "local_only": True,
        "privacy_mode": False,
        "retention": "none",
        "publish_transcripts": True,
        "microphones": {"kitchen": {"muted": True, "duration": 600}},
    }
    policy = Policy().apply(command, NOW)
    assert policy.to_json() == {
        "epoch": "",
        "local_only": True,
        "privacy_mode": False,
        "retention": "none",
        "publish_transcripts": True,
        "microphones": {"kitchen": {"muted": True, "until": NOW + 600}},
        "revision": 1,
    }


def test_apply_is_a_partial_update() -> None:
    base = Policy(privacy_mode=True, publish_transcripts=False, revision=4)
    policy = base.apply({"local_only": False, "retention": "memory"}, NOW)
    assert policy.local_only is False
    assert policy.retention is Retention.MEMORY
    assert policy.privacy_mode is True
    assert policy.publish_transcripts is False
    assert policy.revision == 5
    assert policy.allows(Locality.CLOUD)


def test_every_accepted_command_bumps_the_revision() -> None:
    policy = Policy().apply({"request_id": "only"}, NOW)
    assert policy.revision == 1
    assert policy.apply({}, NOW).revision == 2


def test_mute_without_duration_lasts_until_unmuted() -> None:
    policy = Policy().apply({"microphones": {"kitchen": {"muted": True}}}, NOW)
    assert policy.microphones["kitchen"] == MicrophoneMute(True, None)
    assert policy.is_muted("kitchen", NOW + 10**9)
    assert not policy.is_muted("bedroom", NOW)
    assert policy.next_expiry() is None
    unmuted = policy.apply({"microphones": {"kitchen": {"muted": False}}}, NOW + 1)
    assert not unmuted.is_muted("kitchen", NOW + 1)
    assert dict(unmuted.microphones) == {}


def test_timed_mute_ends_by_itself() -> None:
    policy = Policy().apply(
        {
            "microphones": {
                "kitchen": {"muted": True, "duration": 60},
                "hall": {"muted": True, "duration": 0.5},
            }
        },
        NOW,
    )
    assert policy.next_expiry() == NOW + 0.5
    assert policy.is_muted("kitchen", NOW + 59.9)
    assert not policy.is_muted("kitchen", NOW + 60)
    assert policy.is_muted("hall", NOW)
    assert not policy.is_muted("hall", NOW + 0.5)


def test_privacy_mode_mutes_every_microphone() -> None:
    policy = Policy().apply({"privacy_mode": True}, NOW)
    assert policy.is_muted("kitchen", NOW)
    assert policy.is_muted("never-seen", NOW)
    assert not policy.apply({"privacy_mode": False}, NOW).is_muted("kitchen", NOW)


def test_expire_drops_only_expired_mutes_and_bumps_revision_only_on_change() -> None:
    policy = Policy().apply(
        {"microphones": {"a": {"muted": True, "duration": 10}, "b": {"muted": True}}}, NOW
    )
    assert policy.expire(NOW + 5) is policy
    expired = policy.expire(NOW + 10)
    assert list(expired.microphones) == ["b"]
    assert expired.revision == policy.revision + 1
    assert expired.next_expiry() is None
    assert expired.expire(NOW + 100) is expired


def test_apply_drops_expired_mutes() -> None:
    policy = Policy().apply({"microphones": {"a": {"muted": True, "duration": 10}}}, NOW)
    later = policy.apply({"retention": "memory"}, NOW + 11)
    assert dict(later.microphones) == {}


def test_remute_replaces_the_previous_mute() -> None:
    policy = Policy().apply({"microphones": {"a": {"muted": True, "duration": 10}}}, NOW)
    policy = policy.apply({"microphones": {"a": {"muted": True}}}, NOW + 1)
    assert policy.microphones["a"].until is None


K = "microphones.kitchen"


def mic(**entry: object) -> dict[str, object]:
    return {"microphones": {"kitchen": entry}}


BAD_COMMANDS: list[tuple[object, str, str]] = [
    (None, "command", "JSON object"),
    ([], "command", "JSON object"),
    ("local_only", "command", "JSON object"),
    ({"local_onyl": False}, "local_onyl", "unknown field"),
    ({"revision": 9}, "revision", "unknown field"),
    ({"epoch": "abc"}, "epoch", "unknown field"),
    ({"local_only": "false"}, "local_only", "true or false"),
    ({"local_only": 0}, "local_only", "true or false"),
    ({"local_only": None}, "local_only", "true or false"),
    ({"privacy_mode": 1}, "privacy_mode", "true or false"),
    ({"publish_transcripts": "yes"}, "publish_transcripts", "true or false"),
    ({"retention": "disk"}, "retention", '"none" or "memory"'),
    ({"retention": None}, "retention", '"none" or "memory"'),
    ({"retention": "MEMORY"}, "retention", '"none" or "memory"'),
    ({"microphones": []}, "microphones", "JSON object"),
    ({"microphones": {"kitchen": True}}, "microphones.kitchen", "muted"),
    ({"microphones": {"kitchen": {}}}, "microphones.kitchen.muted", "missing"),
    (mic(muted="true"), f"{K}.muted", "true or false"),
    (mic(muted=True, duration=0), f"{K}.duration", "> 0"),
    (mic(muted=True, duration=-5), f"{K}.duration", "> 0"),
    (mic(muted=True, duration="600"), f"{K}.duration", "finite number"),
    (mic(muted=True, duration=True), f"{K}.duration", "finite number"),
    (mic(muted=True, duration=float("inf")), f"{K}.duration", "finite number"),
    (mic(muted=True, duration=float("nan")), f"{K}.duration", "finite number"),
    (mic(muted=True, duration=1e12), f"{K}.duration", "<="),
    (mic(muted=False, duration=60), f"{K}.duration", "muted"),
    (mic(muted=True, until=5), f"{K}.until", "unknown field"),
    ({"microphones": {"kitchen/bad": {"muted": True}}}, "microphones.kitchen/bad", "satellite id"),
    ({"microphones": {"": {"muted": True}}}, "microphones.", "satellite id"),
    ({"microphones": {"x" * 65: {"muted": True}}}, "microphones." + "x" * 65, "satellite id"),
]


@pytest.mark.parametrize(("command", "field", "expected"), BAD_COMMANDS)
def test_bad_command_is_refused_with_a_clear_error_and_changes_nothing(
    command: object, field: str, expected: str
) -> None:
    before = Policy(privacy_mode=True, microphones={"hall": MicrophoneMute(True)}, revision=3)
    snapshot = before.to_json()
    with pytest.raises(PolicyError) as info:
        before.apply(command, NOW)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert expected in str(info.value)
    assert before.to_json() == snapshot


def test_bad_command_is_all_or_nothing() -> None:
    """Valid fields before and after the bad one are not applied either."""
    before = Policy()
    command: dict[str, Any] = {
        "local_only": False,
        "retention": "memory",
        "microphones": {"kitchen": {"muted": True}, "hall": {"muted": True, "duration": -1}},
        "privacy_mode": True,
    }
    with pytest.raises(PolicyError, match="microphones.hall.duration"):
        before.apply(command, NOW)
    assert before == Policy()


def test_json_round_trip() -> None:
    policy = Policy(
        local_only=False,
        privacy_mode=True,
        retention=Retention.MEMORY,
        publish_transcripts=False,
        microphones={"b": MicrophoneMute(True, NOW), "a": MicrophoneMute(True)},
        revision=12,
        epoch="5f0c2a9e81d4b7c3",
    )
    data = json.loads(json.dumps(policy.to_json()))
    assert Policy.from_json(data) == policy
    assert list(data["microphones"]) == ["a", "b"]
    assert data["epoch"] == "5f0c2a9e81d4b7c3"


def test_the_epoch_survives_every_change_and_counts_in_equality() -> None:
    """Commands and expiries keep the epoch; two policies of different epochs differ, so a
    reset to revision 0 can never pass for an old state of the same policy."""
    policy = Policy(epoch="e1").apply({"microphones": {"kitchen": {"muted": True, "duration": 5}}}, NOW)
    assert (policy.epoch, policy.revision) == ("e1", 1)
    expired = policy.expire(NOW + 10)
    assert (expired.epoch, expired.revision) == ("e1", 2)
    assert Policy(epoch="e1") != Policy(epoch="e2")
    assert hash(Policy(epoch="e1")) != hash(Policy(epoch="e2"))


def test_a_policy_saved_before_epochs_loads_without_one() -> None:
    data = Policy(privacy_mode=True, revision=4).to_json()
    del data["epoch"]
    policy = Policy.from_json(data)
    assert (policy.privacy_mode, policy.revision, policy.epoch) == (True, 4, "")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("local_only"), "local_only"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d.update(local_only="true"), "local_only"),
        (lambda d: d.update(retention="forever"), "retention"),
        (lambda d: d.update(revision=-1), "revision"),
        (lambda d: d.update(revision=1.5), "revision"),
        (lambda d: d.update(revision=True), "revision"),
        (lambda d: d.update(epoch=7), "epoch"),
        (lambda d: d.update(epoch=None), "epoch"),
        (lambda d: d.update(epoch="a b"), "epoch"),
        (lambda d: d.update(epoch="x" * 65), "epoch"),
        (lambda d: d.update(microphones=[]), "microphones"),
        (lambda d: d.update(microphones={"k": {"muted": True}}), "microphones.k"),
        (lambda d: d.update(microphones={"k": {"muted": 1, "until": None}}), "microphones.k.muted"),
        (
            lambda d: d.update(microphones={"k": {"muted": True, "until": "soon"}}),
            "microphones.k.until",
        ),
        (lambda d: d.update(microphones={"a b": {"muted": 1, "until": None}}), "microphones.a b"),
    ],
)
def test_from_json_is_strict(mutate: Any, field: str) -> None:
    data = Policy().to_json()
    mutate(data)
    with pytest.raises(PolicyError) as info:
        Policy.from_json(data)
    assert info.value.field == field


def test_from_json_refuses_non_objects() -> None:
    cases: list[object] = [None, [], "policy", 3]
    for data in cases:
        with pytest.raises(PolicyError, match="^policy: expected a JSON object"):
            Policy.from_json(data)


def test_allows_follows_local_only() -> None:
    cloud_ok = Policy(local_only=False)
    for locality in Locality:
        assert cloud_ok.allows(locality)
    assert [loc for loc in Locality if not Policy().allows(loc)] == [Locality.CLOUD]


def test_loosened_names_what_makes_the_house_less_private() -> None:
    now = 1000.0
    base = Policy().apply({"microphones": {"a": {"muted": True}, "b": {"muted": True, "duration": 60}}}, now)

    def change(command: dict[str, object]) -> list[str]:
        return loosened(base, base.apply(command, now), now)

    # more private (or the same): nothing loosened
    assert change({"privacy_mode": True, "publish_transcripts": False, "local_only": True}) == []
    assert change({"microphones": {"c": {"muted": True}, "b": {"muted": True}}}) == []  # b: timed -> until unmuted
    assert change({"microphones": {"b": {"muted": True, "duration": 120}}}) == []  # b ends later
    assert change({"retention": "none"}) == []
    # less private: each named
    assert change({"local_only": False}) == ["local_only"]
    assert change({"retention": "memory"}) == ["retention"]
    assert change({"microphones": {"a": {"muted": False}}}) == ["microphones.a"]
    assert change({"microphones": {"a": {"muted": True, "duration": 5}}}) == ["microphones.a"]  # now ends
    assert change({"microphones": {"b": {"muted": True, "duration": 10}}}) == ["microphones.b"]  # ends sooner
    assert change({"local_only": False, "microphones": {"c": {"muted": True}}}) == ["local_only"]  # mixed
    private = base.apply({"privacy_mode": True, "publish_transcripts": False}, now)
    assert loosened(private, private.apply({"privacy_mode": False, "publish_transcripts": True}, now), now) == [
        "privacy_mode", "publish_transcripts"]
    # an expired mute dropped is no change in effect
    assert loosened(base, base.expire(now + 61), now + 61) == []
