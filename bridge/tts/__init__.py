"""Text to speech: Hearth's voice engines and how configuration picks one.

- ``espeak``: espeak-ng in a local subprocess (IN_PROCESS; always available, robotic).
- ``wyoming``: a Wyoming TTS server such as Piper (LAN, or CLOUD if its address is public).
- :class:`FallbackTts` speaks with a second engine when the first fails or is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TypedDict

from bridge.engines import EngineError, Locality, SynthesizedAudio, TextToSpeech
from bridge.privacy.gate import LocalityGate
from bridge.tts.espeak import EspeakTts
from bridge.tts.wyoming import WyomingTts

__all__ = ["EspeakTts", "FallbackTts", "WyomingTts", "build_tts"]

_LOGGER = logging.getLogger(__name__)

OnFallback = Callable[[str, EngineError], None]


class FallbackTts(TextToSpeech):
    """Speak with `primary`; if it raises EngineError (failed, timed out, refused by the
    privacy policy), report it through `on_fallback(primary.name, error)` and speak with
    `fallback` instead.

    The returned audio's ``engine``/``locality`` name the engine that actually spoke; when the
    fallback spoke, ``extra`` carries ``fallback_from`` and ``fallback_reason``.
    """

    def __init__(
        self,
        primary: TextToSpeech,
        fallback: TextToSpeech,
        on_fallback: OnFallback | None = None,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.on_fallback = on_fallback
        self.name = f"{primary.name}|{fallback.name}"

    @property
    def locality(self) -> Locality:  # type: ignore[override]
        """The primary's locality: where text goes when all is well."""
        return self.primary.locality

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "locality": str(self.locality),
            "primary": self.primary.describe(),
            "fallback": self.fallback.describe(),
        }

    async def synthesize(self, text: str, rate: int) -> SynthesizedAudio:
        """Speak with the primary, or with the fallback if the primary raises EngineError.

        Errors that no engine can fix (empty text, bad rate) are raised at once. If the
        fallback fails as well, its EngineError is raised.
        """
        try:
            return await self.primary.synthesize(text, rate)
        except EngineError as err:
            if err.code in ("tts_empty_text", "tts_bad_rate", "tts_text_too_long"):
                raise
            primary_error = err
        _LOGGER.warning(
            "TTS %s failed (%s: %s); speaking with %s",
            self.primary.name,
            primary_error.code,
            primary_error.message,
            self.fallback.name,
        )
        if self.on_fallback is not None:
            try:
                self.on_fallback(self.primary.name, primary_error)
            except Exception:  # a broken listener must not silence the answer
                _LOGGER.exception("on_fallback callback failed")
        audio = await self.fallback.synthesize(text, rate)
        extra = {
            **audio.extra,
            "fallback_from": self.primary.name,
            "fallback_reason": primary_error.code,
        }
        return SynthesizedAudio(
            pcm=audio.pcm,
            rate=audio.rate,
            engine=audio.engine,
            locality=audio.locality,
            bytes_sent=audio.bytes_sent,
            extra=extra,
        )

    async def close(self) -> None:
        """Close both engines."""
        await self.primary.close()
        await self.fallback.close()


class _EspeakOptions(TypedDict, total=False):
    voice: str
    speed: int
    executable: str
    timeout: float


class _WyomingOptions(TypedDict, total=False):
    voice: str | None
    speaker: str | None
    timeout: float


def _text(config: Mapping[str, object], key: str) -> str:
    value = config[key]
    if not isinstance(value, str):
        raise ValueError(f"tts {key}: expected text, got {value!r}")
    return value


def _integer(config: Mapping[str, object], key: str) -> int:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"tts {key}: expected an integer, got {value!r}")
    return int(value)


def _seconds(config: Mapping[str, object], key: str) -> float:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"tts {key}: expected a number of seconds, got {value!r}")
    return float(value)


def _espeak(config: Mapping[str, object]) -> EspeakTts:
    options: _EspeakOptions = {}
    if "voice" in config:
        options["voice"] = _text(config, "voice")
    if "speed" in config:
        options["speed"] = _integer(config, "speed")
    if "executable" in config:
        options["executable"] = _text(config, "executable")
    if "timeout" in config:
        options["timeout"] = _seconds(config, "timeout")
    return EspeakTts(**options)


def _wyoming(config: Mapping[str, object], gate: LocalityGate) -> WyomingTts:
    if "host" not in config or "port" not in config:
        raise ValueError("wyoming tts needs host and port")
    options: _WyomingOptions = {}
    for key in ("voice", "speaker"):
        if key in config:
            options[key] = None if config[key] is None else _text(config, key)
    if "timeout" in config:
        options["timeout"] = _seconds(config, "timeout")
    return WyomingTts(str(config["host"]), _integer(config, "port"), gate, **options)


def build_tts(
    config: Mapping[str, object],
    gate: LocalityGate,
    on_fallback: OnFallback | None = None,
) -> TextToSpeech:
    """Build the TTS engine a configuration describes.

    ``{"engine": "espeak", "voice": "en-us", "speed": 165}`` (optional ``executable``,
    ``timeout``) or ``{"engine": "wyoming", "host": "piper.lan", "port": 10200, "voice": ...}``
    (optional ``speaker``, ``timeout``). Either may carry ``"fallback": {<another config>}``;
    the result is then a :class:`FallbackTts` reporting through `on_fallback`. A Wyoming
    engine connects only through `gate`.

    Raises ValueError for an unknown engine or a missing/invalid setting.
    """
    if not isinstance(config, Mapping):
        raise ValueError("tts config must be a mapping")
    engine = config.get("engine", "espeak")
    known = {"engine", "fallback"}
    tts: TextToSpeech
    if engine == "espeak":
        known |= {"voice", "speed", "executable", "timeout"}
        tts = _espeak(config)
    elif engine == "wyoming":
        known |= {"host", "port", "voice", "speaker", "timeout"}
        tts = _wyoming(config, gate)
    else:
        raise ValueError(f"unknown tts engine {engine!r} (expected 'espeak' or 'wyoming')")
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"unknown tts settings for {engine}: {sorted(unknown)}")
    fallback_config = config.get("fallback")
    if fallback_config is not None:
        if not isinstance(fallback_config, Mapping):
            raise ValueError("tts fallback must be a mapping")
        if "fallback" in fallback_config:
            raise ValueError("a tts fallback cannot have a fallback of its own")
        fallback = build_tts(fallback_config, gate)
        return FallbackTts(tts, fallback, on_fallback)
    return tts
