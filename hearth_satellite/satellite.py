"""The satellite: microphone → wake word → Hearth frames; answers and sounds → speaker.

Privacy rules kept here, in one place (:meth:`Satellite._on_chunk`): a frame is published only
while a stream is open; a stream opens only after the wake word (or the bridge's
`start_streaming`, which it sends for a conversation it continues); no stream is open, and
no wake word is listened for, while the satellite is muted — by the bridge (its `mute` command or
its retained state), by the mute file, or by SIGUSR1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shlex
import signal
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from . import __version__
from .audio import Cleanup, LevelMeter, Sound
from .hooks import Hooks
from .protocol import (
    FRAME_BYTES,
    PROTOCOL_VERSION,
    RATE,
    WAKE_WORDS,
    SatelliteTopics,
    decode_frame,
    dumps,
    encode_frame,
    loads,
)
from .wake import WakeWord

_LOGGER = logging.getLogger(__name__)

DEFAULT_MIC = "arecord -r 16000 -c 1 -f S16_LE -t raw"
DEFAULT_SND = "aplay -r {rate} -c 1 -f S16_LE -t raw"
#: The status is announced again this often: the bridge forgets an "online" satellite it has heard
#: nothing from for 15 minutes (docs/protocol.md, "The satellite table").
STATUS_REFRESH = 300.0


@dataclass
class Options:
    sat_id: str
    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "hearth"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    name: str | None = None
    area: str | None = None
    mic_command: str = DEFAULT_MIC
    snd_command: str | None = DEFAULT_SND
    play_rate: int = 16000
    wake_word: str = "okay_nabu"
    wake_sound: Path | None = None
    done_sound: Path | None = None
    noise_suppression: int = 0
    auto_gain: int = 0
    mute_file: Path | None = None
    max_stream_seconds: float = 15.0
    refractory_seconds: float = 2.0
    reconnect_max: float = 30.0
    hooks: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Stream:
    stream_id: int
    started: float
    seq: int = 0
    session_id: str | None = None  #: the bridge's session, once its state has named it


class Player:
    """One `--snd-command` at a time: an answer from the bridge (chunks on `play`) or a sound."""

    def __init__(self, command: str | None) -> None:
        self.command = command
        self.proc: asyncio.subprocess.Process | None = None
        self.play_id: int | None = None  # the stream id of the bridge's answer being played
        self.next_seq = 0

    @property
    def busy(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, rate: int, play_id: int | None) -> bool:
        self.stop()
        self.play_id, self.next_seq = play_id, 0
        if not self.command:
            return False
        argv = shlex.split(self.command.replace("{rate}", str(rate)))
        try:
            self.proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                             stdout=asyncio.subprocess.DEVNULL)
        except OSError as err:
            _LOGGER.error("--snd-command failed: %s", err)
            self.proc = None
            return False
        return True

    async def write(self, pcm: bytes) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(pcm)
            await proc.stdin.drain()

    async def finish(self) -> None:
        """Closes the command's input and waits until it has played everything."""
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.close()
                await proc.stdin.wait_closed()
        await proc.wait()
        if self.proc is proc:
            self.proc = None
            self.play_id = None

    def stop(self) -> None:
        proc, self.proc, self.play_id = self.proc, None, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    async def play_sound(self, sound: Sound) -> None:
        if await self.start(sound.rate, None):
            proc = self.proc
            await self.write(sound.pcm)
            if self.proc is proc:
                await self.finish()


