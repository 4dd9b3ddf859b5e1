"""Training losses (paper §3.4) on model-space curves [B, F, 52] with a frame mask [B, F].

Teacher: 1*L_exp + 1*L_lip + 0.007*L_con + 0.5*L_vel; a distilled student adds 0.1*L_dis.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from core.arkit import LIP_INDICES

_LIP = torch.tensor(LIP_INDICES)


@dataclass
class LossWeights:
    exp: float = 1.0
    lip: float = 1.0
    con: float = 0.007
    vel: float = 0.5
    dis: float = 0.1

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
               frame_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over valid frames (mask [B, F]) and channels; optional per-clip weight [B]."""
    err = ((pred - target) ** 2).mean(-1) * mask
    if frame_weight is not None:
        err = err * frame_weight[:, None]
    return err.sum() / mask.sum().clamp(min=1.0)


def expression_loss(pred, target, mask):
    return masked_mse(pred, target, mask)


def lip_loss(pred, target, mask):
    return masked_mse(pred[..., _LIP], target[..., _LIP], mask)


def velocity_loss(pred, target, mask):
    pair_mask = mask[:, 1:] * mask[:, :-1]
    return masked_mse(pred[:, 1:] - pred[:, :-1], target[:, 1:] - target[:, :-1], pair_mask)


def contrast_loss(logits: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
    """Eq. 14 with the library as the candidate set: each clip's positive is its own identity."""
    return F.cross_entropy(logits, identity)


def distillation_loss(pred, target, mask, snr_weight):
    """max(alpha^2/sigma^2, 1) * ||x~ - s_hat||^2 (eq. 16)."""
    return masked_mse(pred, target, mask, frame_weight=snr_weight)


def diffusion_terms(x0_hat, x0, mask, logits, identity) -> dict[str, torch.Tensor]:
    """The data and contrast terms every objective shares (teacher, student, enrolment)."""
    return {"exp": expression_loss(x0_hat, x0, mask), "lip": lip_loss(x0_hat, x0, mask),
            "vel": velocity_loss(x0_hat, x0, mask), "con": contrast_loss(logits, identity)}


def total_loss(weights: LossWeights, terms: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(getattr(weights, name) * value for name, value in terms.items())
