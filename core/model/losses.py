"""Training losses (paper §3.4) on model-space curves [B, F, 52] with a frame mask [B, F].

Teacher: 1*L_exp + 1*L_lip + 0.007*L_con + 0.5*L_vel; a distilled student adds 0.1*L_dis.
``L_clo`` (weight 0 unless chosen) is the lip loss again on the frames where the target's lips
close between openings (a p/b/m-like dip): few frames, easily outweighed by the rest. Under an
emotion those closures are rarer still and fight the emotion's jaw and mouth (surprise opens the
jaw, yet a "b" shuts it), so a row's closures can weigh more with its emotion's intensity
(:func:`emotion_closure_weight`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from core.arkit import INDEX, LIP_INDICES

_LIP = torch.tensor(LIP_INDICES)
CLOSED_APERTURE = 0.1       # target lips nearly together (jawOpen - mouthClose, curve units)
OPENING = 0.1               # ... and open by at least this much more ...
CONTEXT_FRAMES = 9          # ... within this many frames (0.3 s) either side


@dataclass
class LossWeights:
    exp: float = 1.0
    lip: float = 1.0
    con: float = 0.007
    vel: float = 0.5
    dis: float = 0.1
    clo: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
               frame_weight: torch.Tensor | None = None, channel_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over valid frames (mask [B, F]) and channels; optional per-clip weight [B]
    and per-channel weight [C]."""
    sq = (pred - target) ** 2
    err = (sq if channel_weight is None else sq * channel_weight).mean(-1) * mask
    if frame_weight is not None:
        err = err * frame_weight[:, None]
    return err.sum() / mask.sum().clamp(min=1.0)


def expression_loss(pred, target, mask, weight=None, channel_weight=None):
    return masked_mse(pred, target, mask, weight, channel_weight)


def lip_loss(pred, target, mask, weight=None):
    return masked_mse(pred[..., _LIP], target[..., _LIP], mask, weight)


def velocity_loss(pred, target, mask, weight=None, channel_weight=None):
    pair_mask = mask[:, 1:] * mask[:, :-1]
    return masked_mse(pred[:, 1:] - pred[:, :-1], target[:, 1:] - target[:, :-1], pair_mask, weight,
                      channel_weight)


def channel_weights(names: list[str], by_prefix: dict[str, float]) -> torch.Tensor | None:
    """[C] weight of each of ``names`` (the model's channels) in the whole-face terms: a channel
    takes the weight of the longest prefix in ``by_prefix`` it starts with, else 1. None when
    nothing is weighted. Why: in the mean over 55 channels a blink's two channels or the head's
    three small angles are a few per cent of the loss, and the lips have a term of their own."""
    if not by_prefix:
        return None
    unknown = [k for k in by_prefix if not any(n.startswith(k) for n in names)]
    if unknown:
        raise ValueError(f"channel weights: no channel starts with {', '.join(unknown)}")
    def weight(name: str) -> float:
        hits = [k for k in by_prefix if name.startswith(k)]
        return by_prefix[max(hits, key=len)] if hits else 1.0
    return torch.tensor([weight(n) for n in names], dtype=torch.float32)


def closure_frames(x0: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, F] 1 where the target (model space) shuts its lips between openings, as
    :func:`core.evaluation.lipsync.closures` asks of a p/b/m; pauses with the mouth resting shut are 0."""
    aperture = (x0[..., INDEX["jawOpen"]] - x0[..., INDEX["mouthClose"]]) * 0.5   # curve units
    aperture = aperture.masked_fill(mask <= 0, -1.0)
    k = 2 * CONTEXT_FRAMES + 1
    around = F.max_pool1d(aperture[:, None], k, stride=1, padding=CONTEXT_FRAMES)[:, 0]
    return ((aperture <= CLOSED_APERTURE) & (around >= aperture + OPENING) & (mask > 0)).to(x0.dtype)


def closure_loss(pred, target, mask, weight=None):
    """Lip-channel error on the closure frames only (their mean; 0 for a batch without any)."""
    return masked_mse(pred[..., _LIP], target[..., _LIP], mask * closure_frames(target, mask), weight)


def emotion_closure_weight(emotion: torch.Tensor | None, boost: float) -> torch.Tensor | None:
    """Per row [B]: 1 + ``boost`` x the row's emotion intensity (``emotion`` [B, axes], one axis at
    its intensity, zeros for neutral); None (uniform) without emotions or boost."""
    if emotion is None or not boost:
        return None
    return 1.0 + boost * emotion.abs().sum(-1)


def contrast_loss(logits: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
    """Eq. 14 with the library as the candidate set: each clip's positive is its own identity."""
    return F.cross_entropy(logits, identity)


def distillation_loss(pred, target, mask, snr_weight):
    """max(alpha^2/sigma^2, 1) * ||x~ - s_hat||^2 (eq. 16)."""
    return masked_mse(pred, target, mask, frame_weight=snr_weight)


def diffusion_terms(x0_hat, x0, mask, logits, identity, weight=None, face_target=None,
                    closure_weight=None, channel_weight=None) -> dict[str, torch.Tensor]:
    """The data and contrast terms every objective shares (teacher, student, enrolment).

    ``weight`` [B] weighs each row (e.g. by its noise level). ``face_target`` replaces x0 in
    the whole-face terms (expression, velocity): a distilled student matches its teacher's
    sample there, since against the data those terms pull every step toward the conditional
    mean and average the upper face away; lips and closures stay on the data (nearly
    deterministic given the audio, so the data's lips are also the teacher's). ``closure_weight``
    [B] weighs each row's closure term on top of ``weight`` (:func:`emotion_closure_weight`);
    ``channel_weight`` [C] each channel in the whole-face terms (:func:`channel_weights`)."""
    face = x0 if face_target is None else face_target
    return {"exp": expression_loss(x0_hat, face, mask, weight, channel_weight),
            "lip": lip_loss(x0_hat, x0, mask, weight),
            "vel": velocity_loss(x0_hat, face, mask, weight, channel_weight), "con": contrast_loss(logits, identity),
            "clo": closure_loss(x0_hat, x0, mask, _product(weight, closure_weight))}


def _product(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    return b if a is None else a if b is None else a * b


def total_loss(weights: LossWeights, terms: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(getattr(weights, name) * value for name, value in terms.items())
