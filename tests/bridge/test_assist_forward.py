"""Assist pipeline streaming, bridge side: a satellite in `assist` mode has its command's audio
forwarded to Home Assistant (pipeline/start + pipeline/audio) instead of being recognized, and
Home Assistant's spoken answer (pipeline/play, a WAV) is played on the satellite.

Real Mosquitto, real bridge process; the satellite is driven frame by frame with a Probe.
The locality gate's part (a broker at a public address is refused under local-only, counted,
and nothing is published) is driven on ForwardStt itself, recording what it would publish.
"""

from __future__ import annotations

import asyncio
import json
import zlib

import pytest

from bridge.audio.resample import resample_pcm16
from bridge.audio.wav import make_wav
from bridge.engines import EngineError, Locality
from bridge.privacy.audit import AuditLog
from bridge.privacy.gate import LocalityGate
from bridge.privacy.locality import address_class as classify
from bridge.privacy.policy import Policy
from bridge.protocol.hearth import Topics, decode_frame, encode_frame
from bridge.stt.forward import ForwardStt
from bridge.tools.satellite import load_wav_pcm16k
from tests.support.bridge_proc import BridgeProcess, Probe
from tests.support.signing import signed
from tests.support.broker import Mosquitto

pytestmark = pytest.mark.timeout(180)

ONLINE = {"state": "online", "protocol": 1, "capabilities": {"wake_word": True, "speaker": True}, "play_rate": 16000}


@pytest.fixture(scope="module")
def forwarding(tmp_path_factory):
    broker = Mosquitto().start()
    data = tmp_path_factory.mktemp("assist-forward")
    bridge = BridgeProcess(broker.host, broker.port, data / "data", args=["--set", "stt.workers=1"]).start()
    try:
        yield broker, bridge
    finally:
        bridge.stop()
        broker.close()


async def _online(probe: Probe, sat: str, mode: str | None = "assist") -> None:
    await probe.client.publish(f"hearth/satellite/{sat}/status", json.dumps(ONLINE), retain=True)
    if mode is not None:
        await probe.client.publish(f"hearth/satellite/{sat}/pipeline/set", json.dumps({"mode": mode}), retain=True)
    await probe.wait_for(f"/{sat}/state", lambda d: d["state"] == "idle")
    await asyncio.sleep(0.3)


async def _speak(probe: Probe, sat: str, pcm: bytes, stream_id: int, until) -> None:
    """Wake event, then the audio in 30 ms frames in real time until `until()` holds."""
    await probe.client.publish(f"hearth/satellite/{sat}/event",
                               json.dumps({"type": "wake", "wake_word": "okay_nabu", "stream_id": stream_id}))
    audio = pcm + bytes(32000 * 2)
    for seq, offset in enumerate(range(0, len(audio), 960)):
        await probe.client.publish(f"hearth/satellite/{sat}/audio", encode_frame(stream_id, seq, audio[offset:offset + 960]))
        await asyncio.sleep(0.03)
        if until():
            return


def _frames(probe: Probe, sat: str) -> list:
    return [decode_frame(p) for t, p in probe.messages if t == f"hearth/satellite/{sat}/pipeline/audio"]


