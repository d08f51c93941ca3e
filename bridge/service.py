"""The bridge service: MQTT in and out, satellites, engines, policy, vocabulary.

This module wires the parts; the parts hold the logic (protocol codecs in `protocol/`, the
satellite state machine in `satellite.py`, decoding in `stt/`, policy in `privacy/`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import pickle
import random
import re
import ssl
import sys
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import aiomqtt
import yaml

from . import PROTOCOL_VERSION, __version__
from .audio.wav import WavError, wav_to_pcm16k
from .engines import EngineError, Locality, SpeechToText, SttStream, Transcript
from .errors import ErrorReporter
from .privacy.audit import AuditEntry, AuditLog, EngineUse
from .privacy.gate import LocalityGate
from .privacy.locality import resolve_address_class
from .privacy.policy import Policy, PolicyError, Retention
from .privacy.retention import UtteranceRetention
from .privacy.store import AuditStore, PolicyStore
from .protocol import hermes
from .protocol.hearth import (
    BRIDGE_OUTBOUND,
    MAX_PIPELINE_PLAY,
    ProtocolError,
    Topics,
    decode_frame,
    dumps,
    parse_json_object,
)
from .recognition import (
    CompiledGrammar,
    Vocabulary,
    VocabularyError,
    load_demo_vocabulary,
    parse_vocabulary,
)
from .recognition.intents import refusal
from .satellite import Protocol, Satellite, Session
from .stt.fallback import FallbackSttStream
from .stt.forward import ForwardStt
from .stt.local import PocketsphinxStt
from .stt.pool import DecoderPool
from .stt.worker import HEADER as WORKER_HEADER

_LOGGER = logging.getLogger("bridge")

HERMES_SITE = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")
OUTGOING_CAP = 2000  # messages waiting while the broker is away; beyond it the oldest go
STATS_INTERVAL = 5.0


async def compile_in_subprocess(vocab: Vocabulary, timeout: float = 300.0) -> tuple[CompiledGrammar, float]:
    """Compiles a grammar in a one-shot child process: the event loop never stalls on it, and
    nothing is left running if the bridge is killed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge.stt.worker", "--compile",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    data = pickle.dumps(vocab, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(WORKER_HEADER.pack(len(data)) + data), timeout)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if len(out) < WORKER_HEADER.size:
        raise RuntimeError(f"grammar compiler exited with {proc.returncode}")
    message = pickle.loads(out[WORKER_HEADER.size :])
    if message[0] == "error":
        raise RuntimeError(message[1])
    return message[1], message[2]


