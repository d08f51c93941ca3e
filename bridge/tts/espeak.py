"""Text to speech with espeak-ng, run as a local subprocess.

The text goes to espeak-ng on its standard input (never on the command line, where other local
users could read it in the process list, and never into a file). The WAV espeak-ng writes to
standard output is parsed in memory and converted to the rate the caller asks for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal

from bridge.audio.resample import convert
from bridge.audio.wav import WavError, parse_wav
from bridge.engines import EngineError, Locality, SynthesizedAudio, TextToSpeech

_LOGGER = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
MAX_TEXT_CHARS = 5000
MIN_RATE = 8000
MAX_RATE = 48000
# espeak-ng voice names: "en-us", "en-us+f3", "gmw/en-US", "mb-en1". Never an option ("-w ...").
_VOICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+./-]{0,63}$")


class EspeakTts(TextToSpeech):
    """espeak-ng as a local subprocess: nothing leaves the machine.

    Args:
        voice: espeak-ng voice name (``espeak-ng --voices`` lists them), e.g. ``"en-us"``.
        speed: words per minute (espeak-ng ``-s``), 80–450.
        executable: the program to run; ``espeak-ng`` from ``PATH`` unless given.
        timeout: seconds one synthesis may take before the process is killed.
    """

    name = "espeak"
    locality = Locality.IN_PROCESS

    def __init__(
        self,
        voice: str = "en-us",
        speed: int = 165,
        *,
        executable: str = "espeak-ng",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not _VOICE_RE.match(voice) or ".." in voice:
            raise ValueError(f"invalid espeak-ng voice name: {voice!r}")
        if not 80 <= int(speed) <= 450:
            raise ValueError(f"espeak-ng speed must be 80-450 words per minute, not {speed}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.voice = voice
        self.speed = int(speed)
        self.executable = executable
        self.timeout = timeout

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "voice": self.voice, "speed": self.speed}

    async def synthesize(self, text: str, rate: int) -> SynthesizedAudio:
        """Speak `text` as mono 16-bit PCM at `rate` Hz.

        Raises EngineError ``tts_empty_text``, ``tts_bad_rate``, ``tts_timeout`` (the process is
        killed) or ``tts_failed``. Cancelling the call kills the process too.
        """
        text = _clean_text(text)
        check_rate(rate)
        args = [self.executable, "--stdout", "--stdin", "-v", self.voice, "-s", str(self.speed)]
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group, so a kill reaches any children
            )
        except OSError as err:
            raise EngineError("tts_failed", f"cannot start {self.executable}: {err}") from err

        try:
            async with asyncio.timeout(self.timeout):
                stdout, stderr = await proc.communicate(text.encode("utf-8") + b"\n")
        except TimeoutError:
            await _kill(proc)
            raise EngineError(
                "tts_timeout", f"espeak-ng did not finish within {self.timeout:g} s; killed it"
            ) from None
        except BaseException:  # cancelled, or anything unexpected: never leave it running
            await _kill(proc)
            raise

        if proc.returncode != 0:
            detail = stderr.decode("utf-8", "replace").strip()[:200]
            raise EngineError(
                "tts_failed", f"espeak-ng exited with status {proc.returncode}: {detail}"
            )
        try:
            wav = parse_wav(stdout)
        except WavError as err:
            raise EngineError("tts_failed", f"espeak-ng produced no usable audio: {err}") from err
        if not wav.data:
            raise EngineError("tts_failed", "espeak-ng produced no audio")
        src_rate = wav.rate
        out = await asyncio.to_thread(convert, wav.data, wav.rate, wav.width, wav.channels, rate)
        return SynthesizedAudio(
            pcm=out,
            rate=rate,
            engine=self.name,
            locality=self.locality,
            bytes_sent=0,
            extra={"voice": self.voice, "source_rate": src_rate},
        )


def _clean_text(text: str) -> str:
    """Reject empty or oversized text; flatten control characters espeak-ng would read out."""
    if not isinstance(text, str) or not text.strip():
        raise EngineError("tts_empty_text", "nothing to say: the text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise EngineError(
            "tts_text_too_long", f"text has {len(text)} characters; the limit is {MAX_TEXT_CHARS}"
        )
    return "".join(ch if ch.isprintable() else " " for ch in text).strip()


def check_rate(rate: int) -> None:
    """Raise EngineError `tts_bad_rate` unless `rate` is a sensible output rate in Hz."""
    if not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise EngineError("tts_bad_rate", f"rate must be {MIN_RATE}-{MAX_RATE} Hz, not {rate!r}")


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill the process and its whole process group, then reap it."""
    # The group outlives its leader while a child (e.g. of a wrapper script) still runs.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(Exception):
        await asyncio.shield(proc.wait())
    _LOGGER.debug("killed %s (pid %s)", proc, proc.pid)