class Satellite:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.topics = SatelliteTopics(options.prefix, options.sat_id)
        if options.wake_word not in WAKE_WORDS:
            raise ValueError(f"unknown wake word {options.wake_word!r}; one of {', '.join(WAKE_WORDS)}")
        self.wake = WakeWord(options.wake_word)
        self.cleanup = Cleanup(options.noise_suppression, options.auto_gain) \
            if options.noise_suppression or options.auto_gain else None
        self.wake_sound = Sound.load(options.wake_sound) if options.wake_sound else None
        self.done_sound = Sound.load(options.done_sound) if options.done_sound else None
        self.hooks = Hooks(options.hooks)
        self.meter = LevelMeter(chunk_seconds=FRAME_BYTES / 2 / RATE)
        self.player = Player(options.snd_command)
        self.client: aiomqtt.Client | None = None
        self.stream: Stream | None = None
        self.phase = "idle"
        self.bridge_muted = False
        self.signal_muted = False
        self.muted = False
        self.frames_sent = 0
        self.wakes = 0
        self._quiet_until = 0.0  # no wake word before this (monotonic): refractory time
        self._ended_sessions: deque[str] = deque(maxlen=8)  # the bridge's sessions of streams that ended
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sound_task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- running

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, self._set_signal_mute, True)
        loop.add_signal_handler(signal.SIGUSR2, self._set_signal_mute, False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        mic = asyncio.create_task(self._mic_loop(), name="mic")
        mqtt = asyncio.create_task(self._mqtt_loop(), name="mqtt")
        try:
            await self._stopping.wait()
        finally:
            mic.cancel()
            await asyncio.gather(mic, return_exceptions=True)
            self.player.stop()
            client = self.client
            if client is not None:
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.publish(self.topics.status, dumps({"state": "offline"}), qos=1, retain=True)
            mqtt.cancel()
            await asyncio.gather(mqtt, return_exceptions=True)
            await self.hooks.close()
            self.wake.close()

    def stop(self) -> None:
        self._stopping.set()

    def _spawn(self, coro: object, name: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("%s failed", task.get_name(), exc_info=task.exception())

    # ---------------------------------------------------------------- MQTT

    def status(self) -> dict[str, object]:
        data: dict[str, object] = {
            "state": "online", "protocol": PROTOCOL_VERSION, "name": self.o.name or self.o.sat_id,
            "audio": {"rate": RATE, "width": 2, "channels": 1},
            "capabilities": {"wake_word": True, "speaker": bool(self.o.snd_command), "mute": True,
                             "barge_in": False},
            "wake_word": self.wake.name, "play_rate": self.o.play_rate, "muted": self.muted,
            "software": {"name": "hearth-satellite", "version": __version__},
        }
        if self.o.area:
            data["area"] = self.o.area
        return data

    async def _mqtt_loop(self) -> None:
        delay = 1.0
        tls = None
        if self.o.ca_file:
            tls = ssl.create_default_context(cafile=self.o.ca_file)
        while not self._stopping.is_set():
            will = aiomqtt.Will(self.topics.status, dumps({"state": "offline"}), qos=1, retain=True)
            try:
                async with aiomqtt.Client(self.o.host, self.o.port, username=self.o.username,
                                          password=self.o.password, will=will, keepalive=20, tls_context=tls,
                                          identifier=f"hearth-satellite-{self.o.sat_id}") as client:
                    for leaf in SatelliteTopics.INBOUND:
                        await client.subscribe(f"{self.topics.prefix}/satellite/{self.o.sat_id}/{leaf}", qos=1)
                    self.client = client
                    await self._publish_status()
                    _LOGGER.info("Connected to %s:%s as %s", self.o.host, self.o.port, self.o.sat_id)
                    delay = 1.0
                    refresh = asyncio.get_running_loop().create_task(self._refresh_status(), name="status-refresh")
                    try:
                        async for message in client.messages:
                            await self._on_message(str(message.topic), bytes(message.payload))
                    finally:
                        refresh.cancel()
            except aiomqtt.MqttError as err:
                _LOGGER.warning("MQTT: %s; reconnecting in %.1f s", err, delay)
            finally:
                self.client = None
                if self.stream is not None:  # the rest of the command cannot reach the bridge
                    self._end_stream("idle")
            try:
                await asyncio.wait_for(self._stopping.wait(), delay * random.uniform(0.5, 1.0))
            except TimeoutError:
                pass
            delay = min(self.o.reconnect_max, delay * 2)

    async def _publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        client = self.client
        if client is None:
            return False
        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as err:
            _LOGGER.debug("publish on %s failed: %s", topic, err)
            return False
        return True

    async def _publish_status(self) -> None:
        await self._publish(self.topics.status, dumps(self.status()), qos=1, retain=True)

    async def _refresh_status(self) -> None:
        while True:
            await asyncio.sleep(STATUS_REFRESH)
            await self._publish_status()

    async def _on_message(self, topic: str, payload: bytes) -> None:
        leaf = self.topics.leaf(topic)
        if leaf == "play":
            await self._on_play(payload)
            return
        data = loads(payload) if payload else None
        _LOGGER.debug("%s: %s", leaf, data)
        if data is None:
            return
        if leaf == "command":
            self._on_command(data)
        elif leaf == "state":
            self._on_state(data)
        elif leaf == "error" and data.get("fatal") is True:
            if data.get("code") == "unknown_satellite":  # the bridge forgot us (silent too long): announce again
                self._spawn(self._publish_status(), "status")
            session_id = data.get("session_id")
            if self._other_session(session_id):
                # An earlier session's end (e.g. one a broker outage interrupted) must not end this stream.
                _LOGGER.debug("error %s for session %s, not this stream's: ignored", data.get("code"), session_id)
                return
            if self.stream is not None:
                self._end_stream("error")
            self.hooks.fire("error", code=data.get("code"), session_id=data.get("session_id"))
            if self.phase != "muted":
                self._set_phase("idle")

    def _on_command(self, data: dict[str, object]) -> None:
        command = data.get("command")
        session_id = data.get("session_id")
        if command in ("stop_streaming", "stand_down"):
            if self._other_session(session_id):
                _LOGGER.debug("%s for session %s, not this stream's: ignored", command, session_id)
            elif command == "stand_down":
                # Lost the arbitration: stop at once, no sound, back to listening for the wake word.
                if self.stream is not None:
                    self._end_stream("idle")
                self._stop_sounds()
                if self.phase != "muted":
                    self._set_phase("idle", session_id=session_id)
            elif self.stream is not None:
                self._end_stream("thinking")
                if self.done_sound is not None:
                    self._play_sound(self.done_sound)
        elif command in ("mute", "unmute"):
            self.bridge_muted = command == "mute"
            self._update_mute()
        elif command == "stop_playback":
            self._stop_sounds()
            if self.phase == "speaking":
                self._set_phase("idle")
        elif command == "start_streaming":
            # The bridge continues a conversation (it asked a question): stream without a wake word.
            self._update_mute()
            if not self.muted and self.stream is None and self.client is not None:
                self.stream = Stream(random.randrange(1 << 32), time.monotonic(),
                                     session_id=session_id if isinstance(session_id, str) else None)
                self._set_phase("listening", session_id=session_id)

    def _other_session(self, session_id: object) -> bool:
        """Whether a command or error names a session other than the one this stream belongs to (a
        late message of an earlier session, e.g. one a broker outage interrupted, must not end the
        current stream). Until the bridge's state has named the stream's session, only the
        sessions of streams that already ended count as other."""
        stream = self.stream
        if stream is None or not isinstance(session_id, str):
            return False
        if stream.session_id is not None:
            return session_id != stream.session_id
        return session_id in self._ended_sessions

    def _on_state(self, data: dict[str, object]) -> None:
        session_id = data.get("session_id")
        if (self.stream is not None and self.stream.session_id is None and data.get("state") == "listening"
                and isinstance(session_id, str) and session_id not in self._ended_sessions):
            self.stream.session_id = session_id
        muted = data.get("muted")
        if isinstance(muted, bool) and muted != self.bridge_muted:
            self.bridge_muted = muted
            self._update_mute()
        settings = data.get("settings")
        if isinstance(settings, dict) and "wake_word" in settings:
            chosen = settings.get("wake_word")
            wanted = chosen if isinstance(chosen, str) and chosen in WAKE_WORDS else self.o.wake_word
            if wanted != self.wake.name:
                _LOGGER.info("Wake word %s (set in Home Assistant)", wanted)
                old, self.wake = self.wake, WakeWord(wanted)
                old.close()
                self._spawn(self._publish_status(), "status")
        if data.get("state") == "idle" and self.phase == "thinking" and not self.player.busy:
            self._set_phase("idle")

    async def _on_play(self, payload: bytes) -> None:
        frame = decode_frame(payload)
        if frame is None:
            return
        self._update_mute()
        if self.muted:
            return
        if frame.stream_id != self.player.play_id:
            if frame.seq != 0:
                return  # the rest of an answer that was stopped
            self._cancel_sound_task()
            if not await self.player.start(self.o.play_rate, frame.stream_id):
                self.player.play_id = frame.stream_id
            self._set_phase("speaking")
        if frame.seq != self.player.next_seq:
            _LOGGER.debug("play chunk %s, expected %s", frame.seq, self.player.next_seq)
        self.player.next_seq = frame.seq + 1
        await self.player.write(frame.pcm)
        if frame.last:
            play_id = frame.stream_id
            self._spawn(self._finish_play(play_id), "played")

    async def _finish_play(self, play_id: int) -> None:
        await self.player.finish()
        await self._publish(self.topics.event, dumps({"type": "played"}), qos=1)
        if self.phase == "speaking" and self.player.play_id in (None, play_id):
            self._set_phase("idle")

    # ---------------------------------------------------------------- sounds and hooks

    def _play_sound(self, sound: Sound) -> None:
        if self.player.busy or self.muted:
            return
        self._cancel_sound_task()
        self._sound_task = asyncio.get_running_loop().create_task(self.player.play_sound(sound), name="sound")

    def _cancel_sound_task(self) -> None:
        if self._sound_task is not None and not self._sound_task.done():
            self._sound_task.cancel()
        self._sound_task = None

    def _stop_sounds(self) -> None:
        self._cancel_sound_task()
        self.player.stop()

    def _set_phase(self, phase: str, **info: object) -> None:
        if phase != self.phase:
            self.phase = phase
            self.hooks.fire(phase, **info)

    # ---------------------------------------------------------------- mute

    def _set_signal_mute(self, muted: bool) -> None:
        self.signal_muted = muted
        self._update_mute()

    def _update_mute(self) -> None:
        file_muted = self.o.mute_file is not None and os.path.exists(self.o.mute_file)
        muted = self.bridge_muted or self.signal_muted or file_muted
        if muted == self.muted:
            return
        self.muted = muted
        if muted:
            if self.stream is not None:
                self._end_stream("muted")
                # abandon the session: the bridge would otherwise wait for the rest of the command
                self._spawn(self._publish(self.topics.event, dumps({"type": "stop"})), "stop")
            self._stop_sounds()
            self._set_phase("muted")
        else:
            self.wake.reset()
            self._set_phase("idle")
        _LOGGER.info("Microphone %s", "muted" if muted else "unmuted")
        self._spawn(self._publish_status(), "status")

    # ---------------------------------------------------------------- audio

    async def _mic_loop(self) -> None:
        argv = shlex.split(self.o.mic_command)
        while True:
            proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                        stdin=asyncio.subprocess.DEVNULL)
            assert proc.stdout is not None
            try:
                while True:
                    chunk = await proc.stdout.readexactly(FRAME_BYTES)
                    await self._on_chunk(chunk)
                    # Let commands (stand_down, stop_streaming, mute) in between any two chunks,
                    # even while catching up with a backlog the pipe had buffered.
                    await asyncio.sleep(0)
            except asyncio.IncompleteReadError:
                _LOGGER.error("--mic-command ended (exit %s); restarting it in 1 s", await proc.wait())
                self.hooks.fire("error", code="mic_ended")
            finally:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            if self.stream is not None:
                self._end_stream("idle")
            await asyncio.sleep(1.0)

    async def _on_chunk(self, chunk: bytes) -> None:
        """One 30 ms chunk of the microphone: the only place audio leaves for the network."""
        self._update_mute()
        if self.muted:
            return  # no wake word, no frame: the audio is dropped here
        if self.cleanup is not None:
            chunk = self.cleanup.process(chunk)
        self.meter.add(chunk)
        stream = self.stream
        if stream is not None:
            if time.monotonic() - stream.started > self.o.max_stream_seconds:
                await self._publish(self.topics.audio, encode_frame(stream.stream_id, stream.seq, b"", last=True))
                self._end_stream("thinking")
                return
            if await self._publish(self.topics.audio, encode_frame(stream.stream_id, stream.seq, chunk)):
                self.frames_sent += 1
            stream.seq += 1
            return
        probability = self.wake.process(chunk)
        if probability is None or time.monotonic() < self._quiet_until or self.client is None:
            return
        await self._woke(probability)

    async def _woke(self, probability: float) -> None:
        self.wakes += 1
        self._quiet_until = time.monotonic() + self.o.refractory_seconds
        stream_id = random.randrange(1 << 32)
        event = {"type": "wake", "wake_word": self.wake.name, "stream_id": stream_id,
                 "wake_probability": round(probability, 3), "speech_db": self.meter.speech_db()}
        _LOGGER.info("Wake word %s (probability %.3f, %.1f dB above the floor)", self.wake.name, probability,
                     event["speech_db"])
        if not await self._publish(self.topics.event, dumps(event)):
            return
        self.stream = Stream(stream_id, time.monotonic())
        if self.player.busy and self.player.play_id is not None:
            self.player.stop()  # the wake word interrupts an answer (the bridge stops it too)
        self._set_phase("wake", wake_word=self.wake.name, stream_id=stream_id)
        self._set_phase("listening", wake_word=self.wake.name, stream_id=stream_id)
        if self.wake_sound is not None:
            self._play_sound(self.wake_sound)

    def _end_stream(self, phase: str) -> None:
        """Stops the stream at once (the next chunk is not sent) and resets the wake word."""
        if self.stream is not None and self.stream.session_id is not None:
            self._ended_sessions.append(self.stream.session_id)
        self.stream = None
        self.wake.reset()
        if self.phase != "muted" or phase == "muted":
            self._set_phase(phase)
