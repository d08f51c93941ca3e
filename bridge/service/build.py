"""Building the bridge: every engine, the voice and the servers made in one place and handed in.

`build_bridge(settings)` is the only place that chooses engines from the configuration: the
privacy state (policy and audit stores, the locality gate every outgoing path goes through), the
decoder pool and local recognizer, a Wyoming recognizer or voice on the LAN when configured, the
espeak-ng voice, and the Wyoming server that offers Hearth's recognizer to Home Assistant.
"""

from __future__ import annotations

import asyncio
import uuid

from ..engines import EngineError, SpeechToText, SttStream, TextToSpeech
from ..privacy.audit import AuditLog
from ..privacy.gate import LocalityGate
from ..privacy.store import AuditStore, PolicyStore
from ..settings import Settings, TtsSettings
from ..stt.local import PocketsphinxStt
from ..stt.pool import DecoderPool
from .bridge import Bridge, Engines
from .control import PolicyState


def tts_spec(tts: TtsSettings) -> dict[str, object] | None:
    """The text-to-speech configuration as `bridge.tts.build_tts` reads it (None: no voice)."""
    if tts.engine == "none":
        return None
    spec: dict[str, object] = {"engine": tts.engine, "timeout": tts.timeout}
    if tts.voice is not None:
        spec["voice"] = tts.voice
    if tts.engine == "espeak":
        if tts.speed is not None:
            spec["speed"] = tts.speed
        if tts.executable is not None:
            spec["executable"] = tts.executable
    else:
        spec["host"] = tts.host
        spec["port"] = tts.port
        spec["fallback"] = {"engine": "espeak"}  # a LAN voice that cannot answer: espeak-ng does
    return spec


class _FallbackNotice:
    """Tells the bridge that a LAN voice could not answer and espeak-ng did (refusals by the
    locality gate are counted by the gate). The voice is built before the bridge it reports to."""

    def __init__(self) -> None:
        self.bridge: Bridge | None = None

    def __call__(self, name: str, err: EngineError) -> None:
        if self.bridge is not None:
            self.bridge.report_error(err.code, f"{name}: {err.message}; espeak-ng answered instead")


def build_bridge(settings: Settings) -> Bridge:
    """The whole bridge for these settings (nothing started yet: see `Bridge.run`)."""
    from ..tts import build_tts

    policy_store = PolicyStore(settings.data_dir)
    audit_store = AuditStore(settings.data_dir)
    policy = PolicyState(policy_store)
    audit = AuditLog()
    gate = LocalityGate(policy, audit)
    pool = DecoderPool(settings.stt.workers, max_text=settings.limits.max_intent_text,
                       intent_timeout=settings.limits.intent_timeout)
    pool.verdict_settings = settings.recognition.verdict()
    local_stt = PocketsphinxStt(pool)
    stt: SpeechToText = local_stt
    if settings.stt.engine == "wyoming":
        from ..stt.wyoming import WyomingStt

        assert settings.stt.host is not None  # the schema requires it
        stt = WyomingStt(settings.stt.host, settings.stt.port, gate, timeout=settings.stt.timeout)
    fell_back = _FallbackNotice()
    spec = tts_spec(settings.tts)
    tts: TextToSpeech | None = build_tts(spec, gate, on_fallback=fell_back) if spec is not None else None
    ready = asyncio.Event()
    wyoming_server = None
    if settings.wyoming_server.enabled:
        from ..wyoming_server import HearthWyomingServer

        async def open_stream() -> SttStream:
            await ready.wait()
            return await local_stt.open(f"wyoming-{uuid.uuid4().hex[:8]}")

        wyoming_server = HearthWyomingServer(settings.wyoming_server.host, settings.wyoming_server.port,
                                             open_stream, tts)
    bridge = Bridge(settings, Engines(pool, local_stt, stt, tts, gate, audit, policy, audit_store),
                    ready=ready, wyoming_server=wyoming_server)
    fell_back.bridge = bridge
    return bridge
