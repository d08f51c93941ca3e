"""Signing commands as Home Assistant does (bridge/privacy/auth.py), for tests that send them.

The key is the one the bridge made in its data directory (`pairing.json`) on first start or
build; the sequence number is max(last + 1, time in ms), as the integration keeps it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bridge.privacy.auth import PAIRING_FILE, sign

_last_seq = 0


def next_seq() -> int:
    global _last_seq  # noqa: PLW0603 - one counter for the whole test process
    _last_seq = max(_last_seq + 1, time.time_ns() // 1_000_000)
    return _last_seq


def pairing_key(data_dir: Path) -> bytes:
    """The key the bridge made in `data_dir`."""
    return bytes.fromhex(json.loads((data_dir / PAIRING_FILE).read_text())["key"])


def signed(key: bytes | Path, topic: str, body: bytes | str | dict[str, object], seq: int | None = None) -> bytes:
    """`body` (bytes as they are, text as UTF-8, a dict as JSON) signed for `topic`; `key` may be
    the bridge's data directory."""
    if isinstance(key, Path):
        key = pairing_key(key)
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    return sign(key, topic, next_seq() if seq is None else seq, raw)
