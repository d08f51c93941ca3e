"""The satellite program and fatal errors for sessions that are not its stream's (in process).

After a broker blip the bridge may publish the interrupted session's fatal error late, while the
reconnected satellite already streams its next command: that error must not end the new stream.
Errors for the stream's own session, and satellite-wide ones, still do. A `unknown_satellite`
error (the bridge forgot a satellite silent too long) makes it announce itself again.
"""

from __future__ import annotations

import json
import time

from hearth_satellite.satellite import Options, Satellite, Stream

TOPIC = "hearth/satellite/t/"


def _error(session_id: str | None, code: str = "audio_timeout") -> bytes:
    return json.dumps({"session_id": session_id, "satellite": "t", "code": code, "message": "m",
                       "fatal": True}).encode()


async def test_an_earlier_sessions_error_does_not_end_the_new_stream() -> None:
    sat = Satellite(Options(sat_id="t", snd_command=None))
    try:
        sat.stream = Stream(1, time.monotonic())
        await sat._on_message(TOPIC + "state", json.dumps({"state": "listening", "session_id": "old"}).encode())
        assert sat.stream.session_id == "old"
        sat._end_stream("idle")  # the broker went away mid-utterance
        sat.stream = Stream(2, time.monotonic())  # reconnected: the next command, not yet named by the bridge
        await sat._on_message(TOPIC + "error", _error("old"))
        await sat._on_message(TOPIC + "command", json.dumps({"command": "stop_streaming", "session_id": "old"}).encode())
        await sat._on_message(TOPIC + "state", json.dumps({"state": "listening", "session_id": "old"}).encode())
        assert sat.stream is not None and sat.stream.stream_id == 2 and sat.stream.session_id is None
        await sat._on_message(TOPIC + "state", json.dumps({"state": "listening", "session_id": "new"}).encode())
        assert sat.stream.session_id == "new"
        await sat._on_message(TOPIC + "error", _error("old"))
        await sat._on_message(TOPIC + "error", _error("another"))
        assert sat.stream is not None and sat.stream.stream_id == 2
        await sat._on_message(TOPIC + "error", _error("new", "no_speech"))  # its own session's end
        assert sat.stream is None and sat.phase == "idle"
        sat.stream = Stream(3, time.monotonic())
        await sat._on_message(TOPIC + "error", _error(None, "too_many_satellites"))  # satellite-wide
        assert sat.stream is None
    finally:
        sat.wake.close()
        await sat.hooks.close()


async def test_unknown_satellite_makes_it_announce_itself_again() -> None:
    sat = Satellite(Options(sat_id="t", snd_command=None))
    announced: list[tuple[str, bytes]] = []

    async def publish(topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        announced.append((topic, payload))
        return True

    sat._publish = publish  # type: ignore[method-assign]  # what would go to the broker
    try:
        await sat._on_message(TOPIC + "error", _error(None, "unknown_satellite"))
        for task in list(sat._tasks):
            await task
        ((topic, payload),) = announced
        assert topic == TOPIC + "status" and json.loads(payload)["state"] == "online"
    finally:
        sat.wake.close()
        await sat.hooks.close()


async def test_the_status_is_announced_again_well_within_the_bridges_expiry(monkeypatch) -> None:  # noqa: ANN001
    import asyncio

    from bridge.service.table import ONLINE_SILENCE_EXPIRY
    from hearth_satellite import satellite as module

    assert module.STATUS_REFRESH * 3 <= ONLINE_SILENCE_EXPIRY  # two refreshes may be lost
    monkeypatch.setattr(module, "STATUS_REFRESH", 0.02)
    sat = Satellite(Options(sat_id="t", snd_command=None))
    announced: list[str] = []

    async def publish(topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        announced.append(topic)
        return True

    sat._publish = publish  # type: ignore[method-assign]
    refresh = asyncio.create_task(sat._refresh_status())
    try:
        await asyncio.sleep(0.15)
    finally:
        refresh.cancel()
        await asyncio.gather(refresh, return_exceptions=True)
        sat.wake.close()
        await sat.hooks.close()
    assert len(announced) >= 3 and set(announced) == {TOPIC + "status"}
