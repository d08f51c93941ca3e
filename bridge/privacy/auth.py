"""Commands that prove where they come from (docs/security.md, promise 6; docs/protocol.md).

Home Assistant and the bridge share a 256-bit key, made when they are paired. Every command that
changes privacy or settings (`policy/set`, `history/purge`, a satellite's `settings/set`) starts
with one header line, then the command's exact bytes:

    hearth-auth1 <key id> <seq> <mac>\\n<body>

- key id: the first 16 hex digits of SHA-256("hearth-key-id\\0" + key): names the key (it gives
  nothing away about it), so a command made with another key is told apart and the config flow
  can check a pasted key against the id the bridge advertises in `bridge/status`;
- seq: a decimal integer greater than the last one the bridge accepted with this key (Home
  Assistant sends max(last + 1, time in ms)); the bridge saves the last accepted one before the
  command is applied, so a replayed or older command is refused, across restarts, without clocks
  having to agree;
- mac: HMAC-SHA256(key, "hearth-auth1\\0" + topic + "\\0" + key id + "\\0" + seq + "\\0" + body),
  hex; compared in constant time. The topic is inside, so a command cannot be moved to another
  topic (a satellite's settings to another satellite).

Where the key lives: `<data_dir>/pairing.json` (mode 0600), made on first start, or the config's
`pairing_key`. The same file keeps the last accepted seq per key id. A file that exists but
cannot be used is never replaced silently: every command is refused (fail closed: the policy in
force stays) until the owner re-pairs (`hearth-bridge pair --rotate`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .store import write_json_atomic

_LOGGER = logging.getLogger(__name__)

SCHEME = b"hearth-auth1"
PAIRING_FILE = "pairing.json"
KEY_BYTES = 32
KEY_RE = re.compile(r"[0-9a-f]{64}")
_HEADER_RE = re.compile(rb"hearth-auth1 ([0-9a-f]{16}) ([1-9][0-9]{0,18}) ([0-9a-f]{64})")
MAX_SEQ = 2**63 - 1
_MAX_FILE = 64 * 1024
#: why a command was refused (the `reason` of a refusal; counted per reason)
REASONS = ("unsigned", "malformed", "no_key", "unknown_key", "bad_mac", "replayed")


class AuthError(Exception):
    """A command was refused; `reason` is one of :data:`REASONS`, str() says why."""

    code = "unauthenticated"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class PairingFileError(Exception):
    """The pairing file exists but cannot be used."""


def normalize_key(text: str) -> str:
    """A key as the owner may paste it (any case, spaces or dashes between groups) → 64 hex."""
    key = re.sub(r"[\s:-]", "", text).lower()
    if not KEY_RE.fullmatch(key):
        raise ValueError("a pairing key is 64 hexadecimal digits (256 bits)")
    return key


def key_id(key: bytes) -> str:
    """The key's public name: 16 hex digits of SHA-256 over a label and the key."""
    return hashlib.sha256(b"hearth-key-id\0" + key).hexdigest()[:16]


def mac(key: bytes, topic: str, kid: str, seq: int, body: bytes) -> str:
    message = b"\0".join((SCHEME, topic.encode("utf-8"), kid.encode("ascii"), str(seq).encode("ascii"), body))
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(key: bytes, topic: str, seq: int, body: bytes) -> bytes:
    """The signed payload for `body` on `topic` (what Home Assistant sends; tests use it too)."""
    kid = key_id(key)
    return b"%s %s %d %s\n%s" % (SCHEME, kid.encode(), seq, mac(key, topic, kid, seq, body).encode(), body)


def split(payload: bytes) -> tuple[bytes | None, bytes]:
    """(header line or None, body): the body is what follows the header (or the whole payload)."""
    if not payload.startswith(SCHEME + b" "):
        return None, payload
    header, _, body = payload.partition(b"\n")
    return header, body


def _read(path: Path) -> dict[str, object]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as err:
        raise PairingFileError(f"cannot open {path}: {err.strerror or err}") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PairingFileError(f"{path} must be a regular file of mode 0600 (is {stat.S_IMODE(info.st_mode):o})")
        raw = os.read(fd, _MAX_FILE + 1)
    except OSError as err:
        raise PairingFileError(f"cannot read {path}: {err.strerror or err}") from err
    finally:
        os.close(fd)
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PairingFileError(f"{path} is corrupt: {err}") from err
    if not isinstance(document, dict) or document.get("format") != 1 or not isinstance(document.get("seq"), dict):
        raise PairingFileError(f'{path} is not a format-1 pairing file')
    return document


@dataclass(slots=True)
class Pairing:
    """The key (None: none usable) and the last accepted seq per key id."""

    key: bytes | None
    seq: dict[str, int]
    problem: str | None = None  #: why there is no usable key


