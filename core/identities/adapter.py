"""Fitting the personalisation adapter's two contrast heads alone, after the teacher is trained.

The heads (``audio_contrast``: pooled speech features -> contrast space; ``identity_contrast``:
identity feature -> contrast space) only rank the library (paper eq. 14); the identity embedding
and encoder also condition the decoder and stay as trained, so the curves do not change. Trained
jointly with the denoiser at the paper's weight (0.007) on 2 CPU cores, the heads matched 94 % of
the seen voices' test clips; a few minutes on the contrast loss alone, on whole clips and on 3 s
crops (what the Live tab matches on), are cheap. Distilled students keep the teacher's adapter
(:mod:`core.training.distill`), so this runs once, on the teacher, before distillation, and every step
count then matches a voice the same way. The best epoch by accuracy on the corpus's val split
(synthetic, never the real-speech parts) is kept.

    python -m core.identities.adapter --checkpoint checkpoints/teacher-256 --data corpus/default --minutes 3
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

HEADS = ("audio_contrast", "identity_contrast")
CROPS = (300, 90)            # whole clips (10 s at most) and the Live tab's first 3 s, alternately


def accuracy(model, dataset, batch_size: int = 64) -> tuple[float, float]:
    """(top-1 accuracy, mean cross-entropy) of library matching on whole clips."""
    rng = np.random.default_rng(0)
    correct, loss, count = 0, 0.0, 0
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            idx = list(range(start, min(start + batch_size, len(dataset))))
            audio, _, mask, ident, _ = dataset.batch(idx, CROPS[0], rng)
            logits = model.identity_logits(audio, mask)
            correct += int((logits.argmax(-1) == ident).sum())
            loss += float(F.cross_entropy(logits, ident, reduction="sum"))
            count += len(idx)
    return correct / count, loss / count


def fit_heads(model, train_set, val_set, minutes: float = 3.0, lr: float = 1e-3, batch_size: int = 64,
              seed: int = 0, log=print) -> dict:
    """Train the contrast heads of ``model`` in place; returns what it did (kept epoch, accuracies)."""
    model.requires_grad_(False)
    params = [p for name in HEADS for p in getattr(model, name).parameters()]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr)
    before = accuracy(model, val_set)
    best = (before[0], -before[1], 0, {k: v.clone() for k, v in model.state_dict().items()})
    began, epoch, step = time.time(), 0, 0
    while time.time() - began < minutes * 60:
        epoch += 1
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(train_set))
        model.train()
        for start in range(0, len(order), batch_size):
            audio, _, mask, ident, _ = train_set.batch(order[start:start + batch_size], CROPS[step % len(CROPS)], rng)
            loss = F.cross_entropy(model.identity_logits(audio, mask), ident)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        model.eval()
        acc, ce = accuracy(model, val_set)
        log(json.dumps({"adapter_epoch": epoch, "minutes": round((time.time() - began) / 60, 2),
                        "val_identity_acc": round(acc, 4), "val_ce": round(ce, 4)}))
        if (acc, -ce) > best[:2]:
            best = (acc, -ce, epoch, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[3])
    model.requires_grad_(True)
    return {"minutes": minutes, "lr": lr, "epochs": epoch, "kept_epoch": best[2],
            "val_identity_acc_before": round(before[0], 4), "val_identity_acc_after": round(best[0], 4)}


def main(argv=None) -> None:
    from core.model.network import DiffusionTalker
    from core.training.train import prepare_data
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (changed in place)")
    p.add_argument("--data", required=True, help="the corpus the model was trained on")
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    model = DiffusionTalker.from_pretrained(a.checkpoint)
    if "adapter_fit" in model.config.extra:
        print(json.dumps(model.config.extra["adapter_fit"]))       # fitted before: nothing to redo
        return
    train_set, val_set, _, _ = prepare_data(a.data, model.config.encoder, model.identity_names)
    result = fit_heads(model, train_set, val_set, a.minutes, a.lr)
    model.config.extra["adapter_fit"] = result
    model.save_pretrained(a.checkpoint)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
