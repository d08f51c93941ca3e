"""A simulated satellite: plays a WAV file over MQTT in real time and waits for the result.

Used by `hearth-bridge satellite`, the demo, the tests and the benchmarks; also handy for people
debugging a real setup ("does the bridge hear this recording?").
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import PROTOCOL_VERSION
from ..audio.resample import convert
from ..audio.wav import make_wav
from ..protocol import hermes
from ..protocol.hearth import RECOMMENDED_FRAME_BYTES, Topics, encode_frame
from ..service.link import Connection, LastWill
from ..settings import MqttSettings

HERMES_FRAME_BYTES = 512  # what the ESP32 firmware sends (16 ms)


class SatelliteError(Exception):
    pass


@dataclass
class SatelliteOptions:
    sat_id: str
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    prefix: str = "hearth"
    protocol: str = "hearth"  # hearth | hermes
    wake: str = "event"  # event: tell the bridge (wake event / startListening); bridge: the bridge hears the wake word
    timeout: float = 15.0
    realtime: bool = True
    trailing_silence: float = 3.0  # keep streaming silence after the file, as a live microphone does
    area: str | None = None  # the vocabulary area announced in the status ("what is the temperature")
    end_of_speech: float | None = None  # seconds into the audio where speech ends (default: measured)
    wake_probability: float | None = None  # sent with the wake event (arbitration)
    speech_db: float | None = None  # sent with the wake event: the wake word's level above the noise floor


def load_wav_pcm16k(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        data = wav.readframes(wav.getnframes())
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
    if (rate, width, channels) == (16000, 2, 1):
        return data
    return convert(data, rate, width, channels)


def wake_level_db(pcm: bytes, noise_floor_dbfs: float = -70.0) -> float:
    """The level a satellite reports as `speech_db`: the RMS of the last second of voiced 30 ms
    frames (those 6 dB or more above the noise floor) above the noise floor, in dB."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    hop = 480
    n = len(x) // hop
    power = np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) / 32768.0**2
    voiced = power[10 * np.log10(power + 1e-12) > noise_floor_dbfs + 6][-33:]
    if not len(voiced):
        return 0.0
    return round(10 * float(np.log10(np.mean(voiced))) - noise_floor_dbfs, 1)


