from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import Mosquitto
from tests.support.speech import synthesize


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    broker = Mosquitto().start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def say(speech_dir: Path):
    """say(text, voice=..., speed=...) -> Path of a 16 kHz WAV, cached per session."""
    cache: dict[tuple[str, str, int], Path] = {}

    def _say(text: str, voice: str = "en-us", speed: int = 160) -> Path:
        key = (text, voice, speed)
        if key not in cache:
            name = f"{len(cache):03d}.wav"
            cache[key] = synthesize(text, speech_dir / name, voice=voice, speed=speed)
        return cache[key]

    return _say


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    """A real Mosquitto and a real bridge process, shared by a test module."""
    from tests.support.bridge_proc import BridgeProcess

    broker = Mosquitto().start()
    data_dir = tmp_path_factory.mktemp("bridge-data")
    bridge = BridgeProcess(broker.host, broker.port, data_dir).start()
    try:
        yield broker, bridge
    finally:
        bridge.stop()
        broker.close()


@pytest.fixture(scope="module")
def demo_decoder():
    """A grammar decoder for the demo home (one per test module; decoding is deterministic and
    every utterance starts from a fresh feature pipeline)."""
    from bridge.recognition import compile_grammar
    from bridge.resources import cmudict, load_demo_vocabulary, new_decoder

    decoder = new_decoder(compile_grammar(load_demo_vocabulary(), cmudict()))
    yield decoder
    decoder.close()