async def test_assist_satellite_forwards_audio_and_plays_the_answer(forwarding, say) -> None:
    broker, bridge = forwarding
    spoken = load_wav_pcm16k(say("turn on the kitchen light"))  # 0.6 s of silence either side
    async with Probe(broker.host, broker.port, ["hearth/#"]) as probe:
        await _online(probe, "fwd")
        await _speak(probe, "fwd", spoken, 41, until=lambda: any(f.last for f in _frames(probe, "fwd")))
        deadline = asyncio.get_running_loop().time() + 15
        while not any(f.last for f in _frames(probe, "fwd")):
            assert asyncio.get_running_loop().time() < deadline, "no last frame forwarded"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)

        wake = probe.json("/fwd/wake")[0]
        start = probe.json("/fwd/pipeline/start")[0]
        assert start["session_id"] == wake["session_id"]
        assert start["wake_word"] == "okay_nabu"
        assert start["stream_id"] == zlib.crc32(wake["session_id"].encode())
        # pipeline/start comes before the first audio frame.
        topics = [t for t, _ in probe.messages]
        assert topics.index("hearth/satellite/fwd/pipeline/start") < topics.index("hearth/satellite/fwd/pipeline/audio")

        frames = _frames(probe, "fwd")
        assert [f.seq for f in frames] == list(range(len(frames)))
        assert {f.stream_id for f in frames} == {start["stream_id"]}
        assert [f.last for f in frames] == [False] * (len(frames) - 1) + [True]
        assert all(len(f.pcm) == 960 for f in frames[:-1]) and len(frames[-1].pcm) <= 960
        pcm = b"".join(f.pcm for f in frames)
        # The whole utterance, ended by the endpointer shortly after the speech: at least the
        # speech itself (the wav minus its trailing pad), at most what was sent.
        assert len(spoken) - 0.7 * 32000 <= len(pcm) <= len(spoken) + 2 * 32000
        assert pcm[:len(spoken) - 32000] == spoken[:len(spoken) - 32000]  # the audio itself, in order

        # Home Assistant recognizes it: the bridge publishes no transcript or intent.
        assert not probe.json("/fwd/transcript") and not probe.json("/fwd/intent")
        # The audit names Home Assistant on the LAN and counts the bytes that left the bridge.
        audit = await probe.wait_for("hearth/bridge/audit", lambda d: any(
            e["session_id"] == wake["session_id"] for e in d["recent"]), timeout=15)
        entry = next(e for e in audit["recent"] if e["session_id"] == wake["session_id"])
        stt = [e for e in entry["engines"] if e["kind"] == "stt"]
        assert stt == [{"kind": "stt", "name": "home_assistant", "locality": "lan"}]
        assert entry["bytes_off_process"] == sum(12 + len(f.pcm) for f in frames)
        assert entry["address_class"] == "loopback"
        state = await probe.wait_for("/fwd/state", lambda d: d["state"] == "idle" and d["last"])
        assert state["last"]["engine"] == "home_assistant"

        # Home Assistant's answer: one WAV at 22.05 kHz, played as chunks at the satellite's rate.
        answer = load_wav_pcm16k(say("the kitchen light is on"))
        await probe.client.publish("hearth/satellite/fwd/pipeline/play", make_wav(resample_pcm16(answer, 16000, 22050), rate=22050))
        await probe.wait_for("/fwd/state", lambda d: d["state"] == "responding")
        played = []
        deadline = asyncio.get_running_loop().time() + 15
        while not (played and played[-1].last):
            assert asyncio.get_running_loop().time() < deadline, "no complete playback"
            played = sorted((decode_frame(p) for t, p in probe.messages if t == "hearth/satellite/fwd/play"), key=lambda f: f.seq)
            await asyncio.sleep(0.1)
        assert all(len(f.pcm) <= 1920 for f in played)
        assert abs(sum(len(f.pcm) for f in played) - len(answer)) < 0.02 * 32000
        await probe.client.publish("hearth/satellite/fwd/event", json.dumps({"type": "played"}))
        await probe.wait_for("/fwd/state", lambda d: d["state"] == "idle" and topics_after(probe, "responding"))


def topics_after(probe: Probe, state: str) -> bool:
    states = [d["state"] for d in probe.json("/fwd/state")]
    return state in states and states[-1] == "idle"


async def test_hearth_mode_again_recognizes_locally(forwarding, say) -> None:
    broker, bridge = forwarding
    spoken = load_wav_pcm16k(say("turn on the kitchen light"))
    async with Probe(broker.host, broker.port, ["hearth/satellite/back/#"]) as probe:
        await _online(probe, "back", mode="assist")
        await probe.client.publish("hearth/satellite/back/pipeline/set", json.dumps({"mode": "hearth"}), retain=True)
        await asyncio.sleep(0.3)
        await _speak(probe, "back", spoken, 7, until=lambda: bool(probe.json("/back/transcript")))
        transcript = await probe.wait_for("/back/transcript")
        assert transcript["text"] == "turn on the kitchen light"
        assert transcript["engine"] == "pocketsphinx"
        assert not _frames(probe, "back")