def end_of_speech_offset(pcm: bytes, rate: int = 16000) -> float:
    """Seconds into the audio where speech ends: the last 10 ms whose energy is within 40 dB of the peak."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    hop = rate // 100
    n = len(samples) // hop
    if n == 0:
        return 0.0
    rms = np.sqrt(np.mean(samples[: n * hop].reshape(n, hop) ** 2, axis=1)) + 1e-3
    db = 20 * np.log10(rms / 32768)
    voiced = np.nonzero(db > max(db.max() - 40, -60))[0]
    return float((voiced[-1] + 1) * hop / rate) if len(voiced) else 0.0


async def run_satellite(options: SatelliteOptions, pcm: bytes) -> dict[str, Any]:
    """Streams `pcm` (16 kHz mono 16-bit) as a satellite; returns the result as a dict."""
    o = options
    topics = Topics(o.prefix)
    eos = o.end_of_speech if o.end_of_speech is not None else end_of_speech_offset(pcm)
    result: dict[str, Any] = {"satellite": o.sat_id, "protocol": o.protocol, "transcript": None, "latency_ms": None}
    session_id = uuid.uuid4().hex
    status_topic = topics.satellite(o.sat_id, "status")
    will = None
    if o.protocol == "hearth":
        will = LastWill(status_topic, json.dumps({"state": "offline"}).encode(), retain=True)
    mqtt = MqttSettings(host=o.host, port=o.port, username=o.username, password=o.password)
    async with Connection(mqtt, f"hearth-sim-{o.sat_id}-{uuid.uuid4().hex[:6]}", will) as client:
        if o.protocol == "hearth":
            await client.subscribe(topics.satellite(o.sat_id, "transcript"))
            await client.subscribe(topics.satellite(o.sat_id, "intent"))
            await client.subscribe(topics.satellite(o.sat_id, "error"))
            await client.subscribe(topics.satellite(o.sat_id, "command"))
            await client.subscribe(topics.satellite(o.sat_id, "wake"))
            await client.subscribe(topics.satellite(o.sat_id, "state"))
            await client.publish(status_topic, json.dumps({
                "state": "online", "protocol": PROTOCOL_VERSION, "name": o.sat_id,
                "audio": {"rate": 16000, "width": 2, "channels": 1},
                "capabilities": {"wake_word": o.wake == "event", "speaker": True, "mute": True},
                **({"area": o.area} if o.area else {}),
            }).encode(), qos=1, retain=True)
        else:
            for topic in (hermes.TEXT_CAPTURED, hermes.ERROR_ASR, hermes.INTENT_PARSED, hermes.INTENT_NOT_RECOGNIZED):
                await client.subscribe(topic)
        await asyncio.sleep(0.2)  # let the bridge see the status before audio
        done = asyncio.Event()
        stop_streaming = asyncio.Event()
        eos_sent_at: list[float] = []
        # Which session is ours: the first the bridge announces on `wake` after our wake. An error
        # for any other session (one interrupted before, e.g. by a broker outage, whose error comes
        # late) is not the end of our utterance; nor is one for a session the retained `state`
        # named before our wake.
        woke = asyncio.Event()
        ours: list[str] = []
        before: set[str] = set()

        def other_session(session: object) -> bool:
            if not isinstance(session, str) or not session:
                return False
            return session != ours[0] if ours else session in before

        async def receive() -> None:
            async for message in client.messages():
                if not message.payload:
                    continue  # a retained state cleared
                data = json.loads(message.payload)
                topic = message.topic
                if o.protocol == "hermes" and data.get("siteId") != o.sat_id:
                    continue
                if topic.endswith("/wake") or topic.endswith("/state"):
                    session = data.get("session_id") if isinstance(data, dict) else None
                    if isinstance(session, str) and session:
                        if not woke.is_set():
                            before.add(session)
                        elif topic.endswith("/wake") and not ours:
                            ours.append(session)
                elif topic.endswith("/transcript") or topic == hermes.TEXT_CAPTURED:
                    result["transcript"] = data.get("text", "")
                    result["rejected"] = bool(data.get("rejected", False))
                    result["confidence"] = data.get("confidence", data.get("likelihood"))
                    result["bridge_latency_ms"] = data.get("latency_ms")
                    result["session_id"] = data.get("session_id", data.get("sessionId"))
                    if eos_sent_at:
                        result["latency_ms"] = round((time.monotonic() - eos_sent_at[0]) * 1000, 1)
                elif topic.endswith("/intent"):
                    result["intent"] = data.get("intent")
                    done.set()
                elif topic in (hermes.INTENT_PARSED, hermes.INTENT_NOT_RECOGNIZED):
                    result["intent"] = data.get("intent", {}).get("intentName") if topic == hermes.INTENT_PARSED else None
                    result["hermes_intent"] = data if topic == hermes.INTENT_PARSED else None
                    done.set()
                elif topic.endswith("/command"):
                    if other_session(data.get("session_id")):
                        continue  # a late command of an earlier session
                    if data.get("command") == "stop_streaming":
                        stop_streaming.set()
                    elif data.get("command") == "stand_down":  # another satellite answers
                        result["stood_down"] = True
                        stop_streaming.set()
                        done.set()
                elif topic.endswith("/error") or topic == hermes.ERROR_ASR:
                    if not data.get("session_id", data.get("sessionId")) or data.get("fatal") is False:
                        continue  # not the end of our utterance (e.g. a dropped frame)
                    if o.protocol == "hearth" and other_session(data.get("session_id")):
                        continue  # another session's end, not ours
                    result["error"] = {"code": data.get("code", data.get("context")), "message": data.get("message", data.get("error"))}
                    if o.protocol == "hermes" and result["transcript"] is None:
                        result["transcript"] = ""
                        result["rejected"] = True
                        if eos_sent_at:
                            result["latency_ms"] = round((time.monotonic() - eos_sent_at[0]) * 1000, 1)
                    done.set()

        receiver = asyncio.create_task(receive())
        await asyncio.sleep(0)  # the receiver takes what arrived so far (the retained state) first
        stream_id = random.randrange(1 << 32)
        woke.set()
        if o.wake == "event":
            if o.protocol == "hearth":
                event: dict[str, Any] = {"type": "wake", "wake_word": "okay_nabu", "stream_id": stream_id}
                if o.wake_probability is not None:
                    event["wake_probability"] = o.wake_probability
                if o.speech_db is not None:
                    event["speech_db"] = o.speech_db
                await client.publish(topics.satellite(o.sat_id, "event"), json.dumps(event).encode())
            else:
                await client.publish(hermes.START_LISTENING, json.dumps(
                    {"siteId": o.sat_id, "sessionId": session_id, "stopOnSilence": True, "lang": None}).encode())
            await asyncio.sleep(0.05)
        frame_bytes = RECOMMENDED_FRAME_BYTES if o.protocol == "hearth" else HERMES_FRAME_BYTES
        silence = bytes(int(o.trailing_silence * 32000))
        audio = pcm + silence
        eos_byte = int(eos * 32000)
        started = time.monotonic()
        deadline = None
        seq = 0
        for offset in range(0, len(audio), frame_bytes):
            if done.is_set() or stop_streaming.is_set():
                break
            chunk = audio[offset : offset + frame_bytes]
            if o.realtime:
                delay = started + offset / 32000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if o.protocol == "hearth":
                await client.publish(topics.satellite(o.sat_id, "audio"), encode_frame(stream_id, seq, chunk))
            else:
                await client.publish(f"hermes/audioServer/{o.sat_id}/audioFrame", make_wav(chunk))
            seq += 1
            if not eos_sent_at and offset + len(chunk) >= eos_byte:
                # The frame holding the end of speech has left: this is when the user stopped talking.
                eos_sent_at.append(time.monotonic() - max(0.0, (offset + len(chunk) - eos_byte) / 32000))
        deadline = time.monotonic() + o.timeout
        while not done.is_set() and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(done.wait(), 0.1)
            except TimeoutError:
                pass
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
        if o.protocol == "hearth":
            await client.publish(status_topic, json.dumps({"state": "offline"}).encode(), qos=1, retain=True)
    if result["transcript"] is None and not result.get("stood_down"):
        raise SatelliteError(f"no result from the bridge within {o.timeout:.0f} s"
                             + (f" ({result['error']['code']}: {result['error']['message']})" if result.get("error") else ""))
    result["end_of_speech_s"] = round(eos, 3)
    result["end_of_speech_monotonic"] = eos_sent_at[0] if eos_sent_at else None
    return result
