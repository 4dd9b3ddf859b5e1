"""A training run's folder between epochs: weights, optimizer state, log and snapshots.

``<out>/model.safetensors`` + ``config.json`` (the model, :meth:`DiffusionTalker.save_pretrained`),
``training_state.safetensors`` + ``.json`` (the optimizer's tensors and scalars, the epoch and the
log: safetensors and JSON, no pickle anywhere), ``log.jsonl`` (a line per epoch) and
``snapshots/epoch-NNNN`` (models kept along the way, to select on validation data). A run stopped
at any point goes on from its last epoch (:func:`resume`).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from core.model.network import DiffusionTalker

STATE_WEIGHTS = "training_state.safetensors"
STATE_JSON = "training_state.json"
LOG_NAME = "log.jsonl"
SNAPSHOTS = "snapshots"   # <out>/snapshots/epoch-NNNN: models kept along the way, to select on real speech


def save_state(out: Path, optimizer: torch.optim.Optimizer, info: dict) -> None:
    """The optimizer's state and ``info`` (epoch, log, config), each file replaced whole."""
    from safetensors.torch import save_file
    tensors, meta = {}, {}
    for pid, st in optimizer.state_dict()["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{pid}.{key}"] = val.detach().cpu().contiguous()
            else:
                meta[f"{pid}.{key}"] = val
    save_file(tensors, str(out / (STATE_WEIGHTS + ".tmp")))
    (out / (STATE_WEIGHTS + ".tmp")).replace(out / STATE_WEIGHTS)
    (out / STATE_JSON).write_text(json.dumps({**info, "scalars": meta}, indent=1))


def load_state(out: Path, optimizer: torch.optim.Optimizer) -> dict | None:
    """The ``info`` that :func:`save_state` wrote, the optimizer's state loaded; None: no state."""
    from safetensors.torch import load_file
    if not (out / STATE_JSON).is_file() or not (out / STATE_WEIGHTS).is_file():
        return None
    info = json.loads((out / STATE_JSON).read_text())
    tensors = load_file(str(out / STATE_WEIGHTS))
    sd = optimizer.state_dict()
    state: dict[int, dict] = {}
    for name, val in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = val
    for name, val in info.pop("scalars").items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = val
    sd["state"] = state
    optimizer.load_state_dict(sd)
    return info


def snapshots(out: str | Path) -> list[Path]:
    """The snapshot folders of a training run, oldest first."""
    folder = Path(out) / SNAPSHOTS
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def resume(model: DiffusionTalker, optimizer, out: Path, wanted: bool, epochs: int,
           rank: int = 0) -> tuple[int, list[dict], bool]:
    """(first epoch, log so far, already finished) of the run in ``out`` when it is ``wanted`` and
    there is one (its weights and optimizer state loaded), else (0, [], False). A run counts as
    finished only if it was finished for the same number of ``epochs``."""
    if not wanted or (info := load_state(out, optimizer)) is None:
        return 0, [], False
    model.load_state_dict(DiffusionTalker.from_pretrained(out).state_dict())
    finished = bool(info.get("finished")) and info.get("target_epochs") == epochs
    if rank == 0:
        print(f"{out} is already trained; skipping" if finished else f"resuming {out} at epoch {info['epoch']}")
    return info["epoch"], info["log"], finished


def save_epoch(model: DiffusionTalker, optimizer, out: Path, log: list[dict], config: dict, minutes: float,
               snapshot_minutes: float | None) -> None:
    """After an epoch (the last row of ``log``): the weights, a snapshot every ``snapshot_minutes``
    of training (``minutes`` so far), the optimizer state and the log."""
    row = log[-1]
    print(json.dumps(row), flush=True)
    model.save_pretrained(out)
    if snapshot_minutes and minutes >= snapshot_minutes * (len(snapshots(out)) + 1):
        model.save_pretrained(out / SNAPSHOTS / f"epoch-{row['epoch']:04d}")
    save_state(out, optimizer, {"epoch": row["epoch"], "log": log, "train_config": config})
    with open(out / LOG_NAME, "a") as fh:
        fh.write(json.dumps(row) + "\n")
