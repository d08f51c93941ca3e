"""The contract between the bridge and the Home Assistant integration, checked from both sides.

The integration talks to the bridge only over MQTT and never imports `bridge`, so what both must
agree on is copied into it: the protocol version, the audio frame header, the wake word names,
the satellite id pattern (custom_components/hearth/const.py), the address table that decides
what is local (custom_components/hearth/locality.py) and the WAV helpers
(custom_components/hearth/wav.py). This test imports both sides and compares each copy with the
bridge's, by value and by behaviour.
"""

from __future__ import annotations

import struct
import time

import pytest

import bridge
from bridge.audio.wav import make_wav, parse_wav
from bridge.config import WAKE_WORDS as BRIDGE_WAKE_WORDS
from bridge.config import ConfigError, validate
from bridge.privacy import locality as bridge_locality
from bridge.privacy.policy import SATELLITE_ID_RE as POLICY_SATELLITE_ID
from bridge.privacy.policy import Policy, PolicyError
from bridge.protocol import hearth as bridge_protocol
from bridge.protocol.hearth import ProtocolError, Topics
from custom_components.hearth import const as ha_const
from custom_components.hearth import locality as ha_locality
from custom_components.hearth.assist_stream import decode_frame as ha_decode_frame
from custom_components.hearth.assist_stream import wav_for_bridge
from custom_components.hearth.voice import address_is_public
from custom_components.hearth.wav import build_wav, wav_parts

# -- addresses: one table, two copies ------------------------------------------------------

ADDRESSES: list[tuple[str, str]] = [
    # loopback, IPv4 and IPv6
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("[::1]", "loopback"),
    # RFC 1918, at the edges of each range and just outside them
    ("10.0.0.0", "lan"),
    ("10.255.255.255", "lan"),
    ("9.255.255.255", "public"),
    ("11.0.0.0", "public"),
    ("172.16.0.0", "lan"),
    ("172.31.255.255", "lan"),
    ("172.15.255.255", "public"),
    ("172.32.0.0", "public"),
    ("192.168.0.0", "lan"),
    ("192.168.255.255", "lan"),
    ("192.167.255.255", "public"),
    ("192.169.0.0", "public"),
    # carrier-grade NAT (also Tailscale): deliberately public to both, see locality.py
    ("100.64.0.0", "public"),
    ("100.64.0.1", "public"),
    ("100.127.255.255", "public"),
    # link-local, IPv4 and IPv6 (with and without a zone)
    ("169.254.0.1", "lan"),
    ("169.254.255.255", "lan"),
    ("169.253.255.255", "public"),
    ("fe80::1", "lan"),
    ("fe80::1%eth0", "lan"),
    ("[fe80::1]", "lan"),
    ("febf:ffff::1", "lan"),
    ("fec0::1", "public"),
    # unique-local fc00::/7
    ("fc00::1", "lan"),
    ("fd12:3456:789a::1", "lan"),
    ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "lan"),
    ("fbff::1", "public"),
    ("fe00::1", "public"),
    # documentation and benchmark ranges: `ipaddress.is_private` calls them private; we do not
    ("192.0.2.1", "public"),
    ("198.51.100.7", "public"),
    ("203.0.113.9", "public"),
    ("2001:db8::1", "public"),
    ("198.18.0.1", "public"),
    # IPv4-mapped IPv6: judged by the IPv4 address
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "lan"),
    ("::ffff:192.168.1.1", "lan"),
    ("::ffff:198.51.100.7", "public"),
    ("::ffff:8.8.8.8", "public"),
    # public, IPv4 and IPv6, and the odd ones
    ("8.8.8.8", "public"),
    ("1.1.1.1", "public"),
    ("2606:4700::1111", "public"),
    ("2a00:1450:4001::1", "public"),
    ("0.0.0.0", "public"),
    ("::", "public"),
    ("224.0.0.1", "public"),
    ("255.255.255.255", "public"),
    (" 10.0.0.1 ", "lan"),
    # malformed: public (fail closed)
    ("", "public"),
    ("localhost", "public"),
    ("nas.home", "public"),
    ("256.1.1.1", "public"),
    ("10.0.0", "public"),
    ("10.0.0.1.", "public"),
    ("::g", "public"),
    ("[10.0.0.1", "public"),
    ("10.0.0.1/8", "public"),
    ("fe80::1%", "public"),
]


@pytest.mark.parametrize(("ip", "expected"), ADDRESSES)
def test_both_sides_classify_addresses_the_same(ip: str, expected: str) -> None:
    assert bridge_locality.address_class(ip) == expected
    assert ha_locality.address_class(ip) == expected


def test_the_tables_are_the_same() -> None:
    assert ha_locality.LOOPBACK_NETWORKS == bridge_locality.LOOPBACK_NETWORKS
    assert ha_locality.LAN_NETWORKS == bridge_locality.LAN_NETWORKS


