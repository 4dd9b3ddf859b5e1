"""Speech features of a stream: the features the offline encoder would give *the audio so far*.

The design (docs/DECISIONS.md, "Live"): a frame's streamed feature is its offline feature for
the prefix of the stream that ends ``lookahead`` seconds after the frame (rounded up to the
next encoder hop). For Whisper that is the whole window policy of :mod:`core.audio.encoders` applied
to a clip that ends there: the anchored 10 s windows at 0, 8, 16 ... s, the audio after the end
zero-padded, the cross-fade in the 2 s overlaps and the log-mel floor (maximum - 8) taken over
everything heard so far. The models were trained on whole-clip features, whose windows
also end in zero padding once the clip ends, so the only difference to offline is the future
beyond the look-ahead, which the stream cannot know; ``experiments.live`` measures what it
costs. Cost stays bounded: each request re-encodes only the one or two windows that hold
the frames asked for, the log-mel power of finished frames is computed once, and audio and
log-mel older than the oldest window still needed are dropped.

:class:`WhisperStreamFeatures` is exact (tested against ``encode(audio[:end])``) at bounded
cost; :class:`PrefixFeatures` gives the same for any :class:`~core.audio.encoders.SpeechEncoder`
by re-encoding the whole prefix (exact, cost growing with the stream: for tests and HuBERT).
"""
from __future__ import annotations

import numpy as np

from core.audio.encoders import (ENCODER_HOP, MEL_FFT, MEL_HOP, WHISPER_HOP, WHISPER_WINDOW, SpeechEncoder,
                                 WhisperTinyEncoder, log_mel_power, whisper_log_mel)
from core.audio.windows import overlap_add, to_animation_frames, window_starts
from core.rates import FPS, SAMPLE_RATE

SILENT_LOG_POWER = -10.0          # log10 of the mel power floor (1e-10): a frame of digital silence


def first_sample_of_frame(frame: int) -> int:
    """The sample at animation frame ``frame``'s time, rounded down."""
    return frame * SAMPLE_RATE // FPS


class PrefixFeatures:
    """Any encoder, exactly: ``encoder.encode(audio[:heard])[first:stop]`` (keeps all audio).

    Protocol shared with :class:`WhisperStreamFeatures`: ``push`` audio; ``plan(first, stop)``
    fixes what frames [first, stop) see of the audio heard so far; ``run(plans)`` computes the
    features of several plans at once; ``forget_before(frame)`` says older frames are done.
    """

    def __init__(self, encoder: SpeechEncoder):
        self.encoder = encoder
        self.dim = encoder.dim
        self._audio = np.zeros(0, np.float32)

    def push(self, chunk: np.ndarray) -> None:
        self._audio = np.concatenate([self._audio, np.asarray(chunk, np.float32)])

    def plan(self, first: int, stop: int):
        return self._audio, first, stop

    def run(self, plans) -> list[np.ndarray]:
        return [self.encoder.encode(audio)[first:stop] for audio, first, stop in plans]

    def forget_before(self, frame: int) -> None:
        """Nothing is dropped: every frame is encoded from the whole prefix."""


