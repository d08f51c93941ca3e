"""A data folder that cannot be written: more privacy at once, less privacy only once saved.

In process: a real bridge from `build_bridge` (never started) whose data folder is on a real,
tiny tmpfs, which is then filled to the last byte (ENOSPC) or remounted read-only (EROFS);
policy commands go in through `dispatch`, answers are read from the MQTT link's outgoing queue,
and what is on disk is read back with a fresh `PolicyStore`. A mute must take effect at once
(frames dropped), be answered `ok` with `"saved": false` and a `policy_not_saved` error, and be
saved by the once-a-second retry when space returns; an unmute, local-only off or retention on
must be refused while nothing can be saved, and accepted afterwards.

Needs root for `mount`; as another user the folder is made read-only with chmod instead (which
root would ignore).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bridge.config import validate
from bridge.privacy.store import PolicyStore
from bridge.protocol.hearth import encode_frame
from bridge.service import Bridge, build_bridge
from tests.bridge.test_hardening import Outgoing, online
from tests.support.inprocess import send_signed


class Disk:
    """A small folder whose writes can be made to fail for real, and then heal."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounted = False

    def mount(self) -> Disk:
        self.root.mkdir()
        if os.geteuid() == 0:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(self.root)],
                                  capture_output=True, check=False)
            if done.returncode != 0:
                pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
            self.mounted = True
        return self

    def break_(self, how: str) -> None:
        if how == "read-only":
            if self.mounted:
                subprocess.run(["mount", "-o", "remount,ro", str(self.root)], check=True)
            else:
                (self.root / "data").chmod(0o500)
            return
        assert self.mounted or pytest.skip("filling a disk needs a tmpfs (root)")
        with open(self.root / "filler", "wb") as filler:
            with contextlib.suppress(OSError):
                while True:
                    filler.write(b"\0" * 4096)
                    filler.flush()
        with pytest.raises(OSError) as full:  # really full: not even one more byte fits
            with open(self.root / "probe", "wb") as probe:
                probe.write(b"\0" * 4096)
                probe.flush()
                os.fsync(probe.fileno())
        assert full.value.errno == errno.ENOSPC
        with contextlib.suppress(FileNotFoundError):
            (self.root / "probe").unlink()

    def heal(self, how: str) -> None:
        if how == "read-only":
            if self.mounted:
                subprocess.run(["mount", "-o", "remount,rw", str(self.root)], check=True)
            else:
                (self.root / "data").chmod(0o700)
        else:
            (self.root / "filler").unlink()

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.root)], check=False)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    made = Disk(tmp_path / "disk").mount()
    try:
        yield made
    finally:
        made.unmount()


@pytest.fixture
async def bridge(disk: Disk) -> AsyncIterator[Bridge]:
    settings = validate({"data_dir": str(disk.root / "data"), "bridge_id": "test", "status_api": {"enabled": False},
                         "tts": {"engine": "none"}})
    made = build_bridge(settings)
    assert (disk.root / "data" / "policy.json").exists()  # saved at start, while the disk was fine
    yield made
    for sat in list(made.satellites.values()):
        await sat.close()


def command(bridge: Bridge, out: Outgoing, request_id: str, body: dict[str, object]) -> dict[str, object]:
    send_signed(bridge, "hearth/bridge/policy/set", json.dumps({"request_id": request_id, **body}).encode())
    (result,) = [r for r in out.on("hearth/bridge/policy/result") if r["request_id"] == request_id]
    return result


def on_disk(disk: Disk) -> dict[str, object]:
    return PolicyStore(disk.root / "data").load().to_json()


