"""PolicyStore / AuditStore: durable, atomic, private, and failing closed."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bridge.privacy import store as store_module
from bridge.privacy.audit import AuditLog
from bridge.privacy.policy import MicrophoneMute, Policy, Retention
from bridge.privacy.store import AuditStore, PolicyStart, PolicyStore, StartKind

RISKY = Policy(
    local_only=False,
    privacy_mode=False,
    retention=Retention.MEMORY,
    publish_transcripts=True,
    microphones={"kitchen": MicrophoneMute(True, 2e9)},
    revision=7,
)


def assert_default(policy: Policy) -> None:
    assert policy == Policy()
    assert policy.local_only is True
    assert policy.retention is Retention.NONE


def test_round_trip_and_file_mode(tmp_path: Path) -> None:
    store = PolicyStore(tmp_path / "data")
    store.save(RISKY)
    assert store.load() == RISKY
    assert store.last_error is None
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert [p.name for p in store.path.parent.iterdir()] == ["policy.json"]  # no temp left


def test_mode_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        PolicyStore(tmp_path).save(RISKY)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "policy.json").stat().st_mode) == 0o600


def test_missing_file_gives_default(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.privacy.store")
    store = PolicyStore(tmp_path / "nowhere")
    assert_default(store.load())
    assert "no saved policy" in caplog.text


def write_raw(tmp_path: Path, raw: bytes) -> PolicyStore:
    store = PolicyStore(tmp_path)
    store.path.write_bytes(raw)
    os.chmod(store.path, 0o600)
    return store


def valid_bytes() -> bytes:
    return json.dumps({"format": 1, "policy": RISKY.to_json()}).encode()


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "corrupt or truncated"),
        (b"\x00\xff\xfe garbage", "corrupt or truncated"),
        (b"{not json", "corrupt or truncated"),
        (None, "corrupt or truncated"),  # the valid file cut in half
        (b"[]", "format-1"),
        (b'{"policy": {}}', "format-1"),
        (b'{"format": 2, "policy": {}}', "format-1"),
        (b'{"format": 1}', "format-1"),
        (b'{"format": 1, "policy": null}', "invalid policy"),
        (b'{"format": 1, "policy": {"local_only": false}}', "invalid policy"),
    ],
    ids=["empty", "binary", "not-json", "truncated", "array", "no-format", "format-2",
         "no-policy", "null-policy", "partial-policy"],
)
def test_corrupt_file_fails_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, raw: bytes | None, why: str
) -> None:
    if raw is None:
        good = valid_bytes()
        raw = good[: len(good) // 2]
    store = write_raw(tmp_path, raw)
    with caplog.at_level(logging.WARNING, logger="bridge.privacy.store"):
        assert_default(store.load())
    assert why in (store.last_error or "")
    assert "default policy" in caplog.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("local_only", "false"),
        ("local_only", 0),
        ("retention", "disk"),
        ("revision", "7"),
        ("microphones", {"kitchen": {"muted": "yes", "until": None}}),
        ("privacy_mode", None),
    ],
)
def test_wrong_types_fail_closed(tmp_path: Path, field: str, value: object) -> None:
    data = RISKY.to_json()
    data[field] = value
    store = write_raw(tmp_path, json.dumps({"format": 1, "policy": data}).encode())
    assert_default(store.load())
    assert field in (store.last_error or "")


def test_unreadable_file_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = write_raw(tmp_path, valid_bytes())
    real_open = os.open

    def deny(path: object, flags: int, *args: object) -> int:
        if str(path) == str(store.path):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", deny)
    assert_default(store.load())
    assert "Permission denied" in (store.last_error or "")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_mode_fails_closed(tmp_path: Path) -> None:  # pragma: no cover - non-root
    store = write_raw(tmp_path, valid_bytes())
    os.chmod(store.path, 0)
    assert_default(store.load())


def test_group_or_world_writable_file_fails_closed(tmp_path: Path) -> None:
    store = write_raw(tmp_path, valid_bytes())
    os.chmod(store.path, 0o666)
    assert_default(store.load())
    assert "writable by group or others" in (store.last_error or "")


def test_directory_or_symlink_in_place_of_the_file_fails_closed(tmp_path: Path) -> None:
    store = PolicyStore(tmp_path)
    store.path.mkdir()
    assert_default(store.load())
    store.path.rmdir()
    target = tmp_path / "elsewhere.json"
    target.write_bytes(valid_bytes())
    os.chmod(target, 0o600)
    store.path.symlink_to(target)
    assert_default(store.load())


def test_huge_file_fails_closed(tmp_path: Path) -> None:
    store = write_raw(tmp_path, b" " * (store_module.MAX_FILE_BYTES + 1))
    assert_default(store.load())
    assert "too large" in (store.last_error or "")


def test_each_reason_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = write_raw(tmp_path, b"{broken")
    with caplog.at_level(logging.WARNING, logger="bridge.privacy.store"):
        for _ in range(3):
            assert_default(store.load())
    assert len([r for r in caplog.records if "default policy" in r.getMessage()]) == 1


def test_failed_save_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = PolicyStore(tmp_path)
    store.save(RISKY)

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        store.save(Policy())
    monkeypatch.undo()
    assert store.load() == RISKY
    assert [p.name for p in tmp_path.iterdir()] == ["policy.json"]


def test_save_is_atomic_replace_after_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new content is fsynced in a temp file in the same folder before os.replace."""
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def replace(src: object, dst: object) -> None:
        assert Path(str(src)).parent == Path(str(dst)).parent == tmp_path
        assert json.loads(Path(str(src)).read_text())["policy"] == RISKY.to_json()
        old, new = Path(str(dst)), Path(str(src))
        assert not old.exists() or old.read_text() != new.read_text()
        calls.append("replace")
        real_replace(src, dst)  # type: ignore[arg-type]

    PolicyStore(tmp_path).save(Policy())
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    PolicyStore(tmp_path).save(RISKY)
    assert calls == ["fsync", "replace", "fsync"]  # file, then the folder


