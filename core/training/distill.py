"""Progressive distillation (paper eq. 7-9, 16; Salimans & Ho 2022).

``python -m core.training.distill --teacher checkpoints/teacher-256 --data CORPUS --out-root checkpoints --down-to 1``
runs the chain 256 -> 128 -> ... -> 1.  Each round copies the teacher into a student with half
the steps (on the teacher's grid: every other point), trains it so that one deterministic
student step matches two deterministic teacher steps, saves it as ``<prefix>-<N>``, and makes
it the teacher of the next round.  Finished rounds are skipped, so the chain is resumable.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
from pathlib import Path

import torch

from core.inference.value_maps import FITTED_KEYS
from core.model import losses as L
from core.data.dataset import Batch
from core.model.network import DiffusionTalker, model_targets
from core.training.train import (add_common_args, emotion_inputs, fit, model_channel_weights, prepare_data,
                                 train_config_from_args)


ADAPTER_PARTS = ("identity_embedding", "identity_encoder", "identity_contrast", "audio_contrast")


def make_student(teacher: DiffusionTalker, teacher_name: str) -> DiffusionTalker:
    if teacher.config.steps % 2:
        raise ValueError(f"cannot halve a {teacher.config.steps}-step teacher")
    extra = {k: v for k, v in copy.deepcopy(teacher.config.extra).items()   # the teacher's own
             if k != "selected" and k not in FITTED_KEYS}
    config = dataclasses.replace(teacher.config, steps=teacher.config.steps // 2, parent=teacher_name, distilled=True,
                                 sampler="ddim", extra=extra)
    student = DiffusionTalker(config)
    student.load_state_dict(teacher.state_dict())
    # The personalisation adapter stays the teacher's: every step count then matches a voice to
    # the same identity with the same scores (trained on, each student drifted its own copy).
    for part in ADAPTER_PARTS:
        getattr(student, part).requires_grad_(False)
    return student


def distillation_objective(teacher: DiffusionTalker, closure_emotion_boost: float = 0.0,
                           channel_weights: dict[str, float] | None = None):
    """The student's terms: the data's lips and closures (closures weighed by the row's emotion,
    ``closure_emotion_boost``: :func:`core.model.losses.emotion_closure_weight`), the teacher's
    sample for the whole face (its channels weighed by ``channel_weights``, prefix -> weight), and
    the distillation term."""
    teacher.eval().requires_grad_(False)

    def objective(model, batch: Batch, gen: torch.Generator):
        audio, curves, mask, ident, _ = batch
        student = getattr(model, "module", model)
        x0 = model_targets(student, curves)
        emotion, dropped = emotion_inputs(student, batch, gen)
        t, x_t = student.schedule.training_input(x0, gen)
        with torch.no_grad():
            cond = teacher.condition(audio, ident, emotion=emotion, dropped=dropped)
            target = student.schedule.distillation_target(
                x_t, t, teacher.schedule, lambda x, tt: teacher.denoise(x, tt, cond))
        x0_hat, logits = model(x_t, t, audio, ident, mask, emotion, dropped)
        terms = L.diffusion_terms(x0_hat, x0, mask, logits, ident, face_target=target,
                                  closure_weight=L.emotion_closure_weight(emotion, closure_emotion_boost),
                                  channel_weight=model_channel_weights(student, channel_weights, x0.device))
        terms["dis"] = L.distillation_loss(x0_hat, target, mask, student.schedule.snr_weight(t))
        return terms, logits

    return objective


def main(argv=None):
    p = argparse.ArgumentParser(description="Progressive distillation chain of DiffusionTalker students.")
    add_common_args(p, with_out=False)
    p.add_argument("--teacher", required=True, help="checkpoint folder of the first teacher")
    p.add_argument("--out-root", required=True, help="students are saved as <out-root>/<prefix>-<steps>")
    p.add_argument("--prefix", default="distilled")
    p.add_argument("--down-to", type=int, default=8, help="last student step count")
    p.set_defaults(epochs=4, lr=3e-4)
    a = p.parse_args(argv)
    teacher_dir = Path(a.teacher)
    teacher = DiffusionTalker.from_pretrained(teacher_dir)
    train_set, val_set, _, _ = prepare_data(a.data, teacher.config.encoder, teacher.identity_names)
    while teacher.config.steps > a.down_to:
        out = Path(a.out_root) / f"{a.prefix}-{teacher.config.steps // 2}"
        cfg = dataclasses.replace(train_config_from_args(a), out=str(out))
        print(f"distilling {teacher_dir.name} ({teacher.config.steps} steps) -> {out.name}")
        student = make_student(teacher, teacher_dir.name)
        student.config.extra["distill"] = {"epochs": a.epochs, "max_minutes": a.max_minutes, "lr": a.lr,
                                           "loss_weights": cfg.loss_weights.as_dict(),
                                           "closure_emotion_boost": cfg.closure_emotion_boost,
                                           "channel_weights": cfg.channel_weights}
        fit(student, distillation_objective(teacher, cfg.closure_emotion_boost, cfg.channel_weights),
            train_set, val_set, cfg)  # skips finished rounds
        teacher_dir, teacher = out, DiffusionTalker.from_pretrained(out)


if __name__ == "__main__":
    main()
