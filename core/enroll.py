"""Enrolment: grow the identity library of trained models with a new talking identity.

The paper's library "can be continuously enriched and expanded by fine-tuning": with the
whole network frozen, only one new 32-d identity embedding is learned from a few recordings
(wav + Live Link Face CSV) of the new person, with the diffusion losses (so its style drives
the decoder) and the contrast loss (so the person's voice is matched to it).  The embedding is
stored in ``library.safetensors`` beside each checkpoint, which ``DiffusionTalker.from_pretrained``
reads, so the app and the CLIs list it at once.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from core import losses as L
from core.data.clip import TalkingClip
from core.data.dataset import FeatureDataset
from core.model import LIBRARY_NAME, DiffusionTalker, read_library, to_model_space, write_library

ENROL_CONTRAST_WEIGHT = 0.1   # stronger than training's 0.007: only one vector learns, and it must be findable


def fit_embedding(model: DiffusionTalker, clips: list[TalkingClip], encoder, iterations: int = 150,
                  lr: float = 0.05, crop_frames: int = 120, seed: int = 0) -> torch.Tensor:
    """Learn one identity embedding [identity_dim] for ``clips`` with ``model`` frozen."""
    if not clips:
        raise ValueError("enrolment needs at least one recording with its animation")
    model.eval().requires_grad_(False)
    data = FeatureDataset(clips, encoder, model.identity_names + ["__new__"], progress=False)
    new = torch.nn.Parameter(model.identity_embedding.weight.mean(0, keepdim=True).clone())
    optimizer = torch.optim.Adam([new], lr=lr)
    gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    new_index = len(model.identity_names)
    for _ in range(iterations):
        idx = rng.integers(0, len(data), size=min(8, 2 * len(data)))
        audio, curves, mask, ident = data.batch(idx, crop_frames, rng)
        table = torch.cat([model.identity_embedding.weight, new], 0)
        x0 = to_model_space(curves)
        t = torch.randint(1, model.schedule.steps + 1, (len(idx),), generator=gen)
        x_t = model.schedule.q_sample(x0, t, torch.randn(x0.shape, generator=gen))
        x0_hat = model.denoise(x_t, t, model.condition(audio, ident, table))
        logits = model.identity_logits(audio, mask, table)
        loss = (L.expression_loss(x0_hat, x0, mask) + L.lip_loss(x0_hat, x0, mask)
                + 0.5 * L.velocity_loss(x0_hat, x0, mask)
                + ENROL_CONTRAST_WEIGHT * F.cross_entropy(logits, torch.full_like(ident, new_index)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return new.detach()[0]


def enroll(checkpoint_dir, name: str, clips: list[TalkingClip], encoder=None, iterations: int = 150) -> list[str]:
    """Enrol ``name`` into one checkpoint folder's library; returns the library's identities."""
    from pathlib import Path
    from core.encoders import get_encoder
    name = name.strip()
    if not name or len(name) > 64:
        raise ValueError("give the new identity a name of 1 to 64 characters")
    folder = Path(checkpoint_dir)
    model = DiffusionTalker.from_pretrained(folder)
    if name in model.identity_names:
        raise ValueError(f"identity {name!r} is already in the library of {folder.name}")
    encoder = encoder or get_encoder(model.config.encoder)
    embedding = fit_embedding(model, clips, encoder, iterations)
    path = folder / LIBRARY_NAME
    names, table = read_library(path) if path.is_file() else ([], torch.zeros(0, embedding.numel()))
    write_library(path, names + [name], torch.cat([table, embedding[None]], 0))
    return model.identity_names + [name]
