"""Durable, crash-safe storage of the policy and the audit counters in the bridge's data folder.

Files (both JSON, mode 0600, written atomically: temp file in the same folder, fsync,
``os.replace``, fsync of the folder, so a ``kill -9`` or power cut leaves the old or the new
file, never a torn one):

- ``policy.json``: ``{"format": 1, "policy": <Policy.to_json()>}``
- ``audit-counters.json``: ``{"format": 1, "counters": {...}}``

Loading the policy fails closed: anything but a readable, well-formed, private file gives the
default :class:`Policy` (local only, retention none) and one log line saying why.
:meth:`PolicyStore.open` is how the bridge starts: it also says how it started
(:class:`PolicyStart`: the saved policy, a first start, a lost file, an unusable file), gives a
policy that starts from the defaults a new epoch, sets an unusable file aside
(``policy.json.unusable-<epoch>``) and saves the new policy at once, so the next start keeps the
same epoch and a reset is never confused with a restart.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from .policy import Policy, PolicyError

_LOGGER = logging.getLogger(__name__)

FORMAT = 1
POLICY_FILE = "policy.json"
AUDIT_FILE = "audit-counters.json"
#: Larger files are refused unread (a policy is a few hundred bytes).
MAX_FILE_BYTES = 1 << 20


class StartKind(enum.StrEnum):
    """How the bridge came by its policy at start."""

    LOADED = "loaded"  #: the saved policy
    FIRST_START = "first_start"  #: nothing was ever saved in this data folder: the defaults
    MISSING = "missing"  #: the policy file is gone but the folder was used before: a reset
    UNUSABLE = "unusable"  #: the policy file is there but cannot be used: a reset


@dataclass(frozen=True, slots=True)
class PolicyStart:
    """What :meth:`PolicyStore.open` found; `reason` says why it could not load (None: it did)."""

    kind: StartKind
    reason: str | None = None
    saved: bool = True  #: whether the policy started with is on disk (False: saving failed)

    @property
    def reset(self) -> bool:
        """True when a policy the owner had set was lost (the file missing or unusable)."""
        return self.kind in (StartKind.MISSING, StartKind.UNUSABLE)


def new_epoch() -> str:
    """A fresh epoch: 16 random hex digits."""
    return secrets.token_hex(8)


class StoredFileError(Exception):
    """A stored file could not be used; the message says why (for the log)."""


def _read_document(path: Path, key: str) -> object:
    """Read ``{"format": 1, key: ...}`` from `path` and return the value under `key`.

    Raises FileNotFoundError when there is no file and StoredFileError for anything else.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as err:
        raise StoredFileError(f"cannot open {path}: {err.strerror or err}") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StoredFileError(f"{path} is not a regular file")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise StoredFileError(
                f"{path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):o});"
                " refusing it, expected 0600"
            )
        if hasattr(os, "getuid") and info.st_uid not in (os.getuid(), 0):
            raise StoredFileError(f"{path} belongs to another user (uid {info.st_uid})")
        if info.st_size > MAX_FILE_BYTES:
            raise StoredFileError(f"{path} is too large ({info.st_size} bytes)")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise StoredFileError(f"cannot read {path}: {err.strerror or err}") from err
    finally:
        os.close(fd)
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StoredFileError(f"{path} is corrupt or truncated: {err}") from err
    if not isinstance(document, dict) or document.get("format") != FORMAT or key not in document:
        raise StoredFileError(f'{path} is not a format-{FORMAT} document with a "{key}" field')
    return document[key]


def write_json_atomic(path: Path, data: object) -> None:
    """Write `data` as JSON to `path` atomically and durably, mode 0600.

    The folder is created (mode 0700) if needed. On failure the old file is untouched, the
    temporary file removed, and the OSError raised.
    """
    folder = path.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    payload = json.dumps(data, indent=1, sort_keys=True, allow_nan=False).encode("utf-8") + b"\n"
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # O_CREAT honours the umask and keeps a stale temp's mode
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


#: what write_json_atomic leaves behind when it is killed between creating and renaming its file
_TEMP_FILE = re.compile(r"\.(?:policy\.json|audit-counters\.json)\.(\d{1,10})\.tmp")