@pytest.mark.parametrize(("ip", "expected"), ADDRESSES)
def test_the_integration_judges_engine_addresses_by_the_table(ip: str, expected: str) -> None:
    """A conversation agent's configured address is public to the integration exactly when
    the bridge would refuse it; names (and anything not an address) are not judged."""
    literal = ha_locality.is_ip_literal(ip)
    assert address_is_public(ip) == (literal and expected == "public")
    if literal and ":" not in ip.strip("[] "):
        assert address_is_public(f"http://{ip.strip()}:8080/v1") == (expected == "public")
    elif literal:
        host = ip.strip().strip("[]")
        assert address_is_public(f"http://[{host}]:8080/v1") == (expected == "public")


# -- the protocol: version, frame header, wake words, satellite ids -------------------------


def test_protocol_version() -> None:
    assert ha_const.PROTOCOL_VERSION == bridge.PROTOCOL_VERSION
    assert bridge.PROTOCOL_VERSION in ha_const.SUPPORTED_PROTOCOL_VERSIONS


def test_audio_frames() -> None:
    assert ha_const.FRAME_HEADER.format == bridge_protocol.FRAME_HEADER.format
    assert ha_const.FLAG_LAST == bridge_protocol.FLAG_LAST
    pcm = bytes(range(256)) * 3 + b"\x01\x02"
    for last in (False, True):
        frame = bridge_protocol.encode_frame(0xDEADBEEF, 7, pcm, last)
        assert ha_decode_frame(frame) == (0xDEADBEEF, 7, pcm, last)
    assert ha_decode_frame(bridge_protocol.encode_frame(1, 0, b"", True)) == (1, 0, b"", True)
    # Another version, a truncated header, odd PCM: refused by both.
    for bad in (
        struct.pack("<BBHII", bridge.PROTOCOL_VERSION + 1, 0, 0, 1, 0) + b"\x00\x00",
        bridge_protocol.encode_frame(1, 0, b"")[:11],
        bridge_protocol.encode_frame(1, 0, b"") + b"\x00",
    ):
        assert ha_decode_frame(bad) is None
        with pytest.raises(ProtocolError):
            bridge_protocol.decode_frame(bad)


def test_wake_words() -> None:
    assert tuple(ha_const.WAKE_WORDS) == BRIDGE_WAKE_WORDS


def test_sensitivities() -> None:
    """The finished-speaking choices the integration offers are the ones the bridge accepts."""
    from bridge.protocol.messages import SENSITIVITIES
    from custom_components.hearth.satellite_settings import SENSITIVITIES as HA_SENSITIVITIES

    assert sorted(HA_SENSITIVITIES) == sorted(SENSITIVITIES)


def test_confirm_modes_and_question_events() -> None:
    """The integration's `confirm` choices are the bridge's; it listens to the question and answer
    topics the bridge publishes."""
    from bridge.protocol.hearth import BRIDGE_OUTBOUND
    from bridge.protocol.messages import CONFIRM_MODES

    assert tuple(ha_const.CONFIRM_MODES) == CONFIRM_MODES
    assert {ha_const.EVENT_QUESTION, ha_const.EVENT_ANSWER} <= BRIDGE_OUTBOUND


SATELLITE_IDS = [
    "kitchen",
    "Living_Room-2",
    "a",
    "a" * 64,
    "a" * 65,
    "",
    "kitchen.main",
    "kitchen main",
    "küche",
    "a+b",
    "a#",
    "a*",
    "a@b",
    "a:b",
    "kitchen\n",
    "living.room",
    "pi@kitchen",
    "a/b",
    "$SYS",
]


def _topic_accepts(sat: str) -> bool:
    try:
        Topics("hearth").parse_satellite_topic(f"hearth/satellite/{sat}/status")
    except ProtocolError:
        return False
    return True


def _policy_accepts(sat: str) -> bool:
    try:
        Policy().apply({"microphones": {sat: {"muted": True}}}, time.time())
    except PolicyError:
        return False
    return True


def test_satellite_id_pattern() -> None:
    assert ha_const.SATELLITE_ID_PATTERN == bridge_protocol.SATELLITE_ID_PATTERN
    assert ha_const.SATELLITE_ID_PATTERN == bridge_protocol.SATELLITE_ID.pattern
    assert POLICY_SATELLITE_ID.pattern == ha_const.SATELLITE_ID_PATTERN
    # Hermes site ids seen in the wild are satellite ids; topic wildcards and levels never are.
    for served in ("living.room", "pi@kitchen", "rhasspy:sat"):
        assert ha_const.SATELLITE_ID.fullmatch(served), served
    for refused in ("a/b", "a+b", "a#"):
        assert not ha_const.SATELLITE_ID.fullmatch(refused), refused


