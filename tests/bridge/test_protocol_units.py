"""Hearth frame codec, topics, config validation and the endpointer, without I/O."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bridge.config import ConfigError, load, validate
from bridge.pipeline.endpoint import EndpointSettings, Endpointer, EndReason
from bridge.protocol.hearth import ProtocolError, Topics, decode_frame, encode_frame


def test_frame_round_trip() -> None:
    frame = decode_frame(encode_frame(7, 42, b"\x01\x02" * 480, last=True))
    assert (frame.stream_id, frame.seq, frame.last, len(frame.pcm)) == (7, 42, True, 960)


@pytest.mark.parametrize(("payload", "code"), [
    (b"\x01\x00", "bad_frame"),
    (b"\x09" + bytes(11) + b"\0\0", "bad_frame"),  # wrong version
    (encode_frame(1, 0, b"\0" * 3), "bad_frame"),  # odd byte count
    (encode_frame(1, 0, b"\0" * 9000), "oversized"),
])
def test_bad_frames(payload: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        decode_frame(payload)
    assert err.value.code == code


def test_topics_parse() -> None:
    topics = Topics("hearth")
    assert topics.parse_satellite_topic("hearth/satellite/kitchen/audio") == ("kitchen", "audio")
    assert topics.parse_satellite_topic("other/thing") is None
    with pytest.raises(ProtocolError, match="cannot parse"):
        topics.parse_satellite_topic("hearth/satellite/kitchen/audio/extra")
    with pytest.raises(ProtocolError) as err:
        topics.parse_satellite_topic("hearth/satellite/kit chen!/audio")
    assert err.value.code == "bad_satellite_id"


@pytest.mark.parametrize(("raw", "message"), [
    ({"mqtt": {"port": "abc"}}, "mqtt.port: expected int"),
    ({"mqtt": {"port": 70000}}, "mqtt.port: expected a port number"),
    ({"mqtt": {"hots": "x"}}, "mqtt.hots: unknown key"),
    ({"wake": {"model": "hey_siri"}}, "wake.model: value must be one of"),
    ({"endpoint": {"silence_tail": 0}}, "endpoint.silence_tail: expected a number greater than 0"),
    ({"stt": {"engine": "wyoming"}}, "stt.host: required"),
    ({"mqtt": {"prefix": "a/#"}}, "mqtt.prefix: expected an MQTT topic prefix"),
])
def test_config_errors_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate(raw)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_config_file_and_overrides(tmp_path) -> None:
    path = tmp_path / "hearth.yaml"
    path.write_text("mqtt:\n  host: broker.local\n  port: 1884\nendpoint:\n  silence_tail: 0.4\n")
    config = load(path, {"mqtt.port": 1999, "mqtt.username": None})
    assert config.mqtt.host == "broker.local"
    assert config.mqtt.port == 1999
    assert config.endpoint.silence_tail == 0.4
    path.write_text("mqtt: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(path)


def test_cli_config_error_is_one_line(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("mqtt:\n  port: nope\n")
    proc = subprocess.run([sys.executable, "-m", "bridge", "run", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "hearth-bridge: config error: mqtt.port: expected int"


def _frames(levels_db: list[tuple[float, int]]) -> list[bytes]:
    rng = np.random.default_rng(1)
    out = []
    for db, count in levels_db:
        amp = 32768 * 10 ** (db / 20)
        for _ in range(count):
            out.append((rng.standard_normal(160) * amp).clip(-32768, 32767).astype("<i2").tobytes())
    return out


def test_endpointer_ends_on_energy_silence_long_before_vad() -> None:
    settings = EndpointSettings(silence_tail=0.3, vad_tail=0.7)
    ep = Endpointer(settings)
    frames = _frames([(-75, 30), (-20, 100), (-75, 100)])
    # VAD lags: says speech for 60 frames (0.6 s) after the energy drops
    vad = [0.0] * 30 + [1.0] * 160 + [0.0] * 40
    reason = None
    for i, frame in enumerate(frames):
        reason = ep.process(frame, vad[i], complete=False)
        if reason:
            break
    assert reason is EndReason.SILENCE
    assert ep.elapsed_ms - ep.last_voiced_ms == 300


def test_endpointer_complete_hint_is_faster() -> None:
    ep = Endpointer(EndpointSettings(silence_tail=0.3, complete_tail=0.1))
    for frame in _frames([(-75, 30), (-20, 100)]):
        assert ep.process(frame, 1.0, complete=False) is None
    reason = None
    for frame in _frames([(-75, 50)]):
        reason = ep.process(frame, 1.0, complete=True)
        if reason:
            break
    assert reason is EndReason.COMPLETE
    assert ep.elapsed_ms - ep.last_voiced_ms == 100


def test_endpointer_limits() -> None:
    ep = Endpointer(EndpointSettings(max_utterance=1.0))
    reasons = [ep.process(f, 1.0, False) for f in _frames([(-20, 100)])]
    assert reasons[-1] is EndReason.MAX_LENGTH
    ep = Endpointer(EndpointSettings(no_speech_timeout=0.5))
    reasons = [ep.process(f, 0.0, False) for f in _frames([(-75, 50)])]
    assert reasons[-1] is EndReason.NO_SPEECH


def test_cli_bad_vocabulary_file_is_one_clear_line(tmp_path) -> None:
    vocab = tmp_path / "home.yaml"
    vocab.write_text("language: en\nareas: []\nfloors: []\nentities:\n  - {id: light.a, domain: light}\n")
    proc = subprocess.run([sys.executable, "-m", "bridge", "run", "--vocabulary", str(vocab), "--data-dir", str(tmp_path / "d"),
                           "--mqtt-port", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("hearth-bridge: vocabulary error: entities[0].name"), proc.stderr


def test_quiet_gate_skips_silence_and_replays_the_onset() -> None:
    from bridge.pipeline.wake import QuietGate

    gate = QuietGate(quiet_after=1.0, preroll=0.5)
    rng = np.random.default_rng(5)
    quiet = (rng.standard_normal(480) * 10).astype("<i2").tobytes()  # ~-70 dBFS room noise
    loud = (rng.standard_normal(480) * 3000).astype("<i2").tobytes()
    fed = [gate.admit(quiet) for _ in range(100)]  # 3 s of quiet
    assert all(fed[i] == [quiet] for i in range(30))  # the first second still goes to the model
    assert sum(1 for f in fed if not f) >= 60  # then the model is spared
    onset = gate.admit(loud)
    assert onset[-1] == loud and len(onset) == 1 + int(0.5 * 32000 / 960)  # pre-roll, then the onset
    assert gate.admit(loud) == [loud]


def test_documented_configuration_is_valid(tmp_path) -> None:
    """docs/configuration.md shows every key; the example must pass the real schema."""
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parents[2] / "docs/configuration.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    raw = yaml.safe_load(example)
    config = validate(raw)  # as written: its ca_file (TLS off) need not exist
    assert config.mqtt.tls.enabled is False and config.mqtt.tls.ca_file == "/etc/hearth/ca.pem"
    assert config.satellites["kitchen"].area == "kitchen"
    assert config.recognition.sensitive_confidence == 0.6
    assert config.recognition.broad_confidence == 0.55


def test_tls_files_are_checked_when_tls_is_on(tmp_path) -> None:
    """A TLS file that is not there stops start-up only with TLS on, naming the key and why."""
    import pytest

    from bridge.config import ConfigError

    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError) as err:
        validate({"mqtt": {"tls": {"enabled": True, "ca_file": str(missing)}}})
    assert str(err.value) == (f"mqtt.tls.ca_file: {missing} is not a file (the CA file, read because "
                              "mqtt.tls.enabled is true)")
    with pytest.raises(ConfigError, match=r"^mqtt\.tls\.cert_file: .* is not a file \(the client certificate"):
        validate({"mqtt": {"tls": {"enabled": True, "cert_file": str(tmp_path)}}})  # a folder
    ca = tmp_path / "ca.pem"
    ca.write_text("-")
    assert validate({"mqtt": {"tls": {"enabled": True, "ca_file": str(ca)}}}).mqtt.tls.ca_file == str(ca)
    assert validate({"mqtt": {"tls": {"enabled": False, "ca_file": str(missing)}}}).mqtt.tls.enabled is False
    with pytest.raises(ConfigError, match=r"^mqtt\.tls\.ca_file: expected a file path"):
        validate({"mqtt": {"tls": {"ca_file": 3}}})
