"""A gentle streaming noise suppressor in front of the recognizer.

The acoustic model was trained on clean speech; steady room noise (fans, fridges, traffic hum)
fills the valleys of the spectrum the model relies on. This is a Wiener filter with the
decision-directed a-priori SNR of Ephraim and Malah, on a 32 ms STFT with 50 % overlap
(square-root Hann windows, so unity gains give back the input exactly).

* The noise spectrum is estimated once per utterance from the audio the decoder already holds back
  for its cepstral mean: per frequency bin, a low percentile of the frames' power — speech is
  sparse in time and frequency, so even audio with little silence gives a usable estimate.
* Deliberately gentle: a low percentile underestimates steady noise (by ~6 dB for pink noise), and
  the gain never goes below :data:`GAIN_FLOOR` (−10 dB). In pauses, pink noise comes out ~3 dB
  lower; over speech the SNR rises by ~2 dB. Stronger settings (a floor of 0.05, twice the
  estimate) cost recognition: their "musical noise" is heard as phones (docs/recognition.md).
* Streaming: :meth:`Denoiser.process` takes any number of samples and returns the cleaned ones
  with a fixed delay of ``FFT - HOP`` samples (16 ms); :meth:`Denoiser.flush` returns the rest.
  Pure numpy, a few microseconds per 16 ms frame.
"""

from __future__ import annotations

import numpy as np

FFT = 512
HOP = FFT // 2  # the overlap-add below assumes exactly 50 %
PERCENTILE = 20.0
GAIN_FLOOR = 0.3
SILENT_DBFS = -65.0
"""A noise estimate below this (RMS, dBFS) is left alone: steady noise under about -58 dBFS (the
low percentile reads ~6.5 dB under the true level) is no danger to the recognizer, the decoder's
own comfort noise (-60 dBFS) sits there anyway, and the suppressor's CPU is saved."""
SMOOTHING = 0.98  # weight of the previous frame's SNR in the decision-directed estimate
_WINDOW = np.sqrt(np.hanning(FFT + 1)[:FFT])


def _spectra(x: np.ndarray) -> np.ndarray:
    n = (len(x) - FFT) // HOP + 1
    idx = np.arange(FFT)[None, :] + HOP * np.arange(n)[:, None]
    return np.fft.rfft(x[idx] * _WINDOW, axis=1)


def estimate_noise(pcm: bytes) -> np.ndarray | None:
    """Noise power per STFT bin of 16-bit mono `pcm`; None if it is shorter than 3 frames or
    the room is quieter than :data:`SILENT_DBFS` (nothing to suppress)."""
    x = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    if len(x) < FFT + 2 * HOP:
        return None
    power = np.abs(_spectra(x)) ** 2
    noise: np.ndarray = np.percentile(power, PERCENTILE, axis=0) + 1e-3
    # white noise of standard deviation s gives s**2 * sum(window**2) = s**2 * FFT / 2 per bin
    rms = float(np.sqrt(noise.mean() / (FFT / 2)))
    if 20 * np.log10(max(rms, 1e-9) / 32768.0) < SILENT_DBFS:
        return None
    return noise


class Denoiser:
    """Streaming Wiener filter for one utterance, given its noise spectrum."""

    def __init__(self, noise: np.ndarray) -> None:
        """`noise`: power per bin, as from :func:`estimate_noise`."""
        self._noise = noise
        self._in = np.zeros(FFT - HOP)  # history: the first frame starts FFT - HOP before sample 0
        self._tail = np.zeros(HOP)  # second half of the last frame, waiting for the next one
        self._prev = np.zeros(FFT // 2 + 1)
        self._skip = FFT - HOP  # output samples that belong to the history padding
        self._pending = b""
        self._received = 0
        self._emitted = 0

    def process(self, pcm: bytes) -> bytes:
        """Clean the next samples; returns those that are complete (delay ``FFT - HOP``)."""
        data = self._pending + pcm
        usable = len(data) - len(data) % 2
        self._pending = data[usable:]
        x = np.frombuffer(data[:usable], dtype="<i2").astype(np.float64)
        self._received += len(x)
        self._in = np.concatenate([self._in, x])
        return self._run()

    def flush(self) -> bytes:
        """The remaining samples (the end of the utterance)."""
        missing = self._received - self._emitted
        if missing <= 0:
            return b""
        self._in = np.concatenate([self._in, np.zeros(FFT)])
        out = self._run()
        return out[: 2 * missing]

    def _run(self) -> bytes:
        n = (len(self._in) - FFT) // HOP + 1
        if n <= 0:
            return b""
        spec = _spectra(self._in[: FFT + (n - 1) * HOP])
        power = np.abs(spec) ** 2
        gains = np.empty_like(power)
        prev = self._prev
        for t in range(n):
            post = power[t] / self._noise
            prio = SMOOTHING * prev + (1.0 - SMOOTHING) * np.maximum(post - 1.0, 0.0)
            gain = np.maximum(prio / (1.0 + prio), GAIN_FLOOR)
            gains[t] = gain
            prev = gain * gain * post
        self._prev = prev
        frames = np.fft.irfft(spec * gains, n=FFT, axis=1) * _WINDOW
        # 50 % overlap-add: each hop is this frame's first half plus the previous frame's second
        out = frames[:, :HOP].copy()
        out[0] += self._tail
        out[1:] += frames[:-1, HOP:]
        self._tail = frames[-1, HOP:].copy()
        out = out.reshape(-1)
        self._in = self._in[n * HOP:]
        if self._skip:
            drop = min(self._skip, len(out))
            out = out[drop:]
            self._skip -= drop
        self._emitted += len(out)
        cleaned: bytes = np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes()
        return cleaned
