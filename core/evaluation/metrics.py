"""Evaluation metrics, FaceDiffuser-compatible, on ARKit-52 curves [frames, 52] in [0, 1].

Each metric is computed per sequence; callers average over sequences.
- MBE / LBE: mean over frames of the L2 norm of (pred - gt) over all 52 / the lip channels.
- FDD: std over time of sum_{upper} x^2 for ground truth minus prediction (signed; report |mean|).
- LVE: mean over frames of the largest lip-vertex L2 error when both curves drive the head mesh.
- Diversity: mean pairwise distance between samples of different seeds, per channel group.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from core.arkit import LIP_INDICES, UPPER_INDICES

_LIP, _UPPER = list(LIP_INDICES), list(UPPER_INDICES)


def _check(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    n = min(len(pred), len(gt))
    if n == 0 or pred.shape[1:] != gt.shape[1:]:
        raise ValueError(f"cannot compare curves of shapes {pred.shape} and {gt.shape}")
    return pred[:n], gt[:n]


def mbe(pred, gt) -> float:
    pred, gt = _check(pred, gt)
    return float(np.linalg.norm(pred - gt, axis=-1).mean())


def lbe(pred, gt) -> float:
    pred, gt = _check(pred, gt)
    return float(np.linalg.norm(pred[:, _LIP] - gt[:, _LIP], axis=-1).mean())


def fdd(pred, gt) -> float:
    pred, gt = _check(pred, gt)
    return float((gt[:, _UPPER] ** 2).sum(-1).std() - (pred[:, _UPPER] ** 2).sum(-1).std())


def lve(pred_vertices: np.ndarray, gt_vertices: np.ndarray, lip_vertex_ids) -> float:
    """Vertices [frames, V, 3]; VOCASET-style lip vertex error (max over lip vertices, mean over frames)."""
    diff = np.asarray(pred_vertices)[:, lip_vertex_ids] - np.asarray(gt_vertices)[:, lip_vertex_ids]
    return float(np.linalg.norm(diff, axis=-1).max(-1).mean())


def seed_diversity(samples: np.ndarray) -> dict[str, float]:
    """samples [K, frames, 52] from K seeds -> mean pairwise per-frame L2 distance, upper vs lower face."""
    samples = np.asarray(samples, np.float64)
    if len(samples) < 2:
        raise ValueError("diversity needs at least two samples")
    out = {}
    for group, idx in (("upper", _UPPER), ("lower", _LIP)):
        dists = [np.linalg.norm(samples[i][:, idx] - samples[j][:, idx], axis=-1).mean()
                 for i, j in combinations(range(len(samples)), 2)]
        out[group] = float(np.mean(dists))
    return out


def identity_scores(true: list[str], predicted: list[str]) -> dict[str, float]:
    """Macro precision / recall / F1 over the identities present in ``true`` and accuracy."""
    if len(true) != len(predicted) or not true:
        raise ValueError("need equally many (non-zero) true and predicted labels")
    labels = sorted(set(true))
    precision, recall, f1 = [], [], []
    for label in labels:
        tp = sum(t == label and p == label for t, p in zip(true, predicted))
        fp = sum(t != label and p == label for t, p in zip(true, predicted))
        fn = sum(t == label and p != label for t, p in zip(true, predicted))
        p_ = tp / (tp + fp) if tp + fp else 0.0
        r_ = tp / (tp + fn) if tp + fn else 0.0
        precision.append(p_)
        recall.append(r_)
        f1.append(2 * p_ * r_ / (p_ + r_) if p_ + r_ else 0.0)
    return {"precision": float(np.mean(precision)), "recall": float(np.mean(recall)), "f1": float(np.mean(f1)),
            "accuracy": float(np.mean([t == p for t, p in zip(true, predicted)])), "clips": len(true)}
