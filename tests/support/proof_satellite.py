"""A bare simulated satellite for the proof tests: it only streams, it never stops early.

`bridge.tools.satellite.run_satellite` ends a session at the first `<sat>/error` (or Hermes
`hermes/error/asr`) that carries a session id. When a refused cloud engine is replaced by the
local recognizer, the bridge reports that refusal on those topics while the session goes on, so
the proofs that configure a cloud engine use this satellite and read the results with a Probe.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid

import aiomqtt

from bridge import PROTOCOL_VERSION
from bridge.audio.wav import make_wav
from bridge.protocol import hermes
from bridge.protocol.hearth import RECOMMENDED_FRAME_BYTES, Topics, encode_frame


async def stream_command(host: str, port: int, sat_id: str, pcm: bytes, protocol: str = "hearth",
                         prefix: str = "hearth", trailing_silence: float = 2.0,
                         stop: asyncio.Event | None = None) -> str:
    """Announces the satellite (Hearth), starts a session (wake event / startListening) and
    streams `pcm` plus silence in real time, until done or `stop` is set. Returns the session id
    it asked for (Hermes) or ''."""
    topics = Topics(prefix)
    session_id = uuid.uuid4().hex if protocol == "hermes" else ""
    async with aiomqtt.Client(host, port, identifier=f"proof-sat-{sat_id}-{uuid.uuid4().hex[:6]}") as client:
        stream_id = random.randrange(1 << 32)
        if protocol == "hearth":
            await client.publish(topics.satellite(sat_id, "status"), json.dumps({
                "state": "online", "protocol": PROTOCOL_VERSION, "name": sat_id,
                "audio": {"rate": 16000, "width": 2, "channels": 1},
                "capabilities": {"wake_word": True, "speaker": True, "mute": True}}), qos=1, retain=True)
            await asyncio.sleep(0.2)
            await client.publish(topics.satellite(sat_id, "event"),
                                 json.dumps({"type": "wake", "wake_word": "okay_nabu", "stream_id": stream_id}))
        else:
            await client.publish(hermes.START_LISTENING, json.dumps(
                {"siteId": sat_id, "sessionId": session_id, "stopOnSilence": True, "lang": None}))
        await asyncio.sleep(0.05)
        frame = RECOMMENDED_FRAME_BYTES if protocol == "hearth" else 512
        audio = pcm + bytes(int(trailing_silence * 32000))
        started = time.monotonic()
        for seq, offset in enumerate(range(0, len(audio), frame)):
            if stop is not None and stop.is_set():
                break
            delay = started + offset / 32000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = audio[offset : offset + frame]
            if protocol == "hearth":
                await client.publish(topics.satellite(sat_id, "audio"), encode_frame(stream_id, seq, chunk))
            else:
                await client.publish(f"hermes/audioServer/{sat_id}/audioFrame", make_wav(chunk))
    return session_id