@pytest.mark.parametrize("how", ["full", "read-only"])
async def test_more_private_at_once_less_private_only_once_saved(bridge: Bridge, disk: Disk, how: str) -> None:
    out = Outgoing(bridge)
    online(bridge, "kitchen")
    saved_before = on_disk(disk)
    disk.break_(how)

    # more private: in force at once, answered honestly, the error published
    muted = command(bridge, out, "mute", {"microphones": {"kitchen": {"muted": True}}})
    assert muted["ok"] is True and muted["saved"] is False, muted
    assert muted["policy"]["microphones"]["kitchen"]["muted"] is True  # type: ignore[index]
    assert bridge.is_muted("kitchen")
    assert ("hearth/satellite/kitchen/command", {"command": "mute", "session_id": None}) in out.read()
    bridge.dispatch("hearth/satellite/kitchen/audio", encode_frame(1, 0, bytes(960)))
    assert bridge.control.dropped_muted == 1  # the microphone is muted in the bridge, now
    errors = [e for e in out.on("hearth/bridge/error") if e["code"] == "policy_not_saved"]
    assert errors and "retries" in str(errors[0]["message"]), out.read()
    more = command(bridge, out, "more", {"privacy_mode": True, "publish_transcripts": False})
    assert more["ok"] is True and more["saved"] is False, more
    assert bridge.stats()["policy_saved"] is False
    assert on_disk(disk) == saved_before  # nothing reached the disk

    # less private: refused while it cannot be saved; the policy in force is unchanged
    for request_id, body, field in (("unmute", {"microphones": {"kitchen": {"muted": False}}}, "microphones.kitchen"),
                                    ("cloud", {"local_only": False}, "local_only"),
                                    ("keep", {"retention": "memory"}, "retention"),
                                    ("shorter", {"microphones": {"kitchen": {"muted": True, "duration": 60}}},
                                     "microphones.kitchen")):
        refused = command(bridge, out, request_id, body)
        assert refused["ok"] is False and field in str(refused["error"]), refused
        assert "less private" in str(refused["error"]), refused
    assert bridge.is_muted("kitchen") and bridge.policy.local_only and bridge.policy.privacy_mode

    # space returns: the once-a-second housekeeping saves what is in force
    disk.heal(how)
    bridge.control.expire(time.time())
    stored = on_disk(disk)
    assert stored["microphones"]["kitchen"]["muted"] is True and stored["privacy_mode"] is True, stored  # type: ignore[index]
    assert stored["revision"] == bridge.policy.revision
    assert bridge.stats()["policy_saved"] is True

    # and now a less private change is accepted, saved first
    unmuted = command(bridge, out, "unmute-now", {"privacy_mode": False, "microphones": {"kitchen": {"muted": False}}})
    assert unmuted["ok"] is True and unmuted["saved"] is True, unmuted
    assert not bridge.is_muted("kitchen") and on_disk(disk)["microphones"] == {}


async def test_an_unchanged_more_private_policy_is_retried_until_saved(bridge: Bridge, disk: Disk) -> None:
    """Failures of the retry change nothing and publish nothing; the first success saves."""
    out = Outgoing(bridge)
    disk.break_("full")
    command(bridge, out, "mute", {"microphones": {"hall": {"muted": True}}})
    before = len(out.read())
    for _ in range(3):
        bridge.control.expire(time.time())
    assert len(out.read()) == before and bridge.control.state.saved is False
    assert "hall" not in on_disk(disk)["microphones"]  # type: ignore[operator]
    disk.heal("full")
    bridge.control.expire(time.time())
    assert on_disk(disk)["microphones"]["hall"]["muted"] is True  # type: ignore[index]


async def test_a_start_that_cannot_save_is_retried(disk: Disk) -> None:
    """The policy a bridge starts with (a first start: the defaults under a new epoch) is saved
    by the same retry once the folder can be written."""
    (disk.root / "data").mkdir(mode=0o700)
    disk.break_("read-only")
    made = build_bridge(validate({"data_dir": str(disk.root / "data"), "bridge_id": "test",
                                  "status_api": {"enabled": False}, "tts": {"engine": "none"}}))
    assert made.stats()["policy_saved"] is False and not (disk.root / "data" / "policy.json").exists()
    made.control.expire(time.time())
    assert made.control.state.saved is False  # still read-only: nothing changes
    disk.heal("read-only")
    made.control.expire(time.time())
    assert made.stats()["policy_saved"] is True
    assert on_disk(disk)["epoch"] == made.policy.epoch
