"""Teacher training: ``python -m core.training.train --data CORPUS --out checkpoints/teacher-256 --steps 256``.

The loop reads top to bottom: sample t ~ U{1..T}, noise the curves, predict x0, weighted
losses, Adam.  Validation each epoch, a checkpoint (safetensors) each epoch, resumable, CPU or
CUDA automatically; multi-GPU with ``torchrun --nproc_per_node N -m core.training.train ...`` (DDP).
:func:`fit` is shared with progressive distillation (``core.training.distill``), which only swaps
the objective.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from core.arkit import ARKIT_NAMES
from core.data.dataset import Batch
from core.head_pose import HEAD_NAMES
from core.model import losses as L
from core.model.network import DiffusionTalker, TalkerConfig, masked_moments, model_targets
from core.emotion import AXES
from core.training.run_state import resume, save_epoch, save_state
from core.training.widen import widen_to_bidirectional, widen_to_performance

Objective = Callable[[torch.nn.Module, Batch, torch.Generator], tuple[dict[str, torch.Tensor], torch.Tensor]]


@dataclass
class TrainConfig:
    data: str = ""
    out: str = ""
    epochs: int = 30
    max_minutes: float | None = None     # wall-clock budget; stops after the epoch that crosses it
    batch_size: int = 32
    crop_frames: int = 120               # 4 s crops; inference runs the GRU over any length
    lr: float = 1e-3                     # paper 1e-4 for 50 GPU epochs; higher for a CPU budget
    grad_clip: float = 1.0
    seed: int = 0
    loss_weights: L.LossWeights = field(default_factory=L.LossWeights)
    resume: bool = True
    snapshot_minutes: float | None = None  # also keep the model every this many minutes (snapshots/)
    feature_noise: float = 0.0           # Gaussian noise on encoder features, x their std (training only)
    time_mask: float = 0.0               # share of frames whose features are masked (training only)
    snr_max: float = 0.0                 # >0: each row's data terms weighted clamp(SNR, 1, snr_max)
    condition_dropout: float = 0.0       # share of rows trained with the emotion dropped (guidance)
    closure_emotion_boost: float = 0.0   # a row's closure term x (1 + this x its emotion's intensity)
    channel_weights: dict[str, float] = field(default_factory=dict)  # channel-name prefix -> weight in
                                         # the whole-face terms (L_exp, L_vel); e.g. {"eyeBlink": 4}


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", 0))
        return torch.device("cuda", local)
    return torch.device("cpu")


def distributed() -> tuple[int, int]:
    """(rank, world size); initialises torch.distributed when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (torch.distributed.get_rank() if world > 1 else 0), world


# -- objectives ---------------------------------------------------------------------------------

def emotion_inputs(model: DiffusionTalker, batch: Batch, gen: torch.Generator):
    """(emotion, dropped) for ``model.condition``: the batch's emotions and the rows whose emotion is
    dropped this step (classifier-free guidance); (None, None) for a model that reads no emotion."""
    if not model.config.emotions:
        return None, None
    share = model.config.extra.get("train", {}).get("condition_dropout", 0.0)
    dropped = (torch.rand(len(batch.emotion), generator=gen) < share).to(batch.emotion.device) if share else None
    return batch.emotion, dropped


def teacher_objective(model, batch: Batch, gen: torch.Generator):
    audio, curves, mask, ident, _ = batch
    core_model = getattr(model, "module", model)
    x0 = model_targets(core_model, curves)
    t, x_t = core_model.schedule.training_input(x0, gen)
    emotion, dropped = emotion_inputs(core_model, batch, gen)
    x0_hat, logits = model(x_t, t, audio, ident, mask, emotion, dropped)
    boost = core_model.config.extra.get("train", {}).get("closure_emotion_boost", 0.0)
    return L.diffusion_terms(x0_hat, x0, mask, logits, ident, row_weight(core_model, t),
                             closure_weight=L.emotion_closure_weight(emotion, boost),
                             channel_weight=model_channel_weights(
                                 core_model, core_model.config.extra.get("train", {}).get("channel_weights"),
                                 x0.device)), logits