async def test_muted_assist_satellite_forwards_nothing(forwarding, say) -> None:
    broker, bridge = forwarding
    spoken = load_wav_pcm16k(say("turn on the kitchen light"))
    async with Probe(broker.host, broker.port, ["hearth/#"]) as probe:
        await _online(probe, "hush")
        await probe.client.publish("hearth/bridge/policy/set", signed(bridge.data_dir, "hearth/bridge/policy/set",
            {"request_id": "m1", "microphones": {"hush": {"muted": True}}}))
        await probe.wait_for("hearth/bridge/policy/result", lambda d: d["request_id"] == "m1" and d["ok"])
        await _speak(probe, "hush", spoken[:32000], 3, until=lambda: bool(probe.json("/hush/pipeline/start")))
        await asyncio.sleep(0.5)
        assert not probe.json("/hush/pipeline/start")
        assert not _frames(probe, "hush")
        await probe.client.publish("hearth/bridge/policy/set", signed(bridge.data_dir, "hearth/bridge/policy/set",
            {"request_id": "m2", "microphones": {"hush": {"muted": False}}}))
        await probe.wait_for("hearth/bridge/policy/result", lambda d: d["request_id"] == "m2")


async def test_a_mute_after_the_forwarded_audio_withdraws_the_command(forwarding, say) -> None:
    """The audio already went to Home Assistant, whose pipeline may still be running it: the mute
    sends a fatal `muted` error for that session before `policy/result` confirms it (Home
    Assistant abandons a run on a fatal error)."""
    broker, bridge = forwarding
    spoken = load_wav_pcm16k(say("turn on the kitchen light"))
    async with Probe(broker.host, broker.port, ["hearth/#"]) as probe:
        await _online(probe, "late")
        await _speak(probe, "late", spoken, 52, until=lambda: any(f.last for f in _frames(probe, "late")))
        async with asyncio.timeout(15):
            while not any(f.last for f in _frames(probe, "late")):
                await asyncio.sleep(0.05)
        session_id = probe.json("/late/pipeline/start")[0]["session_id"]
        assert not [e for e in probe.json("/late/error") if e.get("fatal")]  # the session ended normally
        await probe.client.publish("hearth/bridge/policy/set", signed(bridge.data_dir, "hearth/bridge/policy/set",
            {"request_id": "m-late", "microphones": {"late": {"muted": True}}}))
        await probe.wait_for("hearth/bridge/policy/result", lambda d: d["request_id"] == "m-late" and d["ok"])
        topics = [(t, json.loads(p)) for t, p in probe.messages if t.endswith(("/late/error", "policy/result"))]
        withdrawn = [i for i, (t, d) in enumerate(topics) if t.endswith("/late/error") and d["fatal"]
                     and d["code"] == "muted" and d["session_id"] == session_id]
        confirmed = [i for i, (t, d) in enumerate(topics) if t.endswith("policy/result") and d["request_id"] == "m-late"]
        assert withdrawn and withdrawn[0] < confirmed[0], topics
        await probe.client.publish("hearth/bridge/policy/set", signed(bridge.data_dir, "hearth/bridge/policy/set",
            {"request_id": "u-late", "microphones": {"late": {"muted": False}}}))
        await probe.wait_for("hearth/bridge/policy/result", lambda d: d["request_id"] == "u-late")


async def test_bad_pipeline_mode_is_reported(forwarding) -> None:
    broker, _ = forwarding
    async with Probe(broker.host, broker.port, ["hearth/bridge/error"]) as probe:
        await probe.client.publish("hearth/satellite/odd/pipeline/set", json.dumps({"mode": "cloud"}))
        error = await probe.wait_for("hearth/bridge/error", lambda d: d["code"] == "bad_pipeline_mode")
        assert error["topic"] == "hearth/satellite/odd/pipeline/set"
        await probe.client.publish("hearth/satellite/odd/pipeline/other", b"{}")
        await probe.wait_for("hearth/bridge/error", lambda d: d["code"] == "bad_topic")


def test_pipeline_topics_parse() -> None:
    topics = Topics("hearth")
    assert topics.parse_satellite_topic("hearth/satellite/k/pipeline/set") == ("k", "pipeline/set")
    assert topics.parse_satellite_topic("hearth/satellite/k/pipeline/audio") == ("k", "pipeline/audio")
    with pytest.raises(ValueError):
        topics.parse_satellite_topic("hearth/satellite/k/pipeline/set/x")
    with pytest.raises(ValueError):
        topics.parse_satellite_topic("hearth/satellite/k/other/set")


# -- the locality gate: the forward leaves through the broker, so the broker's address decides --