def load_pairing(data_dir: Path, configured_key: str | None = None, *, create: bool = True) -> Pairing:
    """The pairing in `data_dir`; a missing file gets a new key (saved, 0600) when `create`."""
    path = data_dir / PAIRING_FILE
    configured = bytes.fromhex(normalize_key(configured_key)) if configured_key else None
    try:
        document = _read(path)
    except FileNotFoundError:
        key = configured or secrets.token_bytes(KEY_BYTES)
        pairing = Pairing(key, {})
        if create:
            try:
                save_pairing(data_dir, pairing, keep_key=configured is None)
            except OSError as err:
                if configured is not None:  # the key is in the config; the seqs are kept in memory
                    return pairing
                # A key nobody can read back could never be paired: no key, every command refused
                # (the policy in force stays); the next start tries again.
                return Pairing(None, {}, f"cannot save a new pairing key in {path}: {err.strerror or err}")
            if configured is None:
                _LOGGER.warning("Made a new pairing key (id %s) in %s; `hearth-bridge pair` shows it",
                                key_id(key), path)
        return pairing
    except PairingFileError as err:
        if configured is not None:  # the key is in the config; only the seqs were lost: refuse all
            return Pairing(None, {}, f"{err}; the last accepted sequence numbers are lost")
        return Pairing(None, {}, str(err))
    stored_seq = document["seq"]
    assert isinstance(stored_seq, dict)
    seq = {str(k): v for k, v in stored_seq.items() if isinstance(v, int) and not isinstance(v, bool)}
    if configured is not None:
        return Pairing(configured, seq)
    stored = document.get("key")
    if not isinstance(stored, str) or not KEY_RE.fullmatch(stored):
        return Pairing(None, seq, f"{path} holds no usable key")
    return Pairing(bytes.fromhex(stored), seq)


def save_pairing(data_dir: Path, pairing: Pairing, *, keep_key: bool = True) -> None:
    document: dict[str, object] = {"format": 1, "seq": dict(sorted(pairing.seq.items()))}
    if keep_key and pairing.key is not None:
        document["key"] = pairing.key.hex()
    write_json_atomic(data_dir / PAIRING_FILE, document)


def rotate(data_dir: Path) -> bytes:
    """A new key in `data_dir` (re-pairing): every command signed with the old one is refused."""
    key = secrets.token_bytes(KEY_BYTES)
    save_pairing(data_dir, Pairing(key, {}))
    return key


class CommandAuth:
    """Checks signed commands; counts what it refuses."""

    def __init__(self, data_dir: Path, configured_key: str | None = None) -> None:
        self.data_dir = data_dir
        self.configured_key = configured_key
        self.keep_key = configured_key is None
        self.pairing = load_pairing(data_dir, configured_key)
        self.refused = 0
        self.refused_by: dict[str, int] = {}
        #: called when the key changed while the bridge runs (the status announces its id)
        self.on_key_change: Callable[[], None] = lambda: None
        self._unsaved = False
        if self.pairing.key is None:
            _LOGGER.error("No usable pairing key (%s): every policy, purge and settings command is refused until "
                          "the bridge is paired again (`hearth-bridge pair --rotate`)", self.pairing.problem)

    @property
    def key_id(self) -> str | None:
        return key_id(self.pairing.key) if self.pairing.key is not None else None

    def verify(self, topic: str, payload: bytes) -> bytes:
        """The command's body if `payload` is signed with the key, for `topic`, with a new seq.

        The seq is saved before this returns. Raises AuthError (counted) otherwise.
        """
        try:
            return self._verify(topic, payload)
        except AuthError as err:
            self.refused += 1
            self.refused_by[err.reason] = self.refused_by.get(err.reason, 0) + 1
            _LOGGER.warning("Refused a command on %s (%s): %s", topic, err.reason, err)
            raise

    def _refresh(self) -> None:
        """Re-reads the pairing file, so a key rotated (`hearth-bridge pair --rotate`) or lost
        while the bridge runs counts at once. Sequence numbers held only in memory (a save that
        failed) are kept."""
        try:
            fresh = load_pairing(self.data_dir, self.configured_key)
        except OSError as err:  # a new key that cannot be saved: keep the one in force
            _LOGGER.error("Could not read the pairing file: %s", err)
            return
        if fresh.key != self.pairing.key:
            _LOGGER.warning("The pairing key changed (now %s): commands signed with another key are refused",
                            key_id(fresh.key) if fresh.key is not None else f"none: {fresh.problem}")
        changed = fresh.key != self.pairing.key
        for kid, seq in self.pairing.seq.items():
            fresh.seq[kid] = max(seq, fresh.seq.get(kid, 0))
        self.pairing = fresh
        if changed:
            self.on_key_change()

    def _verify(self, topic: str, payload: bytes) -> bytes:
        self._refresh()
        header, body = split(payload)
        if header is None:
            raise AuthError("unsigned", "the command is not signed with the pairing key")
        match = _HEADER_RE.fullmatch(header)
        if match is None:
            raise AuthError("malformed", "the command's signature line is malformed")
        key = self.pairing.key
        if key is None:
            raise AuthError("no_key", f"the bridge has no usable pairing key ({self.pairing.problem})")
        kid, seq, given = match.group(1).decode(), int(match.group(2)), match.group(3).decode()
        if kid != key_id(key):
            raise AuthError("unknown_key", f"signed with key {kid}, not with the bridge's pairing key")
        if seq > MAX_SEQ:
            raise AuthError("malformed", "the command's sequence number is out of range")
        if not hmac.compare_digest(given, mac(key, topic, kid, seq, body)):
            raise AuthError("bad_mac", "the command's signature does not match its topic and content")
        last = self.pairing.seq.get(kid, 0)
        if seq <= last:
            raise AuthError("replayed", f"sequence number {seq} is not after the last accepted one ({last})")
        self.pairing.seq[kid] = seq
        self._save()
        return body

    def _save(self) -> None:
        """Saved before the command is applied; a failure keeps the seq in memory (replays stay
        refused while the bridge runs) so a mute still works on a full disk; retried next time."""
        try:
            save_pairing(self.data_dir, self.pairing, keep_key=self.keep_key)
        except OSError as err:
            if not self._unsaved:
                _LOGGER.error("Could not save the last accepted sequence number: %s", err)
            self._unsaved = True
        else:
            self._unsaved = False

    def stats(self) -> dict[str, object]:
        return {"refused": self.refused, "by_reason": dict(self.refused_by)}