class Bridge:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.topics = Topics(config["mqtt"]["prefix"])
        self.bridge_id: str = config["bridge_id"]
        self.data_dir = Path(config["data_dir"])
        self.errors = ErrorReporter()
        self.satellites: dict[str, Satellite] = {}
        self.hermes_enabled: bool = config["hermes"]["enabled"]
        self.hermes_sites: set[str] = set(config["hermes"]["sites"])
        self.policy_store = PolicyStore(self.data_dir)
        self.audit_store = AuditStore(self.data_dir)
        self.policy: Policy = self.policy_store.load()
        self.audit = AuditLog()
        self.audit.restore_counters(self.audit_store.load())
        self.gate = LocalityGate(lambda: self.policy, self.audit)
        self.retention = UtteranceRetention(lambda: self.policy)
        self.pool = DecoderPool(config["stt"]["workers"])
        self.local_stt = PocketsphinxStt(self.pool)
        self.stt: SpeechToText = self.local_stt
        if config["stt"]["engine"] == "wyoming":
            from .stt.wyoming import WyomingStt

            self.stt = WyomingStt(config["stt"]["host"], config["stt"]["port"], self.gate,
                                  timeout=config["stt"]["timeout"])
        self.tts: Any = None  # wired by speech-out (bridge.tts)
        self.vocabulary: Vocabulary | None = None
        self.grammar: CompiledGrammar | None = None
        self.vocabulary_state: dict[str, Any] = {}
        self._vocab_lock = asyncio.Lock()
        self._client: aiomqtt.Client | None = None
        self._outgoing: asyncio.Queue[tuple[str, bytes, bool]] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.ready = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._stats_dirty = True
        self.status_api_url: str | None = None
        self.counters: dict[str, int] = {"frames": 0, "messages": 0, "dropped_muted": 0, "dropped_outgoing": 0,
                                         "reconnects": 0, "utterances": 0}
        self.last_loop_lag_ms = 0.0
        self.loop_lags: deque[float] = deque(maxlen=1200)  # the last minute, sampled every 50 ms
        self.pending_responses: dict[str, dict[str, Any]] = {}
        self.response_handler: Any = None  # speech-out hooks in here
        self.speech_out: Any = None
        self.wyoming_port: int | None = None
        # Assist pipeline streaming: satellites whose audio Home Assistant recognizes (docs/protocol.md).
        self.pipeline_modes: dict[str, str] = {}
        self.forward_stt = ForwardStt(self.publish, self.topics.satellite, self.gate,
                                      lambda: resolve_address_class(config["mqtt"]["host"], config["mqtt"]["port"]))

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        vocab = self._initial_vocabulary()
        grammar, seconds = await compile_in_subprocess(vocab)
        self.vocabulary, self.grammar = vocab, grammar
        self._set_vocabulary_state("ok", vocab, grammar, seconds, None)
        await self.pool.start(vocab, grammar)
        self.ready.set()

    def _initial_vocabulary(self) -> Vocabulary:
        source = self.config.get("vocabulary")
        if source is None:
            return load_demo_vocabulary()
        if isinstance(source, str):
            path = Path(source)
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as err:
                raise VocabularyError(f"vocabulary file {path}: {err}") from None
            return parse_vocabulary(data)
        return parse_vocabulary(source)

    async def run(self) -> None:
        """Runs until cancelled: MQTT with reconnection, plus housekeeping."""
        if not self.ready.is_set():
            await self.start()
        self._tasks = [
            asyncio.create_task(self._publisher(), name="mqtt-publisher"),
            asyncio.create_task(self._housekeeping(), name="housekeeping"),
            asyncio.create_task(self._loop_lag_probe(), name="loop-lag"),
        ]
        try:
            await self._mqtt_loop()
        finally:
            await self.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for sat in list(self.satellites.values()):
            await sat.close()
        await self.pool.stop()
        with contextlib.suppress(OSError):
            self.audit_store.save(self.audit.counters_to_json())

    # -- MQTT ----------------------------------------------------------------------------------

    def _status_payload(self, online: bool) -> bytes:
        if not online:
            return dumps({"state": "offline", "protocol": PROTOCOL_VERSION, "bridge_id": self.bridge_id})
        engines: dict[str, Any] = {
            "stt": self.stt.describe(),
            "wake": {"name": "pymicro-wakeword", "locality": str(Locality.IN_PROCESS),
                     "default_model": self.config["wake"]["model"]},
            "vad": {"name": "pymicro-vad", "locality": str(Locality.IN_PROCESS)},
            "intent": {"name": "hassil", "locality": str(Locality.IN_PROCESS)},
            "tts": self.tts.describe() if self.tts is not None else None,
        }
        return dumps({
            "state": "online", "protocol": PROTOCOL_VERSION, "version": __version__,
            "bridge_id": self.bridge_id, "prefix": self.topics.prefix, "engines": engines,
            "status_api": self.status_api_url, "wyoming_port": self.wyoming_port,
        })

    def _client_kwargs(self) -> dict[str, Any]:
        mqtt = self.config["mqtt"]
        kwargs: dict[str, Any] = {
            "hostname": mqtt["host"], "port": mqtt["port"], "username": mqtt["username"],
            "password": mqtt["password"], "keepalive": mqtt["keepalive"],
            "identifier": mqtt["client_id"] or f"{self.bridge_id}-{uuid.uuid4().hex[:6]}",
            "will": aiomqtt.Will(self.topics.bridge_status, self._status_payload(False), qos=1, retain=True),
        }
        tls = mqtt["tls"]
        if tls["enabled"]:
            context = ssl.create_default_context(cafile=tls.get("ca_file"))
            if tls.get("cert_file"):
                context.load_cert_chain(tls["cert_file"], tls.get("key_file"))
            if tls["insecure"]:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            kwargs["tls_context"] = context
        return kwargs

    def _subscriptions(self) -> list[str]:
        t = self.topics
        subs = [*t.satellite_wildcards, t.vocabulary_set, t.policy_set, t.history_purge]
        if self.hermes_enabled:
            subs += list(hermes.SUBSCRIPTIONS)
        return subs

    async def _mqtt_loop(self) -> None:
        delay = 0.5
        cap = self.config["mqtt"]["reconnect_max"]
        while True:
            try:
                async with aiomqtt.Client(**self._client_kwargs()) as client:
                    for topic in self._subscriptions():
                        await client.subscribe(topic, qos=0)
                    self._client = client
                    await client.publish(self.topics.bridge_status, self._status_payload(True), qos=1, retain=True)
                    self._republish_retained()
                    self.connected.set()
                    delay = 0.5
                    _LOGGER.info("Connected to MQTT broker %s:%s", self.config["mqtt"]["host"], self.config["mqtt"]["port"])
                    async for message in client.messages:
                        self.dispatch(str(message.topic), message.payload, message.retain)
            except aiomqtt.MqttError as err:
                if self.connected.is_set():
                    _LOGGER.warning("MQTT connection lost: %s", err)
                else:
                    _LOGGER.info("MQTT broker not reachable (%s); retrying in %.1f s", err, delay)
            finally:
                self._client = None
                self.connected.clear()
            self.counters["reconnects"] += 1
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(delay * 2, cap)

    def publish(self, topic: str, payload: bytes | dict[str, Any], retain: bool = False) -> None:
        """Queues a message; the publisher task sends it when connected. Bounded."""
        data = dumps(payload) if isinstance(payload, dict) else payload
        if self._outgoing.qsize() >= OUTGOING_CAP:
            with contextlib.suppress(asyncio.QueueEmpty):
                self._outgoing.get_nowait()
            self.counters["dropped_outgoing"] += 1
        self._outgoing.put_nowait((topic, data, retain))

    async def _publisher(self) -> None:
        while True:
            topic, data, retain = await self._outgoing.get()
            while True:
                await self.connected.wait()
                client = self._client
                if client is None:
                    continue
                try:
                    await client.publish(topic, data, qos=0, retain=retain)
                    break
                except aiomqtt.MqttError:
                    await asyncio.sleep(0.2)

    def _republish_retained(self) -> None:
        """After (re)connecting: the broker may have lost what we retained."""
        self.publish(self.topics.policy_state, self.policy.to_json(), retain=True)
        if self.vocabulary_state:
            self.publish(self.topics.vocabulary_state, self.vocabulary_state, retain=True)
        self.publish(self.topics.audit, self.audit.to_json(), retain=True)
        for sat in self.satellites.values():
            self.publish_satellite_state(sat)

    # -- dispatch (synchronous: never awaits, so the incoming queue never backs up) ----------------

    def dispatch(self, topic: str, payload: bytes | bytearray | Any, retain: bool = False) -> None:
        self.counters["messages"] += 1
        if not isinstance(payload, (bytes, bytearray)):
            payload = str(payload).encode()
        payload = bytes(payload)
        limit = self.config["limits"]["max_vocabulary_payload" if topic == self.topics.vocabulary_set else "max_payload"]
        if topic.endswith("/pipeline/play"):
            limit = MAX_PIPELINE_PLAY
        if len(payload) > limit:
            self.report_error("oversized", f"{len(payload)}-byte message exceeds {limit}", None, None, topic)
            if topic == self.topics.vocabulary_set:
                self._vocabulary_rejected(f"vocabulary of {len(payload)} bytes exceeds the {limit}-byte limit")
            return
        parsed: tuple[str, str] | None = None
        try:
            parsed = self.topics.parse_satellite_topic(topic)
            if parsed is not None:
                self._dispatch_satellite(parsed[0], parsed[1], payload)
            elif topic == self.topics.policy_set:
                self._on_policy_command(payload)
            elif topic == self.topics.vocabulary_set:
                asyncio.create_task(self.apply_vocabulary_payload(payload))
            elif topic == self.topics.history_purge:
                self._on_purge(payload)
            elif topic.startswith("hermes/"):
                self._dispatch_hermes(topic, payload)
        except ProtocolError as err:
            self.report_error(err.code, err.message, parsed[0] if parsed else None, None, topic)
        except Exception as err:  # noqa: BLE001 - a bug on one message must not stop the service
            _LOGGER.exception("Unexpected error handling a message on %s", topic)
            self.report_error("internal_error", f"{type(err).__name__}: {err}", parsed[0] if parsed else None, None, topic)

    def _dispatch_satellite(self, sat_id: str, leaf: str, payload: bytes) -> None:
        if leaf in BRIDGE_OUTBOUND:
            return
        if leaf == "audio":
            sat = self.satellites.get(sat_id)
            if sat is None or sat.protocol is not Protocol.HEARTH or not sat.online:
                raise ProtocolError("unknown_satellite", f"audio from satellite {sat_id!r}, which has not announced itself online")
            frame = decode_frame(payload)
            self.counters["frames"] += 1
            if self.is_muted(sat_id):
                self._drop_muted(sat)
                return
            if not sat.admit(len(frame.pcm)):
                return
            sat.accept_frame(frame.stream_id, frame.seq, frame.pcm, frame.last)
        elif leaf == "status":
            self._on_satellite_status(sat_id, payload)
        elif leaf == "event":
            self._on_satellite_event(sat_id, parse_json_object(payload, "satellite event"))
        elif leaf == "response":
            data = parse_json_object(payload, "response")
            if self.response_handler is not None:
                asyncio.create_task(self.response_handler(sat_id, data))
        elif leaf == "announce":
            data = parse_json_object(payload, "announce")
            if self.response_handler is not None:
                asyncio.create_task(self.response_handler(sat_id, {**data, "announce": True}))
        elif leaf == "pipeline/set":
            self._on_pipeline_set(sat_id, payload)
        elif leaf == "pipeline/play":
            if self.speech_out is not None:
                asyncio.create_task(self.speech_out.play_wav(sat_id, payload))
        else:
            raise ProtocolError("bad_topic", f"unknown satellite topic leaf {leaf!r}")

    def _on_pipeline_set(self, sat_id: str, payload: bytes) -> None:
        """Home Assistant's choice for one satellite: `hearth` (default) or `assist`."""
        if not payload:  # retained choice cleared
            self.pipeline_modes.pop(sat_id, None)
            return
        mode = parse_json_object(payload, "pipeline/set").get("mode")
        if mode not in ("hearth", "assist"):
            raise ProtocolError("bad_pipeline_mode", f"pipeline mode must be hearth or assist, got {mode!r}")
        if mode == "hearth":
            self.pipeline_modes.pop(sat_id, None)
        elif sat_id in self.pipeline_modes or len(self.pipeline_modes) < self.config["limits"]["max_satellites"]:
            self.pipeline_modes[sat_id] = mode
        else:
            raise ProtocolError("too_many_satellites", "pipeline modes for more satellites than the limit")

    def _on_satellite_status(self, sat_id: str, payload: bytes) -> None:
        sat = self.satellites.get(sat_id)
        if not payload:  # retained status cleared: the satellite was removed
            if sat is not None:
                asyncio.create_task(self._remove_satellite(sat_id))
            return
        data = parse_json_object(payload, "satellite status")
        state = data.get("state")
        if state not in ("online", "offline"):
            raise ProtocolError("bad_status", f"satellite status 'state' must be online or offline, got {state!r}")
        if sat is None:
            if state == "offline":
                return
            sat = self._add_satellite(sat_id, Protocol.HEARTH)
            if sat is None:
                return
        sat.info = data
        raw_caps = data.get("capabilities")
        caps: dict[str, Any] = raw_caps if isinstance(raw_caps, dict) else {}
        sat.on_device_wake = bool(caps.get("wake_word", False))
        sat.barge_in = bool(caps.get("barge_in", False))
        if isinstance(data.get("wake_word"), str) and data["wake_word"] in ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa"):
            if sat_id not in self.config["satellites"] or "wake_word" not in self.config["satellites"][sat_id]:
                sat.wake_word = data["wake_word"]
        if isinstance(data.get("play_rate"), int) and 8000 <= data["play_rate"] <= 48000:
            sat.play_rate = data["play_rate"]
        was_online = sat.online
        sat.online = state == "online"
        if was_online and not sat.online and sat.session is not None:
            asyncio.create_task(sat.abort("satellite_offline", "satellite went offline mid-utterance"))
        self.publish_satellite_state(sat)
        if sat.online and self.is_muted(sat_id):
            self._tell_muted(sat, True)

    def _add_satellite(self, sat_id: str, protocol: Protocol) -> Satellite | None:
        if len(self.satellites) >= self.config["limits"]["max_satellites"]:
            self.report_error("too_many_satellites", f"satellite limit {self.config['limits']['max_satellites']} reached", sat_id)
            return None
        sat = Satellite(self, sat_id, protocol, self.config["satellites"].get(sat_id, {}))
        self.satellites[sat_id] = sat
        _LOGGER.info("Satellite %s (%s) joined", sat_id, protocol)
        self._stats_dirty = True
        return sat

    async def _remove_satellite(self, sat_id: str) -> None:
        sat = self.satellites.pop(sat_id, None)
        if sat is not None:
            await sat.abort("satellite_removed", "satellite removed")
            await sat.close()
            self.publish(self.topics.satellite(sat_id, "state"), b"", retain=True)

    def _on_satellite_event(self, sat_id: str, data: dict[str, Any]) -> None:
        sat = self.satellites.get(sat_id)
        if sat is None:
            raise ProtocolError("unknown_satellite", f"event from satellite {sat_id!r}, which has not announced itself")
        kind = data.get("type")
        if kind in ("wake", "button"):
            if self.is_muted(sat_id):
                self._drop_muted(sat)
                return
            wake_word = data.get("wake_word") if isinstance(data.get("wake_word"), str) else None
            stream_id = data.get("stream_id") if isinstance(data.get("stream_id"), int) else None
            self.on_wake(sat, wake_word, "satellite" if kind == "wake" else "button", stream_id=stream_id)
        elif kind == "stop":
            asyncio.create_task(sat.abort("stopped", "stopped by the satellite"))
            if self.response_handler is not None:
                asyncio.create_task(self.response_handler(sat_id, {"stop": True}))
        elif kind == "played":
            if self.response_handler is not None:
                asyncio.create_task(self.response_handler(sat_id, {"played": data.get("play_id")}))
        else:
            raise ProtocolError("bad_event", f"unknown satellite event type {kind!r}")

    # -- Hermes ----------------------------------------------------------------------------------

    def _hermes_site(self, site_id: str, create: bool) -> Satellite | None:
        sat = self.satellites.get(site_id)
        if sat is not None:
            return sat if sat.protocol is Protocol.HERMES else None
        if not create:
            return None
        if self.hermes_sites and site_id not in self.hermes_sites:
            raise ProtocolError("unknown_satellite", f"Hermes site {site_id!r} is not in hermes.sites")
        if not HERMES_SITE.match(site_id):
            raise ProtocolError("bad_satellite_id", f"Hermes siteId {site_id!r} is not usable")
        return self._add_satellite(site_id, Protocol.HERMES)

    def _dispatch_hermes(self, topic: str, payload: bytes) -> None:
        site = hermes.site_from_audio_topic(topic)
        if site is not None:
            sat = self._hermes_site(site, create=True)
            if sat is None:
                return
            self.counters["frames"] += 1
            if self.is_muted(site):
                self._drop_muted(sat)
                return
            try:
                pcm = wav_to_pcm16k(payload)
            except WavError as err:
                self.report_error(err.code, f"audio frame: {err}", site, sat.session.id if sat.session else None, topic)
                return
            if sat.admit(len(pcm)):
                sat.enqueue(pcm)
            return
        if topic in (hermes.TOGGLE_OFF, hermes.TOGGLE_ON, hermes.TEXT_CAPTURED):
            return
        if topic.endswith("/playFinished"):
            site = hermes.site_from_play_finished(topic)
            data = parse_json_object(payload, "playFinished")
            if site and self.response_handler is not None:
                asyncio.create_task(self.response_handler(site, {"played": data.get("id")}))
            return
        data = parse_json_object(payload, topic)
        site_id = data.get("siteId", "default")
        if not isinstance(site_id, str):
            raise ProtocolError("invalid_json", f"{topic}: siteId must be a string")
        session_id = data.get("sessionId") if isinstance(data.get("sessionId"), str) else None
        if hermes.wakeword_from_detected(topic) is not None:
            sat = self._hermes_site(site_id, create=True)
            if sat is None or sat.session is not None:
                return  # our own detection echoed back, or already listening
            if self.is_muted(site_id):
                self._drop_muted(sat)
                return
            self.on_wake(sat, hermes.wakeword_from_detected(topic), "hermes", session_id=session_id)
        elif topic == hermes.START_LISTENING:
            sat = self._hermes_site(site_id, create=True)
            if sat is None or self.is_muted(site_id):
                return
            lang = data.get("lang") if isinstance(data.get("lang"), str) else None
            wakeword = data.get("wakewordId") if isinstance(data.get("wakewordId"), str) else None
            sat.request_session("command", wakeword, session_id=session_id, lang=lang)
        elif topic == hermes.STOP_LISTENING:
            sat = self._hermes_site(site_id, create=False)
            if sat is not None and sat.session is not None and (session_id is None or sat.session.id == session_id):
                sat.stop_listening()
        elif topic == hermes.NLU_QUERY:
            text = data.get("input")
            if not isinstance(text, str):
                raise ProtocolError("invalid_json", "hermes/nlu/query: 'input' must be a string")
            request_id = data.get("id") if isinstance(data.get("id"), str) else None
            asyncio.create_task(self._answer_nlu_query(site_id, session_id, request_id, text))
        elif topic in (hermes.TTS_SAY, hermes.END_SESSION):
            if self.response_handler is not None:
                asyncio.create_task(self.response_handler(site_id, {"hermes": topic, **data}))

    async def _answer_nlu_query(self, site_id: str, session_id: str | None, request_id: str | None, text: str) -> None:
        try:
            sat = self.satellites.get(site_id)
            intent, _cpu = await self.pool.recognize_intent(text, sat.area if sat else None)
        except EngineError as err:
            self.publish(hermes.ERROR_NLU, hermes.error(site_id, session_id, err.message, "nlu"))
            return
        self._publish_hermes_intent(site_id, session_id, request_id, text, intent)

    def _publish_hermes_intent(self, site_id: str, session_id: str | None, request_id: str | None,
                               text: str, intent: dict[str, Any] | None) -> None:
        if intent is None:
            self.publish(hermes.INTENT_NOT_RECOGNIZED, hermes.intent_not_recognized(site_id, session_id, request_id, text))
            return
        slots = []
        for name, slot in intent["slots"].items():
            entity = slot["entity_ids"][0] if slot.get("entity_ids") else name
            value = slot["value"] if isinstance(slot["value"], (str, int, float, bool)) or slot["value"] is None else str(slot["value"])
            slots.append((name, value, slot.get("text") or str(value), entity))
        payload = hermes.intent_parsed(site_id, session_id, request_id, text, intent["name"], intent["confidence"], slots)
        self.publish(hermes.INTENT_PARSED, payload)
        self.publish(hermes.intent_topic(intent["name"]), payload)

    # -- privacy ---------------------------------------------------------------------------------

    def retention_enabled(self) -> bool:
        return self.policy.retention is Retention.MEMORY

    def is_muted(self, sat_id: str) -> bool:
        return self.policy.is_muted(sat_id, time.time())

    def _drop_muted(self, sat: Satellite) -> None:
        self.counters["dropped_muted"] += 1
        self.audit.note_muted_frame()
        self._stats_dirty = True
        # A satellite that keeps streaming while muted is reminded, at most once a second.
        if self.errors.report("muted", "frames from a muted satellite dropped", sat.id):
            self._tell_muted(sat, True)

    def _tell_muted(self, sat: Satellite, muted: bool) -> None:
        if sat.protocol is Protocol.HEARTH:
            self.publish(self.topics.satellite(sat.id, "command"),
                         {"command": "mute" if muted else "unmute", "session_id": None})
        else:
            self.publish(hermes.esp32_audio_topic(sat.id), {"mute_input": "true" if muted else "false"})
            self.publish(hermes.TOGGLE_OFF if muted else hermes.TOGGLE_ON, hermes.toggle(sat.id, ""))
        self.publish_satellite_state(sat)

    def _on_policy_command(self, payload: bytes) -> None:
        request_id: Any = None
        try:
            data = parse_json_object(payload, "policy command")
            request_id = data.get("request_id")
            before = self.policy
            updated = before.apply(data, time.time())
            self._set_policy(updated, before)
        except (ProtocolError, PolicyError) as err:
            message = str(err)
            self.report_error("bad_policy_command", message, None, None, self.topics.policy_set)
            self.publish(self.topics.policy_result, {"request_id": request_id, "ok": False, "error": message,
                                                     "policy": self.policy.to_json()})
            return
        except OSError as err:
            self.publish(self.topics.policy_result, {"request_id": request_id, "ok": False,
                                                     "error": f"could not save the policy: {err}", "policy": self.policy.to_json()})
            return
        self.publish(self.topics.policy_result, {"request_id": request_id, "ok": True, "error": None,
                                                 "policy": self.policy.to_json()})

    def _set_policy(self, updated: Policy, before: Policy) -> None:
        if updated == before:
            return
        self.policy_store.save(updated)  # persisted before it takes effect or is confirmed
        self.policy = updated
        self.retention.enforce()
        self.publish(self.topics.policy_state, updated.to_json(), retain=True)
        now = time.time()
        for sat in self.satellites.values():
            was, now_muted = before.is_muted(sat.id, now), updated.is_muted(sat.id, now)
            if was != now_muted:
                self._tell_muted(sat, now_muted)
                if now_muted and sat.session is not None:
                    asyncio.create_task(sat.abort("muted", "microphone muted"))

    def _on_purge(self, payload: bytes) -> None:
        request_id: Any = None
        try:
            data = parse_json_object(payload, "purge command")
            request_id = data.get("request_id")
        except ProtocolError as err:
            self.report_error(err.code, err.message, None, None, self.topics.history_purge)
        self.retention.purge()
        removed = self.audit.purge()
        self.publish(self.topics.audit, self.audit.to_json(), retain=True)
        self.publish(self.topics.policy_result, {"request_id": request_id, "ok": True, "error": None,
                                                 "purged": removed, "policy": self.policy.to_json()})

    # -- engines -------------------------------------------------------------------------------

    async def open_stt(self, sat_id: str, session_id: str, wake_word: str | None = None) -> SttStream:
        """The configured engine's stream; the local engine when it is refused or fails.

        Satellites in `assist` pipeline mode forward their audio to Home Assistant instead.
        """
        session_id = session_id or uuid.uuid4().hex
        if self.pipeline_modes.get(sat_id) == "assist":
            return await self.forward_stt.open(session_id, sat_id, wake_word)
        engine = self.stt
        if engine is self.local_stt:
            return await engine.open(session_id)

        def fell_back(err: EngineError) -> None:
            self.report_error(err.code, f"{engine.name}: {err.message}; the local recognizer answered instead",
                              sat_id, session_id)

        try:
            primary = await engine.open(session_id)
        except EngineError as err:
            fell_back(err)
            return await self.local_stt.open(session_id)
        return FallbackSttStream(primary, self.local_stt, session_id, fell_back)

    # -- satellite callbacks ---------------------------------------------------------------------

    def on_wake(self, sat: Satellite, wake_word: str | None, source: str, session_id: str | None = None,
                stream_id: int | None = None) -> None:
        sat.request_session(source, wake_word, session_id=session_id, stream_id=stream_id)

    def on_wake_started(self, sat: Satellite, session: Session) -> None:
        if self.speech_out is not None and self.speech_out.is_playing(sat.id):
            self.speech_out.stop_playback(sat.id)  # barge-in
        self.publish(self.topics.satellite(sat.id, "wake"), {
            "session_id": session.id, "satellite": sat.id, "wake_word": session.wake_word, "source": session.source})
        if session.source == "command" and sat.protocol is Protocol.HEARTH and sat.on_device_wake:
            # The bridge opened the session (e.g. to hear the answer to a question): the satellite
            # only streams after its own wake word, so ask it to stream now.
            self.publish(self.topics.satellite(sat.id, "command"), {"command": "start_streaming", "session_id": session.id})
        if sat.protocol is Protocol.HERMES and session.source == "bridge":
            model = session.wake_word or "default"
            self.publish(hermes.hotword_detected_topic(model), hermes.hotword_detected(sat.id, model, session.id))

    def on_session_started(self, sat: Satellite, session: Session) -> None:
        self.counters["utterances"] += 1
        if self.speech_out is not None:
            self.speech_out.remember_session(session.id, sat.id)
        if sat.protocol is Protocol.HERMES:
            self.publish(hermes.TOGGLE_OFF, hermes.toggle(sat.id, "dialogueSession"))

    def on_listening_ended(self, sat: Satellite, session: Session) -> None:
        """The bridge has heard enough: a satellite that streams per session may stop now."""
        if sat.protocol is Protocol.HEARTH and sat.on_device_wake:
            self.publish(self.topics.satellite(sat.id, "command"), {"command": "stop_streaming", "session_id": session.id})

    def on_session_ended(self, sat: Satellite, session: Session, ok: bool) -> None:
        if sat.protocol is Protocol.HERMES and not self.is_muted(sat.id):
            self.publish(hermes.TOGGLE_ON, hermes.toggle(sat.id, "dialogueSession"))
        self._stats_dirty = True

    async def on_transcript(self, sat: Satellite, session: Session, transcript: Transcript,
                            timings: dict[str, Any]) -> None:
        if getattr(transcript, "forwarded", False):
            self._audit_forwarded(sat, session, transcript)
            return
        private = not self.policy.publish_transcripts
        engines = [EngineUse("wake", "pymicro-wakeword", Locality.IN_PROCESS), EngineUse("vad", "pymicro-vad", Locality.IN_PROCESS),
                   EngineUse("stt", transcript.engine or "unknown", transcript.locality)]
        # The intent comes first: a doubtful recognition of a sensitive command (unlock, open the
        # garage) is refused before anyone can act on its text.
        intent: dict[str, Any] | None = None
        intent_ms = 0.0
        if not transcript.rejected and transcript.text:
            started = time.monotonic()
            try:
                intent, _cpu = await self.pool.recognize_intent(transcript.text, sat.area)
                engines.append(EngineUse("intent", "hassil", Locality.IN_PROCESS))
            except EngineError as err:
                self.report_error(err.code, err.message, sat.id, session.id)
            intent_ms = (time.monotonic() - started) * 1000
        recognition = self.config["recognition"]
        refused = None if intent is None else refusal(
            intent, transcript.confidence, recognition["sensitive_confidence"],
            recognition["broad_confidence"])
        if refused is not None:
            assert intent is not None
            code, what, minimum = refused
            self.report_error(code, f"{intent['name']} {what} heard with confidence "
                              f"{transcript.confidence:.2f} < {minimum}; not acted on", sat.id, session.id)
            transcript = dataclasses.replace(transcript, rejected=True)
            intent = None
        timings["intent_ms"] = round(intent_ms, 1)
        latency = round(timings["end_of_speech_to_text_ms"] + intent_ms, 1)
        self.publish(self.topics.satellite(sat.id, "transcript"), {
            "session_id": session.id, "satellite": sat.id, "text": "" if transcript.rejected else transcript.text,
            "rejected": transcript.rejected, "confidence": round(transcript.confidence, 4),
            "audio_seconds": round(session.audio_bytes / 32000, 3), "latency_ms": latency,
            "engine": transcript.engine, "locality": str(transcript.locality), "private": private,
            "timings": timings, "cpu_seconds": round(transcript.cpu_seconds, 4),
        })
        if sat.protocol is Protocol.HERMES and not private:
            if transcript.rejected:
                self.publish(hermes.ERROR_ASR, hermes.error(sat.id, session.id, "speech was not recognized as a command", "asr"))
            else:
                self.publish(hermes.TEXT_CAPTURED, hermes.text_captured(
                    sat.id, session.id, transcript.text, transcript.confidence,
                    session.audio_bytes / 32000, session.wake_word, session.hermes_lang or "en"))
        self.publish(self.topics.satellite(sat.id, "intent"), {
            "session_id": session.id, "satellite": sat.id, "text": "" if transcript.rejected else transcript.text,
            "intent": intent, "confidence": round(transcript.confidence, 4), "rejected": transcript.rejected,
            "private": private, "timings": timings,
        })
        if sat.protocol is Protocol.HERMES and not private and not transcript.rejected:
            self._publish_hermes_intent(sat.id, session.id, session.id, transcript.text, intent)
        try:
            self.audit.record(AuditEntry(
                time=time.time(), satellite=sat.id, session_id=session.id, engines=tuple(engines),
                bytes_off_process=transcript.bytes_sent,
                address_class=transcript.address_class if transcript.bytes_sent else "none",
            ))
        except ValueError as err:
            _LOGGER.error("Audit entry rejected: %s", err)
        self._stats_dirty = True
        sat.last_result = {"session_id": session.id, "engine": transcript.engine, "locality": str(transcript.locality)}
        # Never the words: the log goes to the journal, i.e. to disk (privacy promise: nothing on disk).
        _LOGGER.info("%s: %s (%s, %.0f ms after end of speech)", sat.id,
                     "<rejected>" if transcript.rejected else f"<{len(transcript.text.split())} words>",
                     intent["name"] if intent else "no intent", latency)

    def _audit_forwarded(self, sat: Satellite, session: Session, transcript: Transcript) -> None:
        """Home Assistant recognizes a forwarded utterance: no transcript or intent, only the audit."""
        engines = (EngineUse("wake", "pymicro-wakeword", Locality.IN_PROCESS), EngineUse("vad", "pymicro-vad", Locality.IN_PROCESS),
                   EngineUse("stt", transcript.engine, transcript.locality))
        try:
            self.audit.record(AuditEntry(
                time=time.time(), satellite=sat.id, session_id=session.id, engines=engines,
                bytes_off_process=transcript.bytes_sent,
                address_class=transcript.address_class if transcript.bytes_sent else "none",
            ))
        except ValueError as err:
            _LOGGER.error("Audit entry rejected: %s", err)
        self._stats_dirty = True
        sat.last_result = {"session_id": session.id, "engine": transcript.engine, "locality": str(transcript.locality)}
        _LOGGER.info("%s: %.1f s of audio forwarded to Home Assistant's Assist pipeline", sat.id, transcript.audio_seconds)

    def publish_session_error(self, sat: Satellite, session_id: str | None, code: str, message: str) -> None:
        self.errors.report(code, message, sat.id)
        self.publish(self.topics.satellite(sat.id, "error"),
                     {"session_id": session_id, "satellite": sat.id, "code": code, "message": message, "fatal": True})
        if sat.protocol is Protocol.HERMES:
            self.publish(hermes.ERROR_ASR, hermes.error(sat.id, session_id, message, code))

    def publish_satellite_state(self, sat: Satellite) -> None:
        self.publish(self.topics.satellite(sat.id, "state"), {
            "state": str(sat.state), "session_id": sat.session.id if sat.session else None,
            "muted": self.is_muted(sat.id), "protocol": str(sat.protocol), "online": sat.online,
            "last": sat.last_result,
        }, retain=True)

    def report_error(self, code: str, message: str, sat_id: str | None = None, session_id: str | None = None,
                     topic: str | None = None) -> None:
        self._stats_dirty = True
        if not self.errors.report(code, message, sat_id):
            return
        payload = {"code": code, "message": message, "topic": topic, "satellite": sat_id, "session_id": session_id}
        self.publish(self.topics.bridge_error, payload)
        sat = self.satellites.get(sat_id) if sat_id else None
        if sat is not None and sat.protocol is Protocol.HEARTH:
            self.publish(self.topics.satellite(sat_id, "error"), {  # type: ignore[arg-type]
                "session_id": session_id, "satellite": sat_id, "code": code, "message": message, "fatal": False})
        # Hermes has no non-fatal errors: hermes/error/asr ends a dialogue session, so it is only
        # sent when the session really ended (publish_session_error); bad Hermes frames of no
        # session still get one so a tool can see why.
        elif sat is not None and session_id is None and code not in ("muted", "rate_limited"):
            self.publish(hermes.ERROR_ASR, hermes.error(sat.id, None, message, code))

    # -- vocabulary ------------------------------------------------------------------------------

    async def apply_vocabulary_payload(self, payload: bytes) -> bool:
        try:
            data = json.loads(payload.decode("utf-8"))
            vocab = parse_vocabulary(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            self._vocabulary_rejected(f"vocabulary is not valid JSON: {err}")
            return False
        except VocabularyError as err:
            self._vocabulary_rejected(str(err))
            return False
        return await self.apply_vocabulary(vocab)

    async def apply_vocabulary(self, vocab: Vocabulary) -> bool:
        """Compiles in the background, then swaps atomically; in-flight utterances finish on the old one."""
        async with self._vocab_lock:
            if self.vocabulary is not None and vocab.hash() == self.vocabulary.hash():
                return True
            try:
                grammar, seconds = await compile_in_subprocess(vocab)
                await self.pool.set_grammar(vocab, grammar)
            except Exception as err:  # noqa: BLE001 - keep the old grammar in service
                self._vocabulary_rejected(f"vocabulary could not be compiled: {type(err).__name__}: {err}")
                return False
            self.vocabulary, self.grammar = vocab, grammar
            self._set_vocabulary_state("ok", vocab, grammar, seconds, None)
            _LOGGER.info("Vocabulary %s in service: %d entities, %d areas (compiled in %.2f s)",
                         vocab.hash()[:8], len(vocab.entities), len(vocab.areas), seconds)
            return True

    def _vocabulary_rejected(self, message: str) -> None:
        self.report_error("bad_vocabulary", message, None, None, self.topics.vocabulary_set)
        state = dict(self.vocabulary_state)
        state.update({"status": "error", "error": message})
        self.vocabulary_state = state
        self.publish(self.topics.vocabulary_state, state, retain=True)

    def _set_vocabulary_state(self, status: str, vocab: Vocabulary, grammar: CompiledGrammar, seconds: float,
                              error: str | None) -> None:
        self.vocabulary_state = {
            "status": status, "hash": vocab.hash(), "error": error, "entities": len(vocab.entities),
            "areas": len(vocab.areas), "floors": len(vocab.floors), "sentences": len(vocab.sentences),
            "compile_seconds": round(seconds, 3),
            "grammar": {k: v for k, v in grammar.stats.items() if isinstance(v, (int, float, str))},
        }
        self.publish(self.topics.vocabulary_state, self.vocabulary_state, retain=True)

    # -- housekeeping ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters, "errors": dict(self.errors.counts), "decoder_busy": self.pool.busy,
            "decoder_restarts": self.pool.restarts, "decoder_utterances": self.pool.utterances_started, "loop_lag_ms": round(self.last_loop_lag_ms, 2),
            "loop_lag_p99_ms": round(sorted(self.loop_lags)[int(len(self.loop_lags) * 0.99)], 2) if self.loop_lags else 0.0,
            "loop_lag_max_ms": round(max(self.loop_lags), 2) if self.loop_lags else 0.0,
            "satellites": {sid: {**s.counters, "state": str(s.state), "queue": len(s.queue), "online": s.online,
                                 "protocol": str(s.protocol)} for sid, s in self.satellites.items()},
        }

    async def _housekeeping(self) -> None:
        saved_counters: dict[str, int] = {}
        last_stats = 0.0
        while True:
            await asyncio.sleep(1.0)
            now = time.time()
            expired = self.policy.expire(now)
            if expired != self.policy:
                before = self.policy
                try:
                    self._set_policy(expired, before)
                except OSError as err:
                    _LOGGER.error("Could not save the policy: %s", err)
            if self._stats_dirty and time.monotonic() - last_stats >= STATS_INTERVAL:
                self._stats_dirty = False
                last_stats = time.monotonic()
                self.publish(self.topics.bridge_stats, self.stats(), retain=True)
                self.publish(self.topics.audit, self.audit.to_json(), retain=True)
                counters = self.audit.counters_to_json()
                if counters != saved_counters:
                    with contextlib.suppress(OSError):
                        self.audit_store.save(counters)
                        saved_counters = dict(counters)

    async def _loop_lag_probe(self) -> None:
        """Measures how late the event loop wakes up (a stalled loop stalls every satellite)."""
        interval = 0.05
        while True:
            started = time.monotonic()
            await asyncio.sleep(interval)
            self.last_loop_lag_ms = max(0.0, (time.monotonic() - started - interval) * 1000)
            self.loop_lags.append(self.last_loop_lag_ms)
