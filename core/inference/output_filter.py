"""What the sampler's channels go through before anyone sees them, the same for Generate, Compare,
the API and Live: split into the 52 curves and the head's angles, the head filtered
(:class:`HeadFilter`), the brows, squint and eye-widening smoothed in time, then the model's
value maps (:mod:`core.inference.value_maps`). Every filter here is
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
from core.inference.value_maps import ValueMap, apply as apply_maps, from_config

# The model's head angles keep some of the sampler's frame-to-frame jitter (a head is heavy: real
# ones do not shake at 15 Hz, nor nod twice a second); a one-pole low-pass with this weight per
# frame takes it out, chosen with the head gain on validation clips (docs/DECISIONS.md "The head
# filter"); its mean delay is (1 - w) / w = 4 frames (133 ms).
SMOOTHING = 0.2


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
    a gain per axis about the straight head (the model's own, ``extra["head_gain"]``, fitted on
    validation clips with ``python -m experiments.evaluate value-maps``: its sampled head moves less
    than the data's, docs/DECISIONS.md "The head filter, second try"), then :func:`limit_speed`."""

    def __init__(self, gain=None):
        self._gain = np.ones(HEAD_CHANNELS) if gain is None else np.asarray(gain, np.float64)
        if self._gain.shape != (HEAD_CHANNELS,) or not np.all(self._gain > 0):
            raise ValueError(f"a head gain is {HEAD_CHANNELS} positive numbers, not {gain!r}")
        self._pole = OnePole(SMOOTHING)              # its state: the last frame given out, before the gain

    def __call__(self, head: np.ndarray) -> np.ndarray:
        """Filter the next frames [..., n, 3] (radians) in order."""
        head = np.asarray(head, np.float64)
        if head.shape[-2] == 0:
            return head.astype(np.float32)
        start = None if self._pole.state is None else self._pole.state * self._gain
        out = limit_speed(self._pole(head) * self._gain, start)
        self._pole.state = out[..., -1, :] / self._gain
        return out.astype(np.float32)


UPPER_SMOOTHED: tuple[int, ...] = tuple(i for i, n in enumerate(ARKIT_NAMES)
                                        if n.startswith(("brow", "eyeSquint", "eyeWide")))
UPPER_SMOOTHING = 0.5    # mean delay (1 - w) / w = 1 frame (33 ms)


class OutputFilter:
    """Every filter of the module, in one object: one per take or stream. ``maps`` are the model's
    value maps (:mod:`core.inference.value_maps`), applied last, to the filtered curves they were
    fitted on; ``head_gain`` its head gain (:class:`HeadFilter`)."""

    def __init__(self, maps: tuple[ValueMap, ...] = (), head_gain=None):
        self._head = HeadFilter(head_gain)
        self._upper = OnePole(UPPER_SMOOTHING)
        self._maps = maps

    @classmethod
    def of(cls, config) -> "OutputFilter":
        """A new filter for a model (its ``TalkerConfig``): with the value maps and head gain of its config."""
        return cls(from_config(config.extra), config.extra.get("head_gain"))

    def __call__(self, channels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A model's output channels [..., F, C] in [0, 1] as (the 52 curves, head radians
        [..., F, 3]); zeros for the head of a model without head channels."""
        curves = np.array(channels[..., :NUM_BLENDSHAPES], np.float32)
        extra = channels[..., NUM_BLENDSHAPES:]
        smoothed = list(UPPER_SMOOTHED)
        curves[..., smoothed] = self._upper(curves[..., smoothed])
        apply_maps(curves, self._maps)
        if extra.shape[-1] == 0:
            return curves, np.zeros(curves.shape[:-1] + (HEAD_CHANNELS,), np.float32)
        return curves, self._head(from_channels(extra))
