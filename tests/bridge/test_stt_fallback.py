"""The stream interface's `complete` hint and the fallback stream (bridge/stt/fallback.py): the
hint passes through, and the local engine that takes over is opened in the satellite's area."""

from __future__ import annotations

from bridge.engines import EngineError, Locality, SpeechToText, SttStream, Transcript
from bridge.stt.fallback import FallbackSttStream


class Stream(SttStream):
    def __init__(self, text: str, fail: bool = False) -> None:
        self.text = text
        self.fail = fail
        self.fed: list[bytes] = []
        self.primed = b""
        self.cancelled = False

    async def prime(self, pcm: bytes) -> None:
        self.primed = pcm

    async def feed(self, pcm: bytes) -> None:
        self.fed.append(pcm)

    async def finish(self) -> Transcript:
        if self.fail:
            raise EngineError("stt_unreachable", "gone")
        return Transcript(self.text, 0.9)

    async def cancel(self) -> None:
        self.cancelled = True


class CompleteStream(Stream):
    @property
    def complete(self) -> bool:
        return True


class Local(SpeechToText):
    name = "local"
    locality = Locality.IN_PROCESS

    def __init__(self) -> None:
        self.opened: list[tuple[str, str | None]] = []
        self.stream = Stream("from local")

    async def open(self, session_id: str, *, area: str | None = None) -> SttStream:
        self.opened.append((session_id, area))
        return self.stream


def test_complete_is_false_unless_a_stream_says_otherwise() -> None:
    assert Stream("x").complete is False
    assert CompleteStream("x").complete is True
    local = Local()
    assert FallbackSttStream(Stream("x"), local, "s", lambda err: None).complete is False
    assert FallbackSttStream(CompleteStream("x"), local, "s", lambda err: None).complete is True


async def test_the_local_engine_takes_over_in_the_satellites_area() -> None:
    local = Local()
    errors: list[EngineError] = []
    stream = FallbackSttStream(Stream("remote", fail=True), local, "sess", errors.append, area="kitchen")
    await stream.prime(b"p")
    await stream.feed(b"a")
    await stream.feed(b"b")
    transcript = await stream.finish()
    assert transcript.text == "from local"
    assert local.opened == [("sess", "kitchen")]
    assert local.stream.primed == b"p" and local.stream.fed == [b"a", b"b"]
    assert [e.code for e in errors] == ["stt_unreachable"]


async def test_a_working_remote_engine_needs_no_local_one() -> None:
    local = Local()
    stream = FallbackSttStream(Stream("remote"), local, "sess", lambda err: None, area="kitchen")
    await stream.feed(b"a")
    assert (await stream.finish()).text == "remote"
    assert local.opened == []
