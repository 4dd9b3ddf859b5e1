"""A causal one-pole low-pass whose state is carried from call to call: a stream that feeds a clip
chunk by chunk gets what one call over the whole clip gives (Generate and Live agree)."""
from __future__ import annotations

import numpy as np


class OnePole:
    """y[f] = y[f-1] + weight * (x[f] - y[f-1]) over the frames of [..., F, C]; the first frame
    ever given passes unchanged (no lag at the start). Its mean delay is (1 - weight) / weight frames."""

    def __init__(self, weight: float):
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"a one-pole weight is in (0, 1], not {weight}")
        self.weight = weight
        self.state: np.ndarray | None = None       # [..., C] the last frame given out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if x.shape[-2] == 0:
            return x
        out = np.empty_like(x)
        state = x[..., 0, :] if self.state is None else self.state
        for f in range(x.shape[-2]):
            state = state + self.weight * (x[..., f, :] - state)
            out[..., f, :] = state
        self.state = out[..., -1, :]
        return out
