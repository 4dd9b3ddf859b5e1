"""Windows of a long sequence and their seamless join: where each window starts, the linear
cross-fade of overlapping window outputs, and a feature rate resampled to the 30 fps frames.

Shared by the offline encoders (:mod:`core.audio.encoders`) and the stream's features
(:mod:`core.audio.stream_features`), which must join windows exactly alike.
"""
from __future__ import annotations

import numpy as np

from core.rates import FPS


def window_starts(num_samples: int, window: int, hop: int) -> list[int]:
    """Start sample of each window; the last one is the first to reach the clip's end."""
    starts = [0]
    while starts[-1] + window < num_samples:
        starts.append(starts[-1] + hop)
    return starts


def overlap_add(pieces: list[np.ndarray], starts: list[int], fade: int,
                 fade_first_in: bool = False, fade_last_out: bool = False) -> np.ndarray:
    """Join per-window features ``[len_i, dim]`` placed at frame ``starts[i]``.

    Each piece fades in over its first ``fade`` frames (except the first piece) and out
    over its last ``fade`` frames (except the last piece); the weights of two overlapping
    pieces sum to one, so the result is a seamless linear cross-fade. The two flags fade the
    first / last piece as well, for a run of windows cut out of a longer sequence (streaming).
    """
    total = max(s + len(p) for s, p in zip(starts, pieces))
    out = np.zeros((total, pieces[0].shape[1]), dtype=np.float64)
    weight = np.zeros(total, dtype=np.float64)
    ramp = (np.arange(fade) + 0.5) / fade
    for i, (start, piece) in enumerate(zip(starts, pieces)):
        w = np.ones(len(piece))
        if i > 0 or fade_first_in:
            w[:fade] = ramp[: len(piece)]
        if i < len(pieces) - 1 or fade_last_out:
            w[-fade:] = np.minimum(w[-fade:], ramp[::-1])
        out[start: start + len(piece)] += w[:, None] * piece
        weight[start: start + len(piece)] += w
    return out / np.maximum(weight, 1e-12)[:, None]


def to_animation_frames(features: np.ndarray, rate: float, num_frames: int,
                         first_frame_time: float = 0.0, first_frame: int = 0) -> np.ndarray:
    """Linearly interpolate features sampled at ``first_frame_time + k / rate`` seconds
    at the animation frame times ``f / FPS`` for f = first_frame .. first_frame + num_frames - 1;
    beyond the ends the edge frame is held."""
    position = ((first_frame + np.arange(num_frames)) / FPS - first_frame_time) * rate
    position = np.clip(position, 0, len(features) - 1)
    lo = np.floor(position).astype(int)
    hi = np.minimum(lo + 1, len(features) - 1)
    frac = (position - lo)[:, None]
    return ((1 - frac) * features[lo] + frac * features[hi]).astype(np.float32)
