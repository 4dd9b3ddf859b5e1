"""What one request produced, without Gradio: a Generate take and a Compare comparison.

Plain data that :mod:`demo.service` makes and :mod:`demo.formatting`, :mod:`demo.viewer` and
:mod:`demo.ui` read; this module imports none of them, so none of them imports another through it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from demo.avatars import Avatar
from demo.plots import channel_spread

if TYPE_CHECKING:  # torch is imported only when a checkpoint is actually loaded
    from core.inference.talker import Generation


@dataclass
class Take:
    """One Generate request: the curves and what the outputs are made from."""
    generation: "Generation"
    wave: np.ndarray                     # 16 kHz mono, what the curves were made from (the viewer plays it)
    name: str                            # file-name stem of the downloads
    folder: Path                         # this request's files
    timings: dict[str, float]            # seconds per stage, in display order
    device: str = "cpu"                  # where the model ran
    notes: list[str] = field(default_factory=list)  # non-fatal problems to show as warnings
    avatar: Avatar | None = None         # the head for the viewer, the video and the GLB (None: default)

    @property
    def model_seconds(self) -> float:
        return sum(self.timings.get(k, 0.0) for k in ("decode", "encoder", "match", "sampling"))


@dataclass
class Comparison:
    """One Compare request: curves for every (steps, seed) cell."""
    runs: dict[tuple[int, int], np.ndarray]   # (steps, seed) -> curves [T, 52]
    steps: list[int]
    seeds: list[int]
    identity: str
    wave: np.ndarray                          # 16 kHz mono, what the curves were made from
    name: str
    folder: Path
    seconds: float                            # encoder + sampling of every cell
    warning: str | None = None                # e.g. "This does not sound like speech ..."
    avatar: Avatar | None = None              # the head for the viewers and the video (None: default)
    heads: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)   # (steps, seed) -> head [T, 3] radians

    @property
    def cells(self) -> list[tuple[int, int]]:
        """(steps, seed) row by row: a row per step count, a column per seed."""
        return [(steps, seed) for steps in self.steps for seed in self.seeds]

    def spreads(self) -> dict[int, np.ndarray]:
        """Per-channel spread across seeds for each step count (empty with fewer than 2 seeds)."""
        if len(self.seeds) < 2:
            return {}
        return {s: channel_spread(np.stack([self.runs[(s, seed)] for seed in self.seeds])) for s in self.steps}