@pytest.mark.parametrize("sat", SATELLITE_IDS)
def test_satellite_ids_accepted_alike(sat: str) -> None:
    integration = ha_const.SATELLITE_ID.fullmatch(sat) is not None
    if "/" not in sat:  # a `/` makes another topic level: refused as a malformed topic
        assert _topic_accepts(sat) == integration
    assert _policy_accepts(sat) == integration


def _config_accepts(sat: str) -> bool:
    try:
        validate({"bridge_id": "contract", "data_dir": "/nonexistent", "satellites": {sat: {}}})
    except ConfigError:
        return False
    return True


def _config_accepts_hermes_site(sat: str) -> bool:
    try:
        validate({"bridge_id": "contract", "data_dir": "/nonexistent", "hermes": {"sites": [sat]}})
    except ConfigError:
        return False
    return True


def test_bridge_config_accepts_the_same_satellite_ids() -> None:
    for sat in SATELLITE_IDS:
        integration = ha_const.SATELLITE_ID.fullmatch(sat) is not None
        assert _config_accepts(sat) == integration, sat
        assert _config_accepts_hermes_site(sat) == integration, sat


# -- WAV: what one side writes, the other reads ----------------------------------------------


def _fmt16(rate: int, width: int, channels: int, audio_format: int = 1) -> bytes:
    return struct.pack(
        "<HHIIHH", audio_format, channels, rate, rate * channels * width, channels * width, width * 8
    )


@pytest.mark.parametrize(("rate", "width", "channels"), [(16000, 2, 1), (22050, 2, 2), (48000, 4, 1)])
def test_wav_the_integration_writes_is_read_by_the_bridge(rate: int, width: int, channels: int) -> None:
    pcm = bytes(range(256)) * (width * channels)
    chunk = parse_wav(build_wav(_fmt16(rate, width, channels), pcm))
    assert (chunk.rate, chunk.width, chunk.channels, chunk.data) == (rate, width, channels, pcm)
    assert chunk.declared_length == len(pcm)


@pytest.mark.parametrize(("rate", "width", "channels"), [(16000, 2, 1), (22050, 2, 2), (8000, 1, 1)])
def test_wav_the_bridge_writes_is_read_by_the_integration(rate: int, width: int, channels: int) -> None:
    pcm = bytes(range(256)) * (width * channels)
    parts = wav_parts(make_wav(pcm, rate=rate, width=width, channels=channels))
    assert parts is not None
    fmt, data = parts
    assert fmt == _fmt16(rate, width, channels)
    assert data == pcm


def test_wav_with_extra_chunks_and_a_streaming_header() -> None:
    """Both walk the chunks (odd sizes padded) and accept a streaming header's open length."""
    pcm = b"\x10\x00\x20\x00" * 100
    fmt = _fmt16(16000, 2, 1)
    listed = (
        b"RIFF" + struct.pack("<I", 0) + b"WAVE"
        + b"fmt " + struct.pack("<I", 16) + fmt
        + b"LIST" + struct.pack("<I", 5) + b"abcde\x00"  # odd size, padded
        + b"data" + struct.pack("<I", 0xFFFFFFFF) + pcm
    )
    parts = wav_parts(listed)
    assert parts == (fmt, pcm)
    chunk = parse_wav(listed)
    assert (chunk.rate, chunk.width, chunk.channels, chunk.data) == (16000, 2, 1, pcm)
    # What the integration sends the bridge for such a file: one plain WAV the bridge reads.
    repaired = wav_for_bridge("wav", listed)
    assert repaired is not None
    again = parse_wav(repaired)
    assert (again.rate, again.width, again.channels, again.data) == (16000, 2, 1, pcm)
    assert again.declared_length == len(pcm)


def test_command_signing_matches() -> None:
    """The integration signs exactly as the bridge verifies (bridge/privacy/auth.py, pairing.py)."""
    from bridge.privacy import auth
    from custom_components.hearth import pairing

    key = bytes(range(32))
    topic, body = "hearth/satellite/kitchen/settings/set", '{"request_id": "r", "wake_word": "alexa"}'.encode()
    assert pairing.sign(key, topic, 1733600000123, body) == auth.sign(key, topic, 1733600000123, body)
    assert pairing.key_id(key) == auth.key_id(key)
    assert pairing.SCHEME == auth.SCHEME
    for pasted in (key.hex().upper(), " ".join(key.hex()[i:i + 8] for i in range(0, 64, 8)), "xyz", "ab" * 31):
        try:
            expected = auth.normalize_key(pasted)
        except ValueError:
            with pytest.raises(ValueError):
                pairing.normalize_key(pasted)
        else:
            assert pairing.normalize_key(pasted) == expected