def model_channel_weights(model: DiffusionTalker, by_prefix: dict[str, float] | None,
                          device) -> torch.Tensor | None:
    """Per-channel weights (``--channel-weight``) over the model's channels, or None."""
    weights = _channel_weight_vector(model.config.head_channels, tuple(sorted((by_prefix or {}).items())))
    return None if weights is None else weights.to(device)


@functools.lru_cache(maxsize=8)
def _channel_weight_vector(head_channels: int, by_prefix: tuple[tuple[str, float], ...]) -> torch.Tensor | None:
    """Built once per run, not at every step (read-only: callers move it, never change it)."""
    return L.channel_weights(list(ARKIT_NAMES) + list(HEAD_NAMES[:head_channels]), dict(by_prefix))


def row_weight(model: DiffusionTalker, t: torch.Tensor) -> torch.Tensor | None:
    """clamp(SNR, 1, snr_max) per row, or None (uniform) when the model was trained without it."""
    snr_max = model.config.extra.get("train", {}).get("snr_max", 0.0)
    return model.schedule.snr(t).clamp(1.0, snr_max) if snr_max else None


# -- the loop -----------------------------------------------------------------------------------

MASK_SPAN = 3       # frames per time mask (0.1 s: shorter than a syllable, longer than a closure)


def regularised_features(audio: torch.Tensor, mask: torch.Tensor, noise: float, masked_share: float,
                         gen: torch.Generator) -> torch.Tensor:
    """Encoder features made harder to memorise (against TTS artefacts): Gaussian noise of
    ``noise`` x each feature's std, and spans of MASK_SPAN frames (``masked_share`` of all
    frames) replaced by the clip's mean feature."""
    mean, var = masked_moments(audio, mask)
    out = audio
    if noise:
        out = out + noise * var.sqrt() * torch.randn(audio.shape, generator=gen).to(audio.device)
    if masked_share:
        b, f = audio.shape[:2]
        starts = torch.rand((b, f), generator=gen).to(audio.device) < masked_share / MASK_SPAN
        hidden = F.max_pool1d(starts[:, None].float(), MASK_SPAN, stride=1, padding=MASK_SPAN // 2)[:, 0, :f] > 0
        out = torch.where(hidden.unsqueeze(-1), mean.expand_as(out), out)
    return out


def evaluate_objective(model, objective: Objective, dataset, cfg: TrainConfig, device) -> dict[str, float]:
    """Mean loss terms and identity accuracy on a dataset with fixed noise (comparable across epochs)."""
    model.eval()
    gen, rng = torch.Generator().manual_seed(1234), np.random.default_rng(1234)
    sums: dict[str, float] = {}
    correct = count = 0
    with torch.no_grad():
        for start in range(0, len(dataset), cfg.batch_size):
            idx = list(range(start, min(start + cfg.batch_size, len(dataset))))
            batch = Batch(*(b.to(device) for b in dataset.batch(idx, cfg.crop_frames, rng)))
            terms, logits = objective(model, batch, gen)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
            correct += int((logits.argmax(-1) == batch[3]).sum())
            count += len(idx)
    model.train()
    out = {k: v / count for k, v in sums.items()}
    out["total"] = float(L.total_loss(cfg.loss_weights, {k: torch.tensor(v) for k, v in out.items()}))
    out["identity_acc"] = correct / count
    return out


def fit(model: DiffusionTalker, objective: Objective, train_set, val_set, cfg: TrainConfig) -> list[dict]:
    """Train ``model`` with ``objective``; checkpoints to cfg.out each epoch; returns the log."""
    rank, world = distributed()
    device = pick_device()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    start_epoch, log, finished = resume(model, optimizer, out, cfg.resume, cfg.epochs, rank)
    if finished:
        return log
    wrapped = model
    if world > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    per_epoch = max(1, len(train_set) // (cfg.batch_size * world))
    total_steps = per_epoch * cfg.epochs
    minutes_before = log[-1]["minutes"] if log else 0.0
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    began, epoch = time.time(), start_epoch - 1

    def minutes() -> float:
        return minutes_before + (time.time() - began) / 60

    def set_lr(step: int) -> None:
        """Cosine decay over whichever runs out first: the epochs or the minute budget."""
        progress = step / total_steps
        if cfg.max_minutes:
            progress = max(progress, minutes() / cfg.max_minutes)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    for epoch in range(start_epoch, cfg.epochs):
        rng = np.random.default_rng(cfg.seed + epoch)
        order = rng.permutation(len(train_set))[rank::world]
        sums: dict[str, float] = {}
        bar = tqdm(_batches(train_set, order, per_epoch, cfg, rng, gen, device), total=per_epoch,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=rank != 0, leave=False)
        for i, batch in bar:
            set_lr(epoch * per_epoch + i)
            terms = _step(wrapped, model, objective, optimizer, batch, cfg, gen)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item()
            bar.set_postfix({k: f"{v / (i + 1):.4f}" for k, v in sums.items()})
        row = {"epoch": epoch + 1, "minutes": round(minutes(), 2), "lr": optimizer.param_groups[0]["lr"],
               "train": {k: v / per_epoch for k, v in sums.items()}}
        if rank == 0:
            row["val"] = evaluate_objective(model, objective, val_set, cfg, device)
            log.append(row)
            save_epoch(model, optimizer, out, log, _jsonable(cfg), minutes(), cfg.snapshot_minutes)
        if cfg.max_minutes is not None and minutes() >= cfg.max_minutes:
            if rank == 0:
                print(f"time budget of {cfg.max_minutes} min reached after epoch {epoch + 1}")
            break
    if rank == 0:
        save_state(out, optimizer, {"epoch": epoch + 1, "log": log, "train_config": _jsonable(cfg),
                               "finished": True, "target_epochs": cfg.epochs})
    if world > 1:
        torch.distributed.barrier()
    return log


def _batches(train_set, order: np.ndarray, per_epoch: int, cfg: TrainConfig, rng: np.random.Generator,
             gen: torch.Generator, device):
    """(index, batch) of an epoch in ``order``, on ``device``, the features regularised."""
    for i in range(per_epoch):
        idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
        if len(idx) == 0:
            continue
        batch = Batch(*(b.to(device) for b in train_set.batch(idx, cfg.crop_frames, rng)))
        if cfg.feature_noise or cfg.time_mask:
            batch = batch._replace(audio=regularised_features(batch.audio, batch.mask, cfg.feature_noise,
                                                               cfg.time_mask, gen))
        yield i, batch


def _step(wrapped, model: DiffusionTalker, objective: Objective, optimizer, batch: Batch, cfg: TrainConfig,
          gen: torch.Generator) -> dict[str, torch.Tensor]:
    """One optimiser step on ``batch`` (``wrapped``: the model, or its DistributedDataParallel);
    returns the loss terms."""
    terms, _ = objective(wrapped, batch, gen)
    loss = L.total_loss(cfg.loss_weights, terms)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return terms


def _jsonable(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg), default=str))