def remove_stale_temp_files(folder: Path) -> int:
    """Removes the temporary files of saves that never finished (``kill -9``, power cut); one of
    another process that is still running is left alone. Returns how many were removed."""
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    removed = 0
    for name in names:
        match = _TEMP_FILE.fullmatch(name)
        if match is None or (int(match.group(1)) != os.getpid() and _running(int(match.group(1)))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(folder / name)
            removed += 1
    if removed:
        _LOGGER.info("Removed %d unfinished temporary file(s) from %s", removed, folder)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # someone else's process
    except (OSError, OverflowError):
        return False
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        dir_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(dir_fd)


class PolicyStore:
    """Loads and saves the policy in `data_dir`; loading never raises and fails closed."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / POLICY_FILE
        self._logged: set[str] = set()
        #: Why the last :meth:`load` fell back to the default policy (None if it did not).
        self.last_error: str | None = None

    def _fallback(self, reason: str, level: int = logging.WARNING) -> Policy:
        self.last_error = reason
        if reason not in self._logged:
            self._logged.add(reason)
            _LOGGER.log(level, "Using the default policy (local only, keep nothing): %s", reason)
        return Policy()

    def load(self) -> Policy:
        """The saved policy, or the safe default if it is missing, unreadable or malformed."""
        return self._load()[0]

    def _load(self) -> tuple[Policy, StartKind]:
        remove_stale_temp_files(self.data_dir)  # left by a save that was killed
        try:
            data = _read_document(self.path, "policy")
        except FileNotFoundError:
            if self._used_before():
                reason = f"the saved policy {self.path} is missing (this data folder was used before)"
                return self._fallback(reason), StartKind.MISSING
            return self._fallback(f"no saved policy at {self.path}", logging.INFO), StartKind.FIRST_START
        except StoredFileError as err:
            return self._fallback(str(err)), StartKind.UNUSABLE
        try:
            policy = Policy.from_json(data)
        except PolicyError as err:
            return self._fallback(f"{self.path} holds an invalid policy: {err}"), StartKind.UNUSABLE
        self.last_error = None
        return policy, StartKind.LOADED

    def _used_before(self) -> bool:
        """Whether the bridge ran with this data folder before (it saves its audit counters there
        within seconds of starting), so that a missing policy file was lost, not never written."""
        try:
            return (self.data_dir / AUDIT_FILE).exists() or any(
                self.data_dir.glob(f"{POLICY_FILE}.unusable-*"))
        except OSError:  # a folder that cannot be listed: say "lost" rather than "first start"
            return True

    def open(self) -> tuple[Policy, PolicyStart]:
        """The policy to start with and how it was found; never raises.

        A policy from the defaults gets a new epoch and is saved at once (an unusable file is
        first renamed to ``policy.json.unusable-<epoch>``, kept for the owner to look at); so is a
        saved policy from before epochs existed (it keeps its revision). A failed save is logged
        and the policy still used (in memory only: a command then fails to save and is refused).
        """
        policy, kind = self._load()
        reason = self.last_error if kind is not StartKind.LOADED else None
        if kind is StartKind.LOADED and policy.epoch:
            return policy, PolicyStart(kind)
        policy = replace(policy, epoch=new_epoch())
        if kind is StartKind.UNUSABLE:
            aside = self.path.with_name(f"{POLICY_FILE}.unusable-{policy.epoch}")
            try:
                os.replace(self.path, aside)
                _LOGGER.warning("The unusable policy file was kept as %s", aside)
            except OSError as err:
                _LOGGER.warning("Could not set the unusable policy file aside: %s", err.strerror or err)
        try:
            self.save(policy)
        except OSError as err:
            _LOGGER.error("Could not save the policy to %s: %s; it holds in memory only",
                          self.path, err.strerror or err)
            return policy, PolicyStart(kind, reason, saved=False)
        return policy, PolicyStart(kind, reason)

    def save(self, policy: Policy) -> None:
        """Persist `policy` atomically (survives ``kill -9``); raises OSError on failure."""
        write_json_atomic(self.path, {"format": FORMAT, "policy": policy.to_json()})


class AuditStore:
    """Persists the audit counters (numbers only, never content) next to the policy."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / AUDIT_FILE

    def load(self) -> dict[str, int]:
        """The saved counters, or {} if missing or unusable (logged); never raises."""
        try:
            data = _read_document(self.path, "counters")
        except FileNotFoundError:
            return {}
        except StoredFileError as err:
            _LOGGER.warning("Audit counters start from zero: %s", err)
            return {}
        if not isinstance(data, Mapping):
            _LOGGER.warning("Audit counters start from zero: %s is malformed", self.path)
            return {}
        return {
            str(k): v
            for k, v in data.items()
            if isinstance(v, int) and not isinstance(v, bool) and v >= 0
        }

    def save(self, counters: Mapping[str, int]) -> None:
        """Persist `counters` atomically; raises OSError on failure."""
        write_json_atomic(self.path, {"format": FORMAT, "counters": dict(counters)})
