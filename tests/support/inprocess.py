"""A real bridge built in process and never started: no broker, no decoder workers.

Messages go in through `Bridge.dispatch`; what the bridge would publish is read back from its
MQTT link's outgoing queue with :func:`sent`. Used by the dispatcher, satellite-table, Hermes
isolation and hardening tests.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bridge.config import validate
from bridge.service import Bridge, build_bridge

type Messages = list[tuple[str, bytes | dict[str, object], bool]]


def in_process_bridge(data_dir: Path, **config: object) -> Bridge:
    """A bridge for these config keys (on top of: no status API, no voice, id "test")."""
    raw: dict[str, object] = {"data_dir": str(data_dir), "bridge_id": "test", "status_api": {"enabled": False},
                              "tts": {"engine": "none"}}
    raw.update(config)
    return build_bridge(validate(raw))


async def close_in_process(bridge: Bridge) -> None:
    """Closes every satellite and waits for the ones being forgotten."""
    for sat in list(bridge.satellites.values()):
        await sat.close()
    await asyncio.gather(*bridge._closing, return_exceptions=True)  # noqa: SLF001


def send_signed(bridge: Bridge, topic: str, payload: bytes) -> None:
    """A command as Home Assistant sends it: signed with the bridge's pairing key
    (bridge/privacy/auth.py; tests/support/signing.py), then dispatched."""
    from tests.support.signing import signed

    assert bridge.auth.pairing.key is not None
    bridge.dispatch(topic, signed(bridge.auth.pairing.key, topic, payload))


def sent(bridge: Bridge) -> Messages:
    """Everything queued for the broker so far, JSON decoded where it is JSON (the queue emptied)."""
    out: Messages = []
    queue = bridge.link._outgoing  # noqa: SLF001 - the test reads what would go out
    while not queue.empty():
        topic, data, retain = queue.get_nowait()
        try:
            out.append((topic, json.loads(data), retain))
        except (UnicodeDecodeError, json.JSONDecodeError):
            out.append((topic, data, retain))
    return out


def on(messages: Messages, topic: str) -> list[dict[str, object]]:
    """The JSON objects published on `topic`, in order."""
    return [data for t, data, _ in messages if t == topic and isinstance(data, dict)]
