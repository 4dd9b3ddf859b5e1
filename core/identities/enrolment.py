"""Enrolment: grow the identity library of trained models with a new talking identity.

The paper's library "can be continuously enriched and expanded by fine-tuning": with the
whole network frozen, only one new 32-d identity embedding is learned from a few recordings
(wav + Live Link Face CSV) of the new person, with the diffusion losses (so its style drives
the decoder) and the contrast loss (so the person's voice is matched to it).  The embedding is
stored in the library beside each checkpoint (:mod:`core.identities.store`), which
``DiffusionTalker.from_pretrained`` reads, so the app and the CLIs list it at once.

:func:`enroll_pairs` is what ``python -m core enroll`` and the demo's *Enroll* tab both call:
(speech, Live Link Face CSV) pairs -> clips -> the new identity in every shipped model, all
or nothing; :func:`remove_identity` takes one out of every model again.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from core.model import losses as L
from core.data.clip import TalkingClip
from core.data.dataset import FeatureDataset
from core.identities.store import (LIBRARY_NAME, LibraryError, attach_library, check_name, commit, identities_root,
                                   library_for, library_names, read_library, repair, without)
from core.model.network import CONFIG_NAME, DiffusionTalker, model_targets

log = logging.getLogger(__name__)

# Training's weights, but a contrast weight of 0.1 instead of 0.007: only one vector learns, and it
# must be findable from the voice.
ENROL_LOSS_WEIGHTS = dataclasses.replace(L.LossWeights(), con=0.1)
MIN_TAKE_FRAMES = 60          # shortest take (chunk) used for enrolment: 2 s at 30 fps
WARM_START_SHARE = 6          # models after the first adjust the first one's embedding in iterations // 6
MIN_WARM_ITERATIONS = 10


def fit_embedding(model: DiffusionTalker, clips: list[TalkingClip], encoder, iterations: int = 150,
                  lr: float = 0.05, crop_frames: int = 120, seed: int = 0, init: torch.Tensor | None = None,
                  step: Callable[[int], None] | None = None) -> torch.Tensor:
    """Learn one identity embedding [identity_dim] for ``clips`` with ``model`` frozen.

    It starts from ``init`` (e.g. the embedding another model of the chain learned) or the
    library's mean; ``step(i)`` is called after iteration i."""
    if not clips:
        raise ValueError("enrolment needs at least one recording with its animation")
    model.eval().requires_grad_(False)
    data = FeatureDataset(clips, encoder, model.identity_names + ["__new__"], progress=False)
    start = init[None] if init is not None else model.identity_embedding.weight.mean(0, keepdim=True)
    new = torch.nn.Parameter(start.detach().clone().float())
    optimizer = torch.optim.Adam([new], lr=lr)
    gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    new_index = len(model.identity_names)
    for i in range(iterations):
        idx = rng.integers(0, len(data), size=min(8, 2 * len(data)))
        audio, curves, mask, ident, _ = data.batch(idx, crop_frames, rng)
        table = torch.cat([model.identity_embedding.weight, new], 0)
        x0 = model_targets(model, curves)
        t, x_t = model.schedule.training_input(x0, gen)
        x0_hat = model.denoise(x_t, t, model.condition(audio, ident, table))
        logits = model.identity_logits(audio, mask, table)
        known = curves.shape[-1]           # takes without head motion teach the face alone
        terms = L.diffusion_terms(x0_hat[..., :known], x0[..., :known], mask, logits,
                                  torch.full_like(ident, new_index))
        loss = L.total_loss(ENROL_LOSS_WEIGHTS, terms)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:
            step(i + 1)
    return new.detach()[0]


def enrolled(folder: Path, name: str, clips: list[TalkingClip], encoder, iterations: int,
             init: torch.Tensor | None = None, step: Callable[[int], None] | None = None,
             ) -> tuple[list[str], torch.Tensor]:
    """``folder``'s library with ``name`` learned into it (nothing written yet); its last row is
    the new embedding."""
    model = DiffusionTalker.from_pretrained(folder)
    problem = attach_library(model, folder)
    if problem:
        raise LibraryError(problem)
    if name in model.identity_names:
        raise ValueError(f"identity {name!r} is already in the library of {folder.name}")
    embedding = fit_embedding(model, clips, encoder, iterations, init=init, step=step)
    path = library_for(folder)
    names, table = read_library(path, model.config.identity_dim) if path.is_file() else \
        ([], torch.zeros(0, embedding.numel()))
    return names + [name], torch.cat([table, embedding[None]], 0)


def enroll(checkpoint_dir, name: str, clips: list[TalkingClip], encoder=None, iterations: int = 150) -> list[str]:
    """Enrol ``name`` into one checkpoint folder's library; returns the model's identities."""
    from core.audio.encoders import get_encoder
    folder, name = Path(checkpoint_dir), check_name(name)
    encoder = encoder or get_encoder(json.loads((folder / CONFIG_NAME).read_text())["encoder"])
    library = enrolled(folder, name, clips, encoder, iterations)
    commit(identities_root(), {library_for(folder): library})
    return _trained_names(folder) + library[0]


def shipped_folders(checkpoints_root) -> list[Path]:
    """The checkpoint folders an enrolment goes into, each checked against the manifest, after
    any library change a crash interrupted has been finished or undone (:func:`repair_libraries`).

    ``checkpoints_root`` is a folder with ``manifest.json`` (its 'shipped' models) or one
    checkpoint folder.
    """
    from core.model.manifest import is_checkpoint_folder, model_entries, verify
    root = Path(checkpoints_root)
    if not is_checkpoint_folder(root):
        for entry in model_entries(root, "shipped"):
            verify(root, entry)
    return repair_libraries(root)