def test_survives_kill_9_mid_save_loop(tmp_path: Path) -> None:
    """A process saving in a loop and killed at random leaves a loadable policy."""
    script = (
        "import sys, itertools\n"
        "from pathlib import Path\n"
        "from bridge.privacy.policy import Policy\n"
        "from bridge.privacy.store import PolicyStore\n"
        "store = PolicyStore(Path(sys.argv[1]))\n"
        "print('ready', flush=True)\n"
        "for n in itertools.count(1):\n"
        "    store.save(Policy(local_only=False, revision=n))\n"
    )
    root = Path(__file__).resolve().parents[2]
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            cwd=root,
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        while not (tmp_path / "policy.json").exists():
            time.sleep(0.001)
        time.sleep(random.uniform(0.0, 0.05))  # kill somewhere in the middle of saving
        proc.kill()  # SIGKILL
        proc.wait()
        policy = PolicyStore(tmp_path).load()
        assert policy.local_only is False and policy.revision >= 1


def test_audit_counters_survive_restart(tmp_path: Path) -> None:
    log = AuditLog()
    log.note_muted_frame(3)
    log.count_blocked("cloud-stt", "local_only")
    AuditStore(tmp_path).save(log.counters_to_json())
    assert stat.S_IMODE((tmp_path / "audit-counters.json").stat().st_mode) == 0o600

    fresh = AuditLog()
    fresh.restore_counters(AuditStore(tmp_path).load())
    assert fresh.counters["dropped_muted_frames"] == 3
    assert fresh.counters["blocked_cloud_requests"] == 1


def test_audit_store_tolerates_missing_and_corrupt(tmp_path: Path) -> None:
    store = AuditStore(tmp_path)
    assert store.load() == {}
    store.path.write_text("{oops")
    os.chmod(store.path, 0o600)
    assert store.load() == {}
    counters = {"errors": 2, "utterances": "x"}
    store.path.write_text(json.dumps({"format": 1, "counters": counters}))
    assert store.load() == {"errors": 2}


def test_policy_and_audit_files_share_the_folder(tmp_path: Path) -> None:
    PolicyStore(tmp_path).save(RISKY)
    AuditStore(tmp_path).save({"utterances": 1})
    assert PolicyStore(tmp_path).load() == RISKY
    assert AuditStore(tmp_path).load() == {"utterances": 1}


# -- starting: PolicyStore.open gives an epoch and says how the policy was found ------------------