class WhisperStreamFeatures:
    """Whisper tiny.en under the offline window policy, on the audio heard so far."""

    def __init__(self, encoder: WhisperTinyEncoder):
        self.encoder = encoder
        self.dim = encoder.dim
        self._audio = np.zeros(0, np.float32)
        self._audio_start = 0                 # stream sample index of self._audio[0]
        self._heard = 0                       # samples pushed so far
        self._power = np.zeros((80, 0), np.float32)   # log-mel power of finished mel frames ...
        self._power_start = 0                 # ... from this mel frame on
        self._finished = 0                    # mel frames whose 400 samples have all been heard
        self._peak = -np.inf                  # maximum log-mel power over the finished frames

    def push(self, chunk: np.ndarray) -> None:
        self._audio = np.concatenate([self._audio, np.asarray(chunk, np.float32)])
        self._heard += len(chunk)
        finished = max(0, (self._heard - MEL_FFT // 2) // MEL_HOP + 1)   # frame j spans [160 j - 200, 160 j + 200)
        if finished > self._finished:
            power = self._mel_frames(self._finished, finished, reflect_end=False)
            self._power = np.concatenate([self._power, power], 1)
            self._peak = max(self._peak, float(power.max()))
            self._finished = finished

    def _segment(self, begin: int, end: int, reflect_end: bool) -> np.ndarray:
        """Stream samples [begin, end) as the offline path sees them for the audio heard so far:
        Whisper's reflect padding before sample 0; after the last sample zeros, or (when the
        padded clip ends right there, ``reflect_end``) the reflection numpy pads with."""
        heard, out = self._heard, np.zeros(end - begin, np.float32)
        lo, hi = max(begin, 0), min(end, heard)
        if hi > lo:
            out[lo - begin: hi - begin] = self._audio[lo - self._audio_start: hi - self._audio_start]
        if begin < 0:                          # sample -i is sample i
            out[: -begin] = self._segment(1, 1 - begin, reflect_end)[::-1]
        if reflect_end and end > heard:        # sample heard + i is sample heard - 2 - i
            out[heard - begin:] = self._segment(2 * heard - end - 1, heard - 1, False)[::-1]
        return out

    def _mel_frames(self, first: int, stop: int, reflect_end: bool) -> np.ndarray:
        """Log-mel power of mel frames [first, stop) for the audio heard so far (silent ones not computed)."""
        out = np.full((80, stop - first), SILENT_LOG_POWER, np.float32)
        touching = -(-(self._heard + MEL_FFT // 2) // MEL_HOP)                  # frames that touch audio
        audible = stop if reflect_end else min(stop, max(first, touching))
        if audible > first:
            segment = self._segment(first * MEL_HOP - MEL_FFT // 2, (audible - 1) * MEL_HOP + MEL_FFT // 2, reflect_end)
            out[:, : audible - first] = log_mel_power(segment, center=False)
        return out

    def plan(self, first: int, stop: int):
        """Whisper's input windows for frames [first, stop) of the audio heard so far."""
        heard = self._heard
        starts = window_starts(heard, WHISPER_WINDOW, WHISPER_HOP)
        padded_end = starts[-1] + WHISPER_WINDOW
        unfinished = self._mel_frames(self._finished, padded_end // MEL_HOP, padded_end == heard)
        peak = max(self._peak, float(unfinished.max(initial=-np.inf)))        # Whisper's floor is clip-wide
        needed = self._windows_for(starts, first, stop)
        windows = []
        for i in needed:
            lo, hi = starts[i] // MEL_HOP, (starts[i] + WHISPER_WINDOW) // MEL_HOP
            done = min(hi, self._finished)
            kept = self._power[:, max(0, lo - self._power_start): max(0, done - self._power_start)]
            rest = unfinished[:, max(0, lo - self._finished): max(0, hi - self._finished)]
            windows.append(whisper_log_mel(np.concatenate([kept, rest], 1), peak))
        return first, stop, needed, len(starts), windows

    def run(self, plans) -> list[np.ndarray]:
        """Features of each plan, exactly ``encoder.encode(audio[:heard])[first:stop]`` for the
        ``heard`` of its time; the windows of all plans go to the encoder as one batch."""
        windows = [w for plan in plans for w in plan[4]]
        pieces = self.encoder.encode_windows(np.stack(windows)) if windows else []
        out, at = [], 0
        for first, stop, needed, count, plan_windows in plans:
            out.append(self._stitch(pieces[at: at + len(plan_windows)], needed, count, first, stop))
            at += len(plan_windows)
        return out

    @staticmethod
    def _windows_for(starts: list[int], first: int, stop: int) -> list[int]:
        """Indices of the windows whose encoder frames feed animation frames [first, stop)."""
        lo = first_sample_of_frame(first) // ENCODER_HOP
        hi = -(-stop * SAMPLE_RATE // FPS) // ENCODER_HOP + 1
        per = WHISPER_WINDOW // ENCODER_HOP
        return [i for i, s in enumerate(starts) if s // ENCODER_HOP <= hi and s // ENCODER_HOP + per > lo]

    @staticmethod
    def _stitch(pieces, needed: list[int], count: int, first: int, stop: int) -> np.ndarray:
        offset = needed[0] * WHISPER_HOP // ENCODER_HOP
        frames = overlap_add(pieces, [i * WHISPER_HOP // ENCODER_HOP - offset for i in needed],
                              fade=(WHISPER_WINDOW - WHISPER_HOP) // ENCODER_HOP,
                              fade_first_in=needed[0] > 0, fade_last_out=needed[-1] < count - 1)
        return to_animation_frames(frames, SAMPLE_RATE / ENCODER_HOP, stop - first,
                                    first_frame_time=offset * ENCODER_HOP / SAMPLE_RATE, first_frame=first)

    def forget_before(self, frame: int) -> None:
        """Drop audio and log-mel older than the first window that frame ``frame`` can be in."""
        keep = max(0, (first_sample_of_frame(frame) - (WHISPER_WINDOW - WHISPER_HOP)) // WHISPER_HOP * WHISPER_HOP)
        drop_audio = keep - MEL_FFT - self._audio_start
        if drop_audio > 0:
            self._audio = self._audio[drop_audio:]
            self._audio_start += drop_audio
        drop_mel = keep // MEL_HOP - self._power_start
        if drop_mel > 0:
            self._power = self._power[:, drop_mel:]
            self._power_start += drop_mel


def stream_features(encoder: SpeechEncoder):
    """The streaming form of ``encoder``: bounded-cost Whisper, or exact re-encoding of the prefix."""
    if isinstance(encoder, WhisperTinyEncoder):
        return WhisperStreamFeatures(encoder)
    return PrefixFeatures(encoder)
