"""Utterance retention: memory only, only when allowed, purgeable, never on disk."""

from __future__ import annotations

import copy
import os
import pickle
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.privacy.policy import Policy, Retention
from bridge.privacy.retention import RetainedUtterance, UtteranceRetention

MEMORY = Policy(retention=Retention.MEMORY)
NONE = Policy()

_writes: list[tuple[str, tuple[Any, ...]]] = []
_state = {"active": False}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _state["active"]:
        return
    if event == "open":
        _path, mode, flags = args
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS
        ):
            _writes.append((event, args))
    elif event in ("os.rename", "os.truncate", "shutil.copyfile", "tempfile.mkstemp"):
        _writes.append((event, args))


sys.addaudithook(_hook)


@pytest.fixture
def disk_writes() -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    _writes.clear()
    _state["active"] = True
    try:
        yield _writes
    finally:
        _state["active"] = False


class Holder:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def __call__(self) -> Policy:
        return self.policy


def pcm(n: int) -> bytes:
    return bytes([n % 256]) * 3200


def test_nothing_kept_when_retention_is_none() -> None:
    retention = UtteranceRetention(Holder(NONE))
    assert retention.keep("kitchen", "s1", pcm(1), 1.0) is False
    assert retention.items() == ()
    assert len(retention) == 0


def test_keeps_last_items_in_memory() -> None:
    retention = UtteranceRetention(Holder(MEMORY), max_items=3)
    for n in range(5):
        assert retention.keep("kitchen", f"s{n}", pcm(n), float(n))
    items = retention.items()
    assert [i.session_id for i in items] == ["s2", "s3", "s4"]
    assert items[-1].pcm == pcm(4)
    assert items[-1].satellite == "kitchen" and items[-1].time == 4.0


def test_long_audio_is_truncated() -> None:
    retention = UtteranceRetention(Holder(MEMORY), max_bytes_per_item=100)
    retention.keep("kitchen", "s", b"\x01" * 1000, 0.0)
    assert len(retention.items()[0].pcm) == 100


def test_turning_retention_off_drops_everything() -> None:
    holder = Holder(MEMORY)
    retention = UtteranceRetention(holder)
    retention.keep("kitchen", "s1", pcm(1), 0.0)
    kept = retention.items()[0]
    holder.policy = NONE
    assert retention.enforce() == 1
    assert retention.items() == ()
    assert kept.pcm == b""  # the buffer was wiped, not just forgotten
    holder.policy = MEMORY
    assert retention.items() == ()


def test_access_after_policy_change_purges_without_enforce() -> None:
    holder = Holder(MEMORY)
    retention = UtteranceRetention(holder)
    retention.keep("kitchen", "s1", pcm(1), 0.0)
    holder.policy = NONE
    assert len(retention) == 0


def test_purge() -> None:
    retention = UtteranceRetention(Holder(MEMORY))
    retention.keep("kitchen", "s1", pcm(1), 0.0)
    retention.keep("hall", "s2", pcm(2), 0.0)
    items = retention.items()
    assert retention.purge() == 2
    assert retention.items() == ()
    assert all(i.pcm == b"" for i in items)
    assert retention.purge() == 0


def test_retained_audio_cannot_be_serialized() -> None:
    retention = UtteranceRetention(Holder(MEMORY))
    retention.keep("kitchen", "s1", pcm(1), 0.0)
    for obj in (retention, retention.items()[0]):
        with pytest.raises(TypeError):
            pickle.dumps(obj)
        with pytest.raises(TypeError):
            copy.copy(obj)


def test_never_writes_to_disk(disk_writes: list[tuple[str, tuple[Any, ...]]]) -> None:
    holder = Holder(MEMORY)
    retention = UtteranceRetention(holder, max_items=2)
    for n in range(10):
        retention.keep("kitchen", f"s{n}", pcm(n) * 10, float(n))
    retention.items()
    retention.purge()
    holder.policy = NONE
    retention.keep("kitchen", "s", pcm(0), 0.0)
    assert disk_writes == []


def test_the_disk_hook_works(disk_writes: list[tuple[str, tuple[Any, ...]]], tmp_path: Any) -> None:
    (tmp_path / "x").write_bytes(b"1")
    assert disk_writes


def test_bad_max_items() -> None:
    with pytest.raises(ValueError):
        UtteranceRetention(Holder(MEMORY), max_items=0)


def test_retained_utterance_repr_has_no_audio() -> None:
    item = RetainedUtterance(0.0, "kitchen", "s", bytearray(b"\x07" * 10))
    assert "\\x07" not in repr(item)