# -- CLI ----------------------------------------------------------------------------------------

def kept(clips, without: tuple[str, ...] = ()) -> list:
    """Clips with none of the corpus augmentations or TTS engines named in ``without``
    (e.g. ``("mp3", "opus", "piper")``; an engine is the second part of an identity name,
    ``id28_piper_joe``): the ablations that measure what each addition to the corpus buys."""
    if not without:
        return list(clips)
    drop = set(without)

    def engine(identity: str) -> str:
        parts = identity.split("_")
        return parts[1] if len(parts) > 2 else ""

    return [c for c in clips if not drop & set(c.extras.get("augment", ())) and engine(c.identity) not in drop]


def prepare_data(data: str, encoder_name: str, identity_names: list[str] | None = None, progress=True,
                 without: tuple[str, ...] = ()):
    """(train set, val set, identity names, fingerprint) with cached encoder features."""
    from core.data.dataset import FeatureDataset, data_fingerprint, load_clips
    from core.audio.encoders import get_encoder
    train_clips = kept(load_clips(data, ("train",)), without)
    val_clips = kept(load_clips(data, ("val",)), without)
    names = identity_names or sorted({c.identity for c in train_clips})
    encoder = get_encoder(encoder_name)
    return (FeatureDataset(train_clips, encoder, names, progress=progress),
            FeatureDataset(val_clips, encoder, names, progress=progress),
            names, data_fingerprint(train_clips))


