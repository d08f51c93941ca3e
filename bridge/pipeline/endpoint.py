"""End-of-speech detection: pymicro-vad plus frame energy relative to the room plus the recognizer's view.

pymicro-vad keeps reporting speech for 0.35-0.65 s after speech really ends, so a VAD silence
tail alone adds most of a second to every answer. Frame energy drops the moment the talker stops,
provided it is measured against the room's own noise floor: a low percentile of the recent frame
energies (30 ms smoothed), seeded from the audio the satellite heard just before the session when
there is some (:meth:`Endpointer.prime`), so a steady noisy room is known from the first frame and a
session without pre-roll learns it within a fraction of a second. The energy threshold sits above
that floor by a margin that shrinks when the speech is not much louder than the room. Before
speech the floor follows the room both ways; once speech started it can only fall, so the speech
itself never drags it up. When the recognizer says its partial hypothesis is already a complete
command a short tail suffices; when a recognizer that judges this hears no whole command yet, the
tail is long enough for a speaker who pauses mid-command. Where the room's noise sets the
threshold, weak sounds vanish under it and every tail grows a little; at about 5 dB SNR an energy
end also waits for a moment of VAD silence. The VAD tail stays as the fallback for rooms whose noise is as loud and as changing
as speech (babble, music), and a hard maximum bounds every utterance.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

FRAME_MS = 10
FRAME_BYTES = 320  # 10 ms at 16 kHz, 16-bit mono
FLOOR_FRAMES = 150  # the floor is a low percentile of the last 1.5 s of frame energies
FLOOR_PERCENTILE = 10.0
SMOOTH_FRAMES = 3  # energy averaged over 30 ms: a single loud noise frame is not speech
MARGIN_DB = 9.0  # threshold above the floor when speech is well above the room
MIN_MARGIN_DB = 6.0  # never closer to the floor than this (pink noise's 30 ms energy spreads ~7 dB)
START_MARGIN_DB = 3.0  # speech starts with the VAD and energy this far above the floor
ABSOLUTE_FLOOR_DB = -60.0  # below this nothing counts as speech, however quiet the room
PEAK_RANGE_DB = 35.0  # nor anything more than this below the utterance's loudest frame
#: added to every tail when the room's noise, not the speech, sets the threshold: weak sounds
#: (f, th, s, h) then vanish under it, leaving energy gaps of up to ~0.27 s inside words at 10 dB
#: SNR and ~0.12 s at each edge of a pause (measured with bench/endpoint_bench.py, tuning voices)
NOISY_EXTRA = 0.20
CLEAR_RANGE_DB = 22.0  # gaps inside words stay under 0.18 s while speech is this far above the floor
#: speech less than this above the floor (about 5 dB SNR): whole words can stay under the energy
#: threshold, so an energy end also needs the VAD silent for LOW_RANGE_VAD seconds (still far
#: sooner than the VAD tail; a mid-command pause is shorter than the VAD's lag plus this)
LOW_RANGE_DB = 13.0
LOW_RANGE_VAD = 0.20


class EndReason(enum.StrEnum):
    SILENCE = "silence"
    COMPLETE = "complete"
    VAD = "vad"
    MAX_LENGTH = "max_length"
    NO_SPEECH = "no_speech"


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    silence_tail: float = 0.30
    complete_tail: float = 0.10
    #: the silence tail while a recognizer that judges completion hears no whole command yet:
    #: long enough for a speaker who pauses mid-command ("turn on the ... kitchen light")
    pause_tail: float = 0.70
    vad_tail: float = 0.70
    max_utterance: float = 8.0
    no_speech_timeout: float = 4.0
    vad_threshold: float = 0.5
    min_speech: float = 0.15


def frame_dbfs(frame: bytes) -> float:
    """The level of 16-bit PCM in dB relative to full scale (-120 for digital silence)."""
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    if samples.size == 0:
        return -120.0
    power = float(np.dot(samples, samples)) / samples.size
    return 10 * math.log10(power / 1073741824.0) if power > 0 else -120.0


def _db(power: float) -> float:
    return 10 * math.log10(power) if power > 1e-12 else -120.0


class Endpointer:
    """Fed one 10 ms frame at a time; says when the utterance has ended and why.

    `judges_completion`: the recognizer's `complete` flag is meaningful (it says when its partial
    hypothesis is a whole command); then an incomplete one waits `pause_tail`, not `silence_tail`.
    """

    def __init__(self, settings: EndpointSettings, judges_completion: bool = False) -> None:
        self.s = settings
        self.judges_completion = judges_completion
        self.elapsed_ms = 0
        self.speech_ms = 0
        self.in_speech = False
        self.energy_silence_ms = 0
        self.vad_silence_ms = 0
        self.noise_floor = -70.0
        self.peak = -120.0
        # Where speech last had energy: the best estimate of the real end of speech.
        self.last_voiced_ms = 0
        self._recent: deque[float] = deque()  # the last FLOOR_FRAMES levels (dBFS), oldest first
        self._sorted: list[float] = []  # the same levels, sorted (the percentile in O(window))
        self._powers: deque[float] = deque(maxlen=SMOOTH_FRAMES)  # the last frames' mean power (full scale 1)

    def _level(self, frame: bytes) -> float:
        """The frame's level in dBFS, or the 30 ms mean if lower: a lone loud frame of noise does
        not count as speech, and the level still drops with the first quiet frame."""
        db = frame_dbfs(frame)
        self._powers.append(10 ** (db / 10))
        return min(db, _db(sum(self._powers) / len(self._powers)))

    def prime(self, pcm: bytes) -> None:
        """Audio from just before the session (it may hold the wake word): its quieter frames are
        the room's noise. Only levels are kept, never the audio. Before the first :meth:`process`."""
        for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
            self._remember(self._level(pcm[i : i + FRAME_BYTES]))
        if self._recent:
            self.noise_floor = self._percentile()

    def _remember(self, level: float) -> None:
        if len(self._recent) == FLOOR_FRAMES:
            del self._sorted[bisect.bisect_left(self._sorted, self._recent.popleft())]
        self._recent.append(level)
        bisect.insort(self._sorted, level)

    def _percentile(self) -> float:
        """FLOOR_PERCENTILE of the remembered levels, interpolated like numpy's default."""
        pos = FLOOR_PERCENTILE / 100 * (len(self._sorted) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(self._sorted) - 1)
        return self._sorted[lo] + (self._sorted[hi] - self._sorted[lo]) * (pos - lo)

    def threshold(self) -> float:
        """Frames louder than this have speech energy."""
        margin = MARGIN_DB
        if self.in_speech:  # speech not much louder than the room: meet it halfway
            margin = min(MARGIN_DB, max(MIN_MARGIN_DB, (self.peak - self.noise_floor) / 2))
        return max(self.noise_floor + margin, ABSOLUTE_FLOOR_DB, self.peak - PEAK_RANGE_DB)

    def noisy(self) -> bool:
        """The room's noise, not the speech's own range, sets the energy threshold."""
        return self.noise_floor + MIN_MARGIN_DB > max(ABSOLUTE_FLOOR_DB, self.peak - PEAK_RANGE_DB)

    def process(self, frame: bytes, vad_prob: float, complete: bool) -> EndReason | None:
        self.elapsed_ms += FRAME_MS
        db = self._level(frame)
        self._remember(db)
        floor = self._percentile()
        # Before speech the floor follows the room; during speech it may only fall.
        self.noise_floor = min(floor, self.noise_floor) if self.in_speech else floor
        voiced = db > self.threshold()
        if vad_prob >= self.s.vad_threshold:
            self.vad_silence_ms = 0
            # Speech starts when the VAD and the energy agree (neither alone is trusted); the
            # energy only needs to stand out of the room, so quiet speakers in noise start too.
            if voiced or (not self.in_speech and db > max(self.noise_floor + START_MARGIN_DB, ABSOLUTE_FLOOR_DB)):
                self.speech_ms += FRAME_MS
                if self.speech_ms >= self.s.min_speech * 1000:
                    self.in_speech = True
        else:
            self.vad_silence_ms += FRAME_MS
        if voiced:
            self.energy_silence_ms = 0
            self.last_voiced_ms = self.elapsed_ms
            if self.in_speech:
                self.peak = max(self.peak, db)
        else:
            self.energy_silence_ms += FRAME_MS

        if self.elapsed_ms >= self.s.max_utterance * 1000:
            return EndReason.MAX_LENGTH
        if not self.in_speech:
            if self.elapsed_ms >= self.s.no_speech_timeout * 1000:
                return EndReason.NO_SPEECH
            return None
        if self.peak - self.noise_floor < LOW_RANGE_DB and self.vad_silence_ms < LOW_RANGE_VAD * 1000:
            return EndReason.VAD if self.vad_silence_ms >= self.s.vad_tail * 1000 else None
        extra = 0.0
        if self.noisy():  # half the extra while speech is well above the room (~20 dB SNR)
            extra = NOISY_EXTRA / 2 if self.peak - self.noise_floor >= CLEAR_RANGE_DB else NOISY_EXTRA
        if complete and self.energy_silence_ms >= (self.s.complete_tail + extra) * 1000:
            return EndReason.COMPLETE
        tail = max(self.s.silence_tail, self.s.pause_tail) if self.judges_completion else self.s.silence_tail
        if self.energy_silence_ms >= (tail + extra) * 1000:
            return EndReason.SILENCE
        if self.vad_silence_ms >= self.s.vad_tail * 1000:
            return EndReason.VAD
        return None
