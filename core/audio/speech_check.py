"""Is the input speech, and where are its pauses? Silero VAD on the 16 kHz audio.

The models animate whatever sound they hear, so beeps, music or noise get moving lips and a
confident-looking identity match. :func:`check_speech` runs the Silero voice-activity
detector (its ONNX model ships inside the ``silero-vad`` wheel; run by ONNX Runtime, nothing
is downloaded) and says how much of the clip is speech; :meth:`SpeechCheck.warning` is the
line a user sees when it is too little. :func:`pause_weights` turns the speech segments into
per-frame weights that close the lips in the pauses between phrases, where a model trained on
synthetic voices may leave them ajar.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import numpy as np

from core.rates import FPS, SAMPLE_RATE

MIN_SPEECH_SECONDS = 0.3      # less speech than this in a clip: "does not sound like speech"
MIN_SPEECH_FRACTION = 0.2     # ... or less than this share of the clip
MIN_PAUSE_SECONDS = 0.25      # shorter gaps between speech segments are part of the phrase
LIP_RAMP_SECONDS = 0.1        # the lips close (and open again) over this time at a pause's edges


@dataclass(frozen=True)
class SpeechCheck:
    segments: tuple[tuple[float, float], ...]   # speech (start, end) in seconds
    seconds: float                              # length of the clip

    @property
    def speech_seconds(self) -> float:
        return sum(end - start for start, end in self.segments)

    @property
    def sounds_like_speech(self) -> bool:
        return self.speech_seconds >= max(MIN_SPEECH_SECONDS, MIN_SPEECH_FRACTION * self.seconds)

    def warning(self) -> str | None:
        if self.sounds_like_speech:
            return None
        return (f"This does not sound like speech: the voice detector found {self.speech_seconds:.1f} s of speech "
                f"in {self.seconds:.1f} s of audio. The face follows whatever sound there is, and the identity "
                "match means little.")


_VAD_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _vad_model():
    from silero_vad import load_silero_vad
    return load_silero_vad(onnx=True)


def check_speech(wave: np.ndarray) -> SpeechCheck:
    """Speech segments of 16 kHz mono ``wave`` (Silero VAD, default thresholds)."""
    import torch
    from silero_vad import get_speech_timestamps
    wave = np.asarray(wave, np.float32)
    with _VAD_LOCK, torch.inference_mode():   # the detector keeps a recurrent state: one clip at a time
        stamps = get_speech_timestamps(torch.from_numpy(wave), _vad_model(), sampling_rate=SAMPLE_RATE)
    segments = tuple((s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps)
    return SpeechCheck(segments, len(wave) / SAMPLE_RATE)


def pause_weights(check: SpeechCheck, frames: int, fps: int = FPS, first: int = 0) -> np.ndarray:
    """Per-frame factor [frames] for the lip channels of frames ``first`` .. ``first + frames``:
    1 while speaking, 0 inside pauses.

    A pause is a gap of at least MIN_PAUSE_SECONDS between speech segments, or before the
    first and after the last; within LIP_RAMP_SECONDS of speech the factor ramps linearly,
    so the mouth closes after a phrase and opens before the next. Without speech the factor
    is 1 everywhere (nothing is known about pauses then).
    """
    if not check.segments:
        return np.ones(frames, np.float32)
    centres = (np.arange(first, first + frames) + 0.5) / fps
    merged = [list(check.segments[0])]
    for start, end in check.segments[1:]:
        if start - merged[-1][1] < MIN_PAUSE_SECONDS:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    distance = np.full(frames, np.inf)
    for start, end in merged:
        distance = np.minimum(distance, np.maximum(np.maximum(start - centres, centres - end), 0.0))
    return np.clip(1.0 - distance / LIP_RAMP_SECONDS, 0.0, 1.0).astype(np.float32)


PAUSE_CONTEXT_SECONDS = 2.5   # audio before a live frame whose detector output judges its pause
VAD_CHUNK = 512               # samples the detector judges at a time (16 kHz)


def _speech_now(probs: list[float]) -> list[dict]:
    """Silero's speech segments (in samples) of the chunks ``probs``, and speech still going on at
    the end of them even if it is shorter than Silero's minimum so far: a live stream must open
    the lips before a phrase once it begins, not once it has lasted that minimum."""
    from silero_vad.utils_vad import get_speech_timestamps_from_probs
    if not probs:
        return []
    length = len(probs) * VAD_CHUNK
    stamps = get_speech_timestamps_from_probs(probs, sampling_rate=SAMPLE_RATE, audio_length_samples=length)
    if not stamps or stamps[-1]["end"] < length:
        going = get_speech_timestamps_from_probs(probs, sampling_rate=SAMPLE_RATE, audio_length_samples=length,
                                                 min_speech_duration_ms=0)
        if going and going[-1]["end"] >= length and (not stamps or going[-1]["start"] > stamps[-1]["end"]):
            stamps.append(going[-1])
    return stamps


class StreamPauses:
    """The same lips-closed-in-pauses factor for a live stream, frame block by frame block.

    The stream's own detector judges each 512-sample chunk once, as it is heard, carrying its
    recurrent state from chunk to chunk as it does over a whole clip offline; each block's
    speech segments come from the chunks from PAUSE_CONTEXT_SECONDS before the block to the
    last heard, through Silero's own thresholds (``get_speech_timestamps_from_probs``), speech
    still going on at the end counting before Silero's minimum length. With the stream's
    look-ahead (at least MIN_PAUSE_SECONDS) every gap that touches a block is either closed by
    speech within the audio heard, or already long enough to be a pause, so the factor is the
    offline one up to that context. Once the stream has had speech, a block with none around it
    is a pause (offline: silence in a clip that has speech).
    """

    def __init__(self):
        from silero_vad import load_silero_vad
        self._detector = load_silero_vad(onnx=True)   # its own: the state runs on with this stream
        self._pending = np.zeros(0, np.float32)      # heard samples short of a whole chunk
        self._probs: list[float] = []                # speech probability of each judged chunk ...
        self._first_chunk = 0                        # ... from this chunk on
        self.had_speech = False

    def push(self, samples: np.ndarray) -> None:
        import torch
        self._pending = np.concatenate([self._pending, np.asarray(samples, np.float32)])
        whole = len(self._pending) // VAD_CHUNK * VAD_CHUNK
        with torch.inference_mode():
            for chunk in torch.from_numpy(self._pending[:whole]).reshape(-1, VAD_CHUNK):
                self._probs.append(self._detector(chunk, SAMPLE_RATE).item())
        self._pending = self._pending[whole:]

    def _context_from(self, frame: int, fps: int) -> int:
        """The first chunk (still kept) of PAUSE_CONTEXT_SECONDS before frame ``frame``."""
        return max(self._first_chunk, int((frame / fps - PAUSE_CONTEXT_SECONDS) * SAMPLE_RATE) // VAD_CHUNK)

    def weights(self, first: int, stop: int, fps: int = FPS) -> np.ndarray:
        """Factor [stop - first] for frames [first, stop); older chunks are let go."""
        begin = self._context_from(first, fps)
        probs = self._probs[begin - self._first_chunk:]
        stamps = _speech_now(probs)
        offset = begin * VAD_CHUNK / SAMPLE_RATE
        segments = tuple((s["start"] / SAMPLE_RATE + offset, s["end"] / SAMPLE_RATE + offset) for s in stamps)
        self.had_speech = self.had_speech or bool(segments)
        if not segments:
            factor = np.zeros if self.had_speech else np.ones
            out = factor(stop - first, np.float32)
        else:
            heard = offset + len(probs) * VAD_CHUNK / SAMPLE_RATE
            out = pause_weights(SpeechCheck(segments, heard), stop - first, fps, first)
        keep_from = self._context_from(stop, fps)
        self._probs, self._first_chunk = self._probs[keep_from - self._first_chunk:], keep_from
        return out