def corpus_identity_labels(data: str, names: list[str]) -> dict[str, str]:
    """Readable labels ("flite awb · calm, wide jaw") of a synthetic corpus's identities; {} for
    data without them (BEAT, Live Link Face takes, older corpora)."""
    meta = Path(data) / "meta.json"
    if not meta.is_file():
        return {}
    params = json.loads(meta.read_text()).get("identity_params", {})
    return {name: params[name]["label"] for name in names if "label" in params.get(name, {})}


def add_common_args(p: argparse.ArgumentParser, with_out: bool = True) -> None:
    p.add_argument("--data", required=True, help="corpus / BEAT / Live Link Face folder")
    if with_out:
        p.add_argument("--out", required=True, help="checkpoint folder (resumed if it holds a training state)")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--crop-frames", type=int, default=TrainConfig.crop_frames)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    for name, value in L.LossWeights().as_dict().items():
        p.add_argument(f"--w-{name}", type=float, default=value, help=f"weight of L_{name}")
    p.add_argument("--snapshot-minutes", type=float, default=None,
                   help="also keep the model every this many minutes in <out>/snapshots/ (select on real speech)")
    p.add_argument("--feature-noise", type=float, default=TrainConfig.feature_noise,
                   help="Gaussian noise on the encoder features during training, x their std")
    p.add_argument("--time-mask", type=float, default=TrainConfig.time_mask,
                   help="share of frames whose encoder features are masked during training")
    p.add_argument("--snr-max", type=float, default=TrainConfig.snr_max,
                   help="weigh each row's data terms by clamp(SNR, 1, this); 0: uniform")
    p.add_argument("--condition-dropout", type=float, default=TrainConfig.condition_dropout,
                   help="share of rows trained with the emotion dropped (classifier-free guidance)")
    p.add_argument("--closure-emotion-boost", type=float, default=TrainConfig.closure_emotion_boost,
                   help="weigh a row's closure term (L_clo) by 1 + this x its emotion's intensity")
    p.add_argument("--channel-weight", action="append", default=[], metavar="PREFIX=W",
                   help="weigh the channels whose names start with PREFIX (eyeBlink, head, ...) W times in "
                        "L_exp and L_vel; repeatable")


def train_config_from_args(a: argparse.Namespace) -> TrainConfig:
    if a.threads:
        torch.set_num_threads(a.threads)
    weights = L.LossWeights(**{k: getattr(a, f"w_{k}") for k in L.LossWeights().as_dict()})
    return TrainConfig(data=a.data, out=getattr(a, "out", ""), epochs=a.epochs, max_minutes=a.max_minutes, batch_size=a.batch_size,
                       crop_frames=a.crop_frames, lr=a.lr, seed=a.seed, loss_weights=weights, resume=not a.no_resume,
                       feature_noise=a.feature_noise, time_mask=a.time_mask,
                       snapshot_minutes=a.snapshot_minutes, snr_max=a.snr_max,
                       condition_dropout=a.condition_dropout, closure_emotion_boost=a.closure_emotion_boost,
                       channel_weights=parse_channel_weights(a.channel_weight))


