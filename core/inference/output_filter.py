"""What the sampler's channels go through before anyone sees them, the same for Generate, Compare,
the API and Live: split into the 52 curves and the head's angles, the head filtered
(:class:`HeadFilter`) and the brows, squint and eye-widening smoothed in time. Every filter here is
causal and carries its state from call to call: a stream that feeds a clip chunk by chunk gets
what one call over the whole clip gives (Generate and Live agree).

Why smooth the brows and eyelids: straight from the sampler they carry frame-to-frame jitter,
1.8-2.2x the data's for distilled-8 even in the scaled model space (2.5-4x before it;
docs/RESULTS.md "Upper face", roughness), which reads as twitching brows and as brow raises
several times too often; the data's brows move in ramps of a few frames. A
one-pole low-pass of weight :data:`UPPER_SMOOTHING` (chosen on validation clips, docs/DECISIONS.md
"Jitter in the upper face") takes most of it out. Blinks and gaze are left alone: a blink lasts
four frames and a saccade one, and both would be flattened.
"""
from __future__ import annotations

import numpy as np

from core.arkit import ARKIT_NAMES, NUM_BLENDSHAPES
from core.head_pose import HEAD_CHANNELS, from_channels, limit_speed

# The model's head angles keep some of the sampler's frame-to-frame jitter (a head is heavy: real
# ones do not shake at 15 Hz); a one-pole low-pass with this weight per frame takes it out, chosen
# on validation clips (docs/DECISIONS.md "The head filter"); its lag is under one frame.
SMOOTHING = 0.6


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


class HeadFilter:
    """The model's head angles made as smooth as a head: a one-pole low-pass (:data:`SMOOTHING`),
    then :func:`limit_speed`."""

    def __init__(self):
        self._pole = OnePole(SMOOTHING)              # its state: the last frame given out

    def __call__(self, head: np.ndarray) -> np.ndarray:
        """Filter the next frames [..., n, 3] (radians) in order."""
        head = np.asarray(head, np.float64)
        if head.shape[-2] == 0:
            return head.astype(np.float32)
        start = self._pole.state
        out = limit_speed(self._pole(head), start)
        self._pole.state = out[..., -1, :]
        return out.astype(np.float32)


UPPER_SMOOTHED: tuple[int, ...] = tuple(i for i, n in enumerate(ARKIT_NAMES)
                                        if n.startswith(("brow", "eyeSquint", "eyeWide")))
UPPER_SMOOTHING = 0.5    # mean delay (1 - w) / w = 1 frame (33 ms)


class OutputFilter:
    """Every filter of the module, in one object: one per take or stream."""

    def __init__(self):
        self._head = HeadFilter()
        self._upper = OnePole(UPPER_SMOOTHING)

    def __call__(self, channels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A model's output channels [..., F, C] in [0, 1] as (the 52 curves, head radians
        [..., F, 3]); zeros for the head of a model without head channels."""
        curves = np.array(channels[..., :NUM_BLENDSHAPES], np.float32)
        extra = channels[..., NUM_BLENDSHAPES:]
        smoothed = list(UPPER_SMOOTHED)
        curves[..., smoothed] = self._upper(curves[..., smoothed])
        if extra.shape[-1] == 0:
            return curves, np.zeros(curves.shape[:-1] + (HEAD_CHANNELS,), np.float32)
        return curves, self._head(from_channels(extra))
