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
# peak at a few hundred degrees per second (gaze shifts), talking far below that. The generator's
# motion and the model's output are limited to this (limit_speed; core/inference/output_filter.py).
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


def limit_speed(angles: np.ndarray, start: np.ndarray | None = None, max_speed: float = MAX_SPEED) -> np.ndarray:
    """Angles [..., F, 3] with every frame-to-frame step clipped to ``max_speed`` rad/s at 30 fps;
    ``start`` [..., 3]: the frame before the first (a stream's last one), None: the first frame stays."""
    from core.rates import FPS
    angles = np.asarray(angles, np.float64)
    before = angles[..., :1, :] if start is None else np.asarray(start, np.float64)[..., None, :]
    step = np.clip(np.diff(np.concatenate([before, angles], -2), axis=-2), -max_speed / FPS, max_speed / FPS)
    return before + np.cumsum(step, axis=-2)


# --------------------------------------------------------------------------- checks and rotation math
# One place for the angle -> rotation conversions: the mp4 renderer, the GLB export and the viewer's
# packed head all turn the head with these (the browser's three.js Euler "YXZ" is the same rotation).

def check_head(head, frames: int | None = None, name: str = "head") -> np.ndarray:
    """Head angles as float32 [frames, 3] radians; None is a still head of ``frames`` frames.

    Raises ValueError for a wrong shape, a non-number, NaN/infinity, or an angle past a half turn
    (pi: most likely degrees given for radians).
    """
    if head is None:
        if frames is None:
            raise ValueError(f"{name}: a still head needs a frame count")
        return still(frames)
    array = np.asarray(head)
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{name}: expected numbers, got {array.dtype}")
    if array.ndim != 2 or array.shape[1] != HEAD_CHANNELS:
        raise ValueError(f"{name}: expected [frames, {HEAD_CHANNELS}] angles ({', '.join(HEAD_NAMES)}), "
                         f"got shape {array.shape}")
    if frames is not None and len(array) != frames:
        raise ValueError(f"{name}: {len(array)} frames of head angles for {frames} frames of curves")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: the head angles contain NaN or infinite values")
    if np.abs(array).max(initial=0.0) > math.pi + 1e-6:
        raise ValueError(f"{name}: a head angle of {float(np.abs(array).max()):g} is more than a half turn; "
                         "head angles are radians, not degrees")
    return array.astype(np.float32)


def rotation_matrices(angles) -> np.ndarray:
    """Radians [..., 3] (yaw, pitch, roll) -> rotation matrices [..., 3, 3] = Ry(yaw) Rx(pitch) Rz(roll)."""
    angles = np.asarray(angles, np.float64)
    (cy, cx, cz), (sy, sx, sz) = np.moveaxis(np.cos(angles), -1, 0), np.moveaxis(np.sin(angles), -1, 0)
    rows = [[cy * cz + sy * sx * sz, sy * sx * cz - cy * sz, sy * cx],
            [cx * sz, cx * cz, -sx],
            [cy * sx * sz - sy * cz, sy * sz + cy * sx * cz, cy * cx]]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def quaternions(angles) -> np.ndarray:
    """Radians [..., 3] -> unit quaternions [..., 4] in glTF's (x, y, z, w) order, the rotation of
    :func:`rotation_matrices` (q = q_yaw q_pitch q_roll)."""
    half = np.asarray(angles, np.float64) / 2
    (cy, cx, cz), (sy, sx, sz) = np.moveaxis(np.cos(half), -1, 0), np.moveaxis(np.sin(half), -1, 0)
    return np.stack([cy * sx * cz + sy * cx * sz, sy * cx * cz - cy * sx * sz,
                     cy * cx * sz - sy * sx * cz, cy * cx * cz + sy * sx * sz], axis=-1)


def angles_from_quaternions(q) -> np.ndarray:
    """Unit quaternions [..., 4] (x, y, z, w) -> radians [..., 3], the inverse of :func:`quaternions`
    (for |pitch| < pi/2, as three.js reads Euler "YXZ" back from a matrix)."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = np.moveaxis(q, -1, 0)
    m02, m12, m22 = 2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)
    m10, m11 = 2 * (x * y + w * z), 1 - 2 * (x * x + z * z)
    return np.stack([np.arctan2(m02, m22), np.arcsin(np.clip(-m12, -1, 1)), np.arctan2(m10, m11)],
                    axis=-1).astype(np.float32)


def rotate_points(points, angles, pivot, weights=None) -> np.ndarray:
    """Points [T, V, 3] turned by angles [T, 3] about ``pivot`` [3]: point v moves by ``weights[v]``
    (0..1, None: 1) of its full rotation, i.e. linear blend skinning with a still body and a head
    bone at the pivot, which is what the GLB export's skin and the browser do too."""
    points = np.asarray(points, np.float32)
    pivot = np.asarray(pivot, np.float32)
    matrices = rotation_matrices(angles).astype(np.float32)
    turned = np.einsum("tvj,tij->tvi", points - pivot, matrices) + pivot
    if weights is None:
        return turned
    return points + np.asarray(weights, np.float32)[None, :, None] * (turned - points)


# --------------------------------------------------------------------------- Live Link Face units
# Live Link Face carries HeadYaw/HeadPitch/HeadRoll as the angle in degrees / 180, i.e. in -1..1:
# Unreal's own AppleARKitFaceSupport plugin, which the app is built on, maps the face anchor's
# rotator that way (AppleARKitFaceMeshConversion.h, ToBlendShapeMap: "Map the -180..180 range to
# -1..1", e.g. github.com/chenyong2github/UnrealEngine, Engine/Plugins/Runtime/AR/AppleAR/
# AppleARKitFaceSupport/Source/AppleARKitFaceSupport/Private/). Through its axis conversion
# (ARKit y-up right-handed to Unreal z-up left-handed) and its sign flips of yaw and roll for an
# unmirrored face, each value keeps the sign of the ARKit face-frame angle used here. The CSV the
# app records holds the same values it streams (docs/DECISIONS.md, "Head motion").

def to_livelink(angles) -> np.ndarray:
    """Radians -> Live Link Face head values (degrees / 180, in -1..1)."""
    return (np.asarray(angles, np.float64) / math.pi).astype(np.float32)


def from_livelink(values) -> np.ndarray:
    """Live Link Face head values (degrees / 180) -> radians."""
    return (np.asarray(values, np.float64) * math.pi).astype(np.float32)
