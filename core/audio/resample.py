"""The one resampler of speech in this project: a whole signal (:func:`resample`: uploads,
corpus voices) or a stream chunk by chunk (:class:`StreamingResampler`: the page's microphone),
both ``scipy.signal.resample_poly`` with the same bounded ratio (:func:`resample_ratio`)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from core.rates import SAMPLE_RATE

MAX_RESAMPLE_DENOMINATOR = 20_000  # bounds the polyphase filter (see resample)
RESAMPLER_MARGIN = 64              # input samples a stream holds back at least, so that chunk edges never reach the filter


def resample_ratio(rate: int, target: int = SAMPLE_RATE) -> tuple[int, int]:
    """(up, down) of the polyphase filter from ``rate`` to ``target`` Hz (see :func:`resample`)."""
    ratio = Fraction(int(target), int(rate)).limit_denominator(MAX_RESAMPLE_DENOMINATOR)
    return ratio.numerator, ratio.denominator


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """1-D ``audio`` at ``rate`` -> ``target`` Hz (same dtype) with a polyphase filter whose
    up/down factors stay small.

    The exact ratio target/rate is used when its denominator is at most
    :data:`MAX_RESAMPLE_DENOMINATOR` (every common rate: 44.1 kHz is 160/441). An odd rate (a
    prime number of Hz) would need a filter of millions of taps (383,987 Hz: 2 s and 370 MB
    for 25 MB of audio), so its ratio is replaced by the closest fraction with such a
    denominator: at most 2.5e-5 off over 4-384 kHz (an inaudible pitch change, 3 ms over
    2 minutes), 0.25 s and 19 MB for the same file.
    """
    if rate == target:
        return audio
    from scipy.signal import resample_poly  # imported here: scipy.signal takes ~0.5 s
    up, down = resample_ratio(rate, target)
    return resample_poly(audio, up, down).astype(audio.dtype, copy=False)


class StreamingResampler:
    """:func:`resample` to 16 kHz chunk by chunk, equal to resampling the whole signal (tested).

    Output sample j needs the input within the filter's half length of j * down / up (10 *
    max(up, down) / up input samples: 30 for 48 kHz, 28 for 44.1 kHz; at least
    :data:`RESAMPLER_MARGIN` are held), so each call returns the outputs whose input is all there
    and keeps what later outputs need.
    """

    def __init__(self, rate: int):
        self.up, self.down = resample_ratio(rate)
        self.margin = max(RESAMPLER_MARGIN, -(-10 * max(self.up, self.down) // self.up) + 1)
        self._held = np.zeros(0, np.float64)   # input samples from self._base on
        self._base = 0                         # a multiple of down, so that outputs stay aligned
        self._next = 0                         # the next output sample to return
        from scipy.signal import firwin, resample_poly     # here, when a stream starts: its import takes ~0.5 s
        self._resample = resample_poly
        # resample_poly's own filter, designed once (it would design it again for every chunk:
        # 400,000 taps at 383,987 Hz)
        half = 10 * max(self.up, self.down)
        self._filter = None if self.up == self.down else firwin(2 * half + 1, 1.0 / max(self.up, self.down),
                                                                window=("kaiser", 5.0))

    @property
    def held_back(self) -> int:
        """Input samples that a call keeps without returning their output yet (none at 16 kHz in)."""
        return 0 if self.up == self.down else self.margin

    def __call__(self, samples: np.ndarray, final: bool = False) -> np.ndarray:
        if self.up == self.down == 1:
            return np.asarray(samples, np.float32)
        self._held = np.concatenate([self._held, np.asarray(samples, np.float64)])
        total = self._base + len(self._held)
        stop = -(-total * self.up // self.down) if final else max(0, (total - self.margin) * self.up // self.down)
        if stop <= self._next:
            return np.zeros(0, np.float32)
        offset = self._base * self.up // self.down
        out = self._resample(self._held, self.up, self.down, window=self._filter)[self._next - offset: stop - offset]
        self._next = stop
        keep = max(0, (stop * self.down // self.up - self.margin) // self.down * self.down)
        self._held, self._base = self._held[keep - self._base:], keep
        return out.astype(np.float32)
