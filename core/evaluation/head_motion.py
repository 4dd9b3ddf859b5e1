"""Is the generated head motion distributed as the data's? Statistics of K samples of one clip,
pooled over clips as :mod:`core.evaluation.upper_face` does for the eyes and brows.

Angles are radians [K, F, 3] (yaw, pitch, roll; core/head_pose.py); figures are in degrees:

- ``spread``: across-sample std per frame, averaged over frames (per axis): what the seed changes;
- ``amplitude``: std over time within a sample (how far the head moves at all);
- ``speed``: mean absolute angular speed, degrees per second; ``max_speed`` the fastest frame step;
  ``too_fast``: share of frame steps above core.head_pose.MAX_SPEED (beyond float rounding);
- ``nods``: pitch velocity crossing from down to up after a dip of at least NOD_DEGREES within
  NOD_SECONDS, per minute.
"""
from __future__ import annotations

import numpy as np

from core.head_pose import HEAD_NAMES, MAX_SPEED
from core.rates import FPS

NOD_DEGREES = 1.5
NOD_SECONDS = 0.6


def nods(pitch: np.ndarray) -> int:
    """Nods in one pitch track [F] (radians): a local maximum (head down) at least NOD_DEGREES
    above the lowest pitch in the NOD_SECONDS before it and after it."""
    deg = np.degrees(pitch)
    span = int(NOD_SECONDS * FPS)
    count, f = 0, 1
    while f < len(deg) - 1:
        if deg[f] >= deg[f - 1] and deg[f] > deg[f + 1]:
            before, after = deg[max(0, f - span):f].min(), deg[f + 1:f + 1 + span].min()
            if deg[f] - before >= NOD_DEGREES and deg[f] - after >= NOD_DEGREES:
                count += 1
                f += span // 2
        f += 1
    return count


def clip_statistics(head: np.ndarray) -> dict:
    """Raw sums of one clip's K samples [K, F, 3], to pool with :func:`pooled`."""
    head = np.asarray(head, np.float64)
    k, frames, _ = head.shape
    step = np.abs(np.diff(head, axis=1)) * FPS
    return {"frames": frames * k, "clip_frames": frames,
            "spread": head.std(0).sum(0) if k > 1 else np.zeros(3),
            "amplitude": head.std(1).sum(0) * frames, "speed": step.sum((0, 1)),
            "steps": step.shape[0] * step.shape[1], "max_speed": step.max((0, 1)) if step.size else np.zeros(3),
            "too_fast": (step > MAX_SPEED * (1 + 1e-3)).sum(), "nods": sum(nods(s[:, 1]) for s in head)}


def pooled(stats: list[dict]) -> dict:
    frames = sum(s["frames"] for s in stats)
    clip_frames = sum(s["clip_frames"] for s in stats)
    steps = max(1, sum(s["steps"] for s in stats))
    axis = lambda v: {n: float(np.degrees(x)) for n, x in zip(HEAD_NAMES, v)}
    return {"spread": axis(sum(s["spread"] for s in stats) / clip_frames),
            "amplitude": axis(sum(s["amplitude"] for s in stats) / frames),
            "speed": axis(sum(s["speed"] for s in stats) / steps),
            "max_speed": axis(np.max([s["max_speed"] for s in stats], 0)),
            "too_fast_share": float(sum(s["too_fast"] for s in stats) / (3 * steps)),
            "nods_per_minute": float(sum(s["nods"] for s in stats) / (frames / FPS / 60.0))}


def against_truth(model: dict, truth: dict) -> dict:
    """Model over truth for the spread and amplitude per axis, and for the nod rate."""
    ratio = lambda a, b: a / b if b > 0 else float("nan")
    return {"spread_ratio": {n: ratio(model["spread"][n], truth["spread"][n]) for n in HEAD_NAMES},
            "amplitude_ratio": {n: ratio(model["amplitude"][n], truth["amplitude"][n]) for n in HEAD_NAMES},
            "nod_ratio": ratio(model["nods_per_minute"], truth["nods_per_minute"])}