class _Published:
    """Records what ForwardStt publishes, in order (what the bridge would queue for MQTT)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes | dict[str, object]]] = []

    def __call__(self, topic: str, payload: bytes | dict[str, object]) -> None:
        self.messages.append((topic, payload))

    def topics(self) -> list[str]:
        return [t for t, _ in self.messages]


def _forward_stt(published: _Published, policy: Policy, broker: str) -> tuple[ForwardStt, LocalityGate]:
    gate = LocalityGate(lambda: policy, AuditLog())
    return ForwardStt(published, Topics("hearth").satellite, gate,
                      lambda: classify(broker)), gate


async def test_public_broker_is_refused_under_local_only_and_nothing_is_published() -> None:
    published = _Published()
    stt, gate = _forward_stt(published, Policy(local_only=True), "198.51.100.7")
    with pytest.raises(EngineError) as info:
        await stt.open("s-public", "kitchen", "okay_nabu")
    assert info.value.code == "cloud_refused"
    assert "local-only" in info.value.message and "public" in info.value.message
    assert gate.audit.counters["blocked_cloud_requests"] == 1
    assert gate.audit.blocked_by() == {("home_assistant", "local_only"): 1}
    assert published.messages == []  # not even pipeline/start, and no audio frame
    # Every later attempt is refused and counted again; still nothing published.
    with pytest.raises(EngineError):
        await stt.open("s-public-2", "kitchen", "okay_nabu", area="kitchen")
    assert gate.audit.blocked_by() == {("home_assistant", "local_only"): 2}
    assert published.messages == []


@pytest.mark.parametrize(("broker", "address_class"), [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("192.168.1.4", "lan"), ("fd00::4", "lan"),
])
async def test_home_broker_forwards_under_local_only(broker: str, address_class: str) -> None:
    published = _Published()
    stt, gate = _forward_stt(published, Policy(local_only=True), broker)
    stream = await stt.open("s-home", "kitchen", "okay_nabu", area="kitchen")
    await stream.feed(bytes(960 * 2 + 100))
    transcript = await stream.finish()
    assert published.topics() == ["hearth/satellite/kitchen/pipeline/start"] + [
        "hearth/satellite/kitchen/pipeline/audio"] * 3
    frames = [decode_frame(p) for t, p in published.messages[1:] if isinstance(p, bytes)]
    assert [(f.seq, f.last, len(f.pcm)) for f in frames] == [(0, False, 960), (1, False, 960), (2, True, 100)]
    assert transcript.forwarded and transcript.text == ""
    assert (transcript.engine, transcript.locality, transcript.address_class) == (
        "home_assistant", Locality.LAN, address_class)
    assert transcript.bytes_sent == sum(12 + len(f.pcm) for f in frames)
    assert gate.audit.counters["blocked_cloud_requests"] == 0
    assert stt.describe()["address_class"] == address_class


async def test_public_broker_forwards_as_cloud_when_the_owner_allows_it() -> None:
    published = _Published()
    policy = {"now": Policy(local_only=False)}
    gate = LocalityGate(lambda: policy["now"], AuditLog())
    stt = ForwardStt(published, Topics("hearth").satellite, gate, lambda: "public")
    stream = await stt.open("s-cloud", "kitchen", None)
    transcript = await stream.finish()
    assert (transcript.locality, transcript.address_class, transcript.forwarded) == (
        Locality.CLOUD, "public", True)
    assert stt.locality is Locality.CLOUD
    assert published.topics()[0] == "hearth/satellite/kitchen/pipeline/start"
    # The policy is read on every open.
    policy["now"] = Policy(local_only=True)
    before = len(published.messages)
    with pytest.raises(EngineError):
        await stt.open("s-cloud-2", "kitchen", None)
    assert len(published.messages) == before


@pytest.mark.parametrize("answer", ["", "none", "LAN", "elsewhere", None])
async def test_unknown_broker_address_fails_closed(answer: str | None) -> None:
    published = _Published()
    gate = LocalityGate(lambda: Policy(local_only=True), AuditLog())

    def broker_class() -> str:
        if answer is None:
            raise OSError("not connected")
        return answer

    stt = ForwardStt(published, Topics("hearth").satellite, gate, broker_class)
    with pytest.raises(EngineError) as info:
        await stt.open("s-unknown", "kitchen", None)
    assert info.value.code == "cloud_refused"
    assert published.messages == []
    assert gate.audit.counters["blocked_cloud_requests"] == 1
