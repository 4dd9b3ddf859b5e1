"""What the sampler's channels go through before anyone sees them, the same for Generate, Compare,
the API and Live: split into the 52 curves and the head's angles, the head filtered
(:class:`core.head_pose.HeadFilter`) and the brows, squint and eye-widening smoothed in time.

Why smooth the brows and eyelids: straight from the sampler they carry frame-to-frame jitter
2.5-4x the data's (docs/RESULTS.md "Upper face", roughness), which reads as twitching brows and
as brow raises several times too often; the data's brows move in ramps of a few frames. A
one-pole low-pass of weight :data:`UPPER_SMOOTHING` (chosen on validation clips, docs/DECISIONS.md
"Jitter in the upper face") takes most of it out. Blinks and gaze are left alone: a blink lasts
four frames and a saccade one, and both would be flattened.
"""
from __future__ import annotations

import numpy as np

from core.arkit import ARKIT_NAMES, NUM_BLENDSHAPES
from core.head_pose import HEAD_CHANNELS, HeadFilter, from_channels
from core.smoothing import OnePole

UPPER_SMOOTHED: tuple[int, ...] = tuple(i for i, n in enumerate(ARKIT_NAMES)
                                        if n.startswith(("brow", "eyeSquint", "eyeWide")))
UPPER_SMOOTHING = 0.35   # mean delay (1 - w) / w = 1.9 frames (62 ms)


class OutputFilter:
    """Causal and carried from call to call: a stream that feeds a clip chunk by chunk gets what
    one call over the whole clip gives. One per take or stream."""

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