def repair_libraries(checkpoints_root) -> list[Path]:
    """Finish or undo an interrupted library change and make the shipped models' libraries
    agree (:func:`core.identities.store.repair`, which logs what it did); returns the shipped folders.

    A library that an older version kept beside its checkpoint is moved to the data folder
    first (user data does not belong in ``checkpoints/``)."""
    from core.model.manifest import entry_folder, model_entries
    root = Path(checkpoints_root)
    folders = [entry_folder(root, entry) for entry in model_entries(root, "shipped")]
    for folder in folders:
        old, new = folder / LIBRARY_NAME, library_for(folder)
        if old.is_file() and not new.exists():
            new.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(old), str(new))
            log.warning("moved the enrolled identities of %s from %s to %s", folder.name, old, new)
    repair(identities_root(), [library_for(f) for f in folders], _trained_names(folders[0]))
    return folders


def load_pairs(name: str, pairs: Sequence[tuple], min_frames: int = MIN_TAKE_FRAMES) -> list[TalkingClip]:
    """Clips of ``name`` from (speech file, Live Link Face CSV) pairs; a take too short is an error."""
    from core.data.livelink import load_livelink_take
    if not pairs:
        raise ValueError("enrolment needs at least one recording (speech file + Live Link Face CSV)")
    clips = []
    for audio, csv in pairs:
        audio, csv = Path(audio), Path(csv)
        if csv.suffix.lower() != ".csv":
            raise ValueError(f"{csv.name} should be the Live Link Face CSV recorded with {audio.name}")
        take = load_livelink_take(csv, audio, name, min_frames=min_frames)
        if not take:
            raise ValueError(f"the take {csv.name} is too short: enrolment needs takes of at least "
                             f"{min_frames / 30:g} s ({min_frames} frames at 30 fps)")
        clips += take
    return clips


def enroll_pairs(checkpoints_root, name: str, pairs: Sequence[tuple], iterations: int = 150,
                 min_frames: int = MIN_TAKE_FRAMES, encoder=None,
                 progress: Callable[[float, str], None] | None = None, warm_start: bool = True) -> list[str]:
    """Enrol ``name`` from (speech, CSV) ``pairs`` into every shipped model; returns the new library.

    Everything is checked (name, files, takes, checksums, that no library already holds the
    name) before any model learns, and the libraries are written together at the end
    (:func:`core.identities.store.commit`), so a bad request, an error or a crash changes nothing.
    With ``warm_start`` the first model learns the embedding in ``iterations`` steps and every
    other model of the chain (distilled from it, so its identity space is nearly the same)
    starts from that embedding and adjusts it in ``iterations // WARM_START_SHARE``.
    ``progress(fraction done, line)`` hears of every tenth iteration, with the time left.
    """
    from core.audio.encoders import get_encoder
    name = check_name(name)
    if not 1 <= int(iterations) <= 10_000:
        raise ValueError(f"iterations must be between 1 and 10000, not {iterations}")
    folders = shipped_folders(checkpoints_root)
    for folder in folders:
        if name in _trained_names(folder) + library_names(folder):
            raise ValueError(f"identity {name!r} is already in the library of {folder.name}")
    clips = load_pairs(name, pairs, min_frames)
    encoder = encoder or get_encoder(json.loads((folders[0] / CONFIG_NAME).read_text())["encoder"])
    plan = [int(iterations)] + [max(MIN_WARM_ITERATIONS, int(iterations) // WARM_START_SHARE) if warm_start
                                else int(iterations)] * (len(folders) - 1)
    libraries, first, began = {}, None, time.perf_counter()
    for k, (folder, steps) in enumerate(zip(folders, plan)):
        def step(i, k=k, folder=folder, steps=steps):
            done = sum(plan[:k]) + i
            if progress and (i % 10 == 0 or i == steps):
                left = (time.perf_counter() - began) / done * (sum(plan) - done)
                progress(done / sum(plan), f"enrolling {name!r}: {folder.name} ({k + 1} of {len(folders)}), "
                                           f"iteration {i} of {steps}, about {left:.0f} s left")
        libraries[library_for(folder)] = enrolled(folder, name, clips, encoder, steps,
                                                  init=first if warm_start else None, step=step)
        if first is None:
            first = libraries[library_for(folder)][1][-1]
    commit(identities_root(), libraries)
    return _trained_names(folders[0]) + libraries[library_for(folders[0])][0]


def remove_identity(checkpoints_root, name: str) -> list[str]:
    """Take the enrolled identity ``name`` out of every shipped model (all or nothing); returns
    the identities left. Trained identities are part of the weights and cannot be removed."""
    folders = shipped_folders(checkpoints_root)
    if name in _trained_names(folders[0]):
        raise ValueError(f"{name!r} was trained into the models, not enrolled; it cannot be removed")
    libraries = {library_for(folder): without(library_for(folder), name) for folder in folders}
    commit(identities_root(), libraries)
    return _trained_names(folders[0]) + libraries[library_for(folders[0])][0]


def _trained_names(folder: Path) -> list[str]:
    """Identity names trained into a checkpoint (its config), without building the model."""
    return list(json.loads((Path(folder) / CONFIG_NAME).read_text()).get("identity_names", []))
