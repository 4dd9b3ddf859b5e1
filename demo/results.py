"""What one request asks and produces, without Gradio: a Generate request and take, a Compare comparison.

Plain data that :mod:`demo.service` makes and :mod:`demo.formatting`, :mod:`demo.viewer` and
:mod:`demo.ui` read; this module imports none of them, so none of them imports another through it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.emotion import NEUTRAL
from core.inference.controls import Controls
from demo.avatars import Avatar
from demo.plots import channel_spread

if TYPE_CHECKING:  # torch is imported only when a checkpoint is actually loaded
    from core.inference.talker import Generation


@dataclass(frozen=True)
class Request:
    """One Generate request, checked and decoded: what the model runs on."""
    wave: np.ndarray                     # 16 kHz mono
    steps: int
    seed: int
    num_samples: int
    identity: str | None                 # None: matched from the voice
    controls: Controls
    name: str                            # file-name stem of the downloads
    decode_seconds: float                # the checks and the decode


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


Cell = tuple[int, str, int]                   # (steps, emotion, seed) of a comparison


@dataclass
class Comparison:
    """One Compare request: curves for every (steps, emotion, seed) cell; the other controls
    (intensity, strengths, head switch) are shared by every cell."""
    runs: dict[Cell, np.ndarray]              # (steps, emotion, seed) -> curves [T, 52]
    steps: list[int]
    seeds: list[int]
    identity: str
    wave: np.ndarray                          # 16 kHz mono, what the curves were made from
    name: str
    folder: Path
    seconds: float                            # encoder + sampling of every cell
    warning: str | None = None                # e.g. "This does not sound like speech ..."
    avatar: Avatar | None = None              # the head for the viewers and the video (None: default)
    emotions: list[str] = field(default_factory=lambda: [NEUTRAL])
    controls: Controls = field(default_factory=Controls)   # what every cell shares; its emotion is the first's
    heads: dict[Cell, np.ndarray] = field(default_factory=dict)   # the same cells -> head [T, 3] radians

    @property
    def rows(self) -> list[tuple[int, str]]:
        """(steps, emotion): a row per step count and emotion."""
        return [(steps, emotion) for steps in self.steps for emotion in self.emotions]

    @property
    def cells(self) -> list[Cell]:
        """(steps, emotion, seed) row by row: a row per step count and emotion, a column per seed."""
        return [(steps, emotion, seed) for steps, emotion in self.rows for seed in self.seeds]

    def controls_of(self, emotion: str) -> Controls:
        return dataclasses.replace(self.controls, emotion=emotion)

    def spreads(self) -> dict[tuple[int, str], np.ndarray]:
        """Per-channel spread across seeds for each row (empty with fewer than 2 seeds)."""
        if len(self.seeds) < 2:
            return {}
        return {(s, e): channel_spread(np.stack([self.runs[(s, e, seed)] for seed in self.seeds])) for s, e in self.rows}
