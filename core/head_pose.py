"""Head pose: the three rotations a talking head adds to the 52 ARKit curves.

Angles are radians, in the order :data:`HEAD_NAMES`, about the head's own axes with ARKit's
convention (y up, z out of the face towards the viewer, right-handed), applied yaw, then pitch,
then roll (three.js Euler order "YXZ"):

- ``headYaw``: about y; positive turns the nose towards the subject's left (the viewer's right);
- ``headPitch``: about x; positive tips the nose down (a nod goes positive, then back);
- ``headRoll``: about z; positive tilts the top of the head towards the subject's right
  shoulder (counter-clockwise as the viewer sees it).

The model predicts the angles beside the curves as three more channels in [0, 1]
(:func:`to_channels`: 0.5 is straight ahead, 0 and 1 are -/+ :data:`HEAD_RANGE`), so one noise,
one sampler and one clamp serve all 55 channels.
"""
from __future__ import annotations

import math

import numpy as np

HEAD_NAMES: tuple[str, ...] = ("headYaw", "headPitch", "headRoll")
HEAD_CHANNELS = len(HEAD_NAMES)
HEAD_RANGE = math.radians(30.0)   # the channel range: talking heads stay well inside +-30 degrees
# The fastest rotation a model output may have, about any axis: voluntary head turns of people
# peak at a few hundred degrees per second (gaze shifts), talking far below that. Generated
# motion is limited to this (core.data.head_motion) and the evaluation reports the share above it.
MAX_SPEED = math.radians(200.0)   # radians per second


def to_channels(angles: np.ndarray) -> np.ndarray:
    """Radians [..., 3] -> model channels in [0, 1] (clipped at +-HEAD_RANGE)."""
    return np.clip(0.5 + np.asarray(angles, np.float32) / (2 * HEAD_RANGE), 0.0, 1.0).astype(np.float32)


def from_channels(channels: np.ndarray) -> np.ndarray:
    """Model channels [..., 3] in [0, 1] -> radians."""
    return ((np.asarray(channels, np.float32) - 0.5) * (2 * HEAD_RANGE)).astype(np.float32)


def still(frames: int) -> np.ndarray:
    """A head that does not move: zeros [frames, 3]."""
    return np.zeros((frames, HEAD_CHANNELS), np.float32)