def test_first_start_gets_an_epoch_saved_at_once(tmp_path: Path) -> None:
    store = PolicyStore(tmp_path / "data")
    policy, start = store.open()
    assert start == PolicyStart(StartKind.FIRST_START, start.reason) and not start.reset
    assert re.fullmatch(r"[0-9a-f]{16}", policy.epoch)
    assert_default(replace(policy, epoch=""))
    assert PolicyStore(tmp_path / "data").load() == policy  # on disk before anything else happens


def test_a_restart_keeps_the_epoch_and_the_revision(tmp_path: Path) -> None:
    policy, _ = PolicyStore(tmp_path).open()
    muted = policy.apply({"microphones": {"kitchen": {"muted": True}}}, time.time())
    PolicyStore(tmp_path).save(muted)
    again, start = PolicyStore(tmp_path).open()
    assert start == PolicyStart(StartKind.LOADED) and not start.reset
    assert again == muted
    assert (again.epoch, again.revision) == (policy.epoch, 1)


def test_a_lost_file_is_a_reset_with_a_new_epoch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    policy, _ = PolicyStore(tmp_path).open()
    PolicyStore(tmp_path).save(risky_in(policy.epoch))
    AuditStore(tmp_path).save({"utterances": 3})  # the bridge ran here
    (tmp_path / "policy.json").unlink()
    with caplog.at_level(logging.WARNING, logger="bridge.privacy.store"):
        fresh, start = PolicyStore(tmp_path).open()
    assert start.kind is StartKind.MISSING and start.reset and start.saved
    assert "missing" in (start.reason or "")
    assert fresh.epoch and fresh.epoch != policy.epoch
    assert_default(replace(fresh, epoch=""))
    assert PolicyStore(tmp_path).load() == fresh
    assert "default policy" in caplog.text


def risky_in(epoch: str) -> Policy:
    return replace(RISKY, epoch=epoch)


@pytest.mark.parametrize("raw", [b"{broken", b'{"format": 1, "policy": {"local_only": 0}}', None])
def test_a_corrupt_file_is_a_reset_and_is_kept_aside(tmp_path: Path, raw: bytes | None) -> None:
    policy, _ = PolicyStore(tmp_path).open()
    if raw is None:  # torn in half
        good = json.dumps({"format": 1, "policy": risky_in(policy.epoch).to_json()}).encode()
        raw = good[: len(good) // 2]
    write_raw(tmp_path, raw)
    fresh, start = PolicyStore(tmp_path).open()
    assert start.kind is StartKind.UNUSABLE and start.reset
    assert fresh.epoch and fresh.epoch != policy.epoch
    assert_default(replace(fresh, epoch=""))
    aside = tmp_path / f"policy.json.unusable-{fresh.epoch}"
    assert aside.read_bytes() == raw
    assert PolicyStore(tmp_path).load() == fresh  # a valid file again
    # The set-aside file alone also tells a later start that this folder had a policy.
    (tmp_path / "policy.json").unlink()
    assert PolicyStore(tmp_path).open()[1].kind is StartKind.MISSING


def test_a_directory_in_place_of_the_file_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / "policy.json").mkdir()
    fresh, start = PolicyStore(tmp_path).open()
    assert start.kind is StartKind.UNUSABLE and start.saved
    assert (tmp_path / f"policy.json.unusable-{fresh.epoch}").is_dir()
    assert PolicyStore(tmp_path).load() == fresh


def test_a_policy_saved_before_epochs_keeps_its_revision_and_gets_an_epoch(tmp_path: Path) -> None:
    data = RISKY.to_json()
    del data["epoch"]
    write_raw(tmp_path, json.dumps({"format": 1, "policy": data}).encode())
    policy, start = PolicyStore(tmp_path).open()
    assert start == PolicyStart(StartKind.LOADED) and not start.reset
    assert policy.epoch and replace(policy, epoch="") == RISKY
    assert PolicyStore(tmp_path).open() == (policy, PolicyStart(StartKind.LOADED))


def test_a_start_that_cannot_save_still_has_an_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def read_only(path: Path, data: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(store_module, "write_json_atomic", read_only)
    with caplog.at_level(logging.ERROR, logger="bridge.privacy.store"):
        policy, start = PolicyStore(tmp_path).open()
    assert start.kind is StartKind.FIRST_START and start.saved is False
    assert policy.epoch
    assert "Read-only file system" in caplog.text