def parse_channel_weights(items: list[str]) -> dict[str, float]:
    """["eyeBlink=4", "head=2"] -> {"eyeBlink": 4.0, "head": 2.0}."""
    out = {}
    for item in items:
        prefix, _, value = (part.strip() for part in item.partition("="))
        try:
            weight = float(value)
        except ValueError:
            weight = None
        if not prefix or weight is None:
            raise SystemExit(f"--channel-weight {item!r}: expected PREFIX=WEIGHT, e.g. eyeBlink=4")
        out[prefix] = weight
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description="Train a DiffusionTalker teacher (any number of diffusion steps).")
    add_common_args(p)
    p.add_argument("--steps", type=int, default=256, help="diffusion steps T")
    p.add_argument("--encoder", default="whisper-tiny.en")
    p.add_argument("--hidden", type=int, default=TalkerConfig.hidden)
    p.add_argument("--layers", type=int, default=TalkerConfig.layers)
    p.add_argument("--bidirectional", action="store_true", help="bidirectional GRU (2x cost)")
    p.add_argument("--no-identity", action="store_true", help="ablation: no identity embedding")
    p.add_argument("--performance", action="store_true",
                   help="also generate head motion and read an emotion (needs a corpus with performances, "
                        "core/data/performance.py)")
    p.add_argument("--audio-lookahead", type=int, default=0, help="frames of later audio each frame also sees")
    p.add_argument("--prediction", choices=("v", "x0"), default="v",
                   help="what the network outputs (core/diffusion.py); x0 is the first models' choice")
    p.add_argument("--upper-face-scale", type=float, default=TalkerConfig.upper_face_scale,
                   help="hold the brow*, eye* and head channels this many times larger in model space "
                        "(core/model/network.py; docs/DECISIONS.md \"Jitter in the upper face\")")
    p.add_argument("--without", default="", help="comma-separated corpus augmentations / TTS engines to leave "
                                                 "out of training (ablation), e.g. mp3,opus,piper")
    p.add_argument("--init", default=None, help="start from this checkpoint's weights (same architecture, a "
                                                "second stage with other loss weights; or a causal model "
                                                "widened for --bidirectional, core/training/widen.py)")
    a = p.parse_args(argv)
    cfg = train_config_from_args(a)
    torch.manual_seed(a.seed)
    without = tuple(w for w in a.without.split(",") if w)
    train_set, val_set, names, fingerprint = prepare_data(a.data, a.encoder, without=without)
    if a.performance and not train_set.has_head:
        raise SystemExit(f"--performance: {a.data} has no head motion (make one: python -m core.data.corpus_upgrade)")
    model = DiffusionTalker(TalkerConfig(
        identity_names=names, audio_dim=train_set.feature_dim, encoder=a.encoder, hidden=a.hidden, layers=a.layers,
        bidirectional=a.bidirectional, audio_lookahead=a.audio_lookahead, use_identity=not a.no_identity,
        steps=a.steps, data_fingerprint=fingerprint, prediction=a.prediction,
        head_channels=3 if a.performance else 0, emotions=list(AXES) if a.performance else [],
        upper_face_scale=a.upper_face_scale, extra={"train": {"epochs": a.epochs, "max_minutes": a.max_minutes, "lr": a.lr, "batch_size": a.batch_size,
                         "loss_weights": cfg.loss_weights.as_dict(), "clips": len(train_set),
                         "feature_noise": cfg.feature_noise, "time_mask": cfg.time_mask, "without": list(without),
                         "snr_max": cfg.snr_max, "condition_dropout": cfg.condition_dropout,
                         "closure_emotion_boost": cfg.closure_emotion_boost,
                         "channel_weights": cfg.channel_weights},
               "identity_labels": corpus_identity_labels(a.data, names)}))
    if a.init:
        start = DiffusionTalker.from_pretrained(a.init)
        if start.identity_names != names or start.config.steps != a.steps:
            raise SystemExit(f"--init {a.init}: another library or step count than this run")
        if a.bidirectional and not start.config.bidirectional:
            widen_to_bidirectional(start, model)
        elif a.performance and not start.config.emotions:
            widen_to_performance(start, model)
        else:
            model.load_state_dict(start.state_dict())
        model.config.extra["train"]["init"] = {"from": str(a.init), **start.config.extra.get("train", {})}
    fit(model, teacher_objective, train_set, val_set, cfg)


if __name__ == "__main__":
    main()
