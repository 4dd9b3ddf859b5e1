"""Per-channel monotone value maps: a model's frame values given the data's distribution
(quantile mapping), fitted per model and kept in its config (``extra["value_maps"]``).

Why: the distilled students sample deterministically (DDIM), and a deterministic sampler with an
imperfect denoiser shrinks what is rare and sharp. Measured on validation clips (docs/DECISIONS.md
"Blink depth"): teacher-256 closes 69 % of its blinks fully (peak >= 0.8) with its ancestral
sampler and 48 % with DDIM from the same weights; distilled-128 46 %, distilled-8 35 %, and an
ancestral sampler on a student does not bring it back (31 %). A monotone map per channel, fitted
on validation clips that no decision uses (the model's samples against the generator's truth draws
of the same clips; ``python -m experiments.evaluate value-maps``), gives the values back their
range without moving anything in time.

An *anchored* map keeps every value below its anchor as it is and maps the values above it onto
the data's values above it. The eyelids' maps are anchored at the blink level (0.5) and fitted on
blink peaks (the model's peaks onto the data's, ``python -m experiments.evaluate value-maps``):
each lid's crossings of 0.5 stay where they were, so blinks keep their times and nearly their
count, and a blink takes a depth the data's blinks have. Fitted on frame values instead, a
shallow blink's top lands on the data's flanks (72 % full blinks on val against 97 %). Below the
anchor the lids' frame values are mapped onto the data's frame values below it: between blinks a
student's lids wander by a few hundredths from seed to seed where the data's lie still (docs/DECISIONS.md
"Open eyes that lie still"), and that noise counted as the seed's spread. The maps
are pointwise and stateless, so a stream gets exactly what one call over the clip gives (Live
equals Generate). Only the eyelids are mapped: maps of the brows and the gaze were tried on the
same clips and amplified their frame-to-frame jitter (roughness 1.1 -> 1.6x and 1.4 -> 2.5x the
data's).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.arkit import INDEX
from core.model.diffusion import TEMPERATURE_KEY

# Which channels are mapped, and the anchor of each (None: the whole range), chosen on validation
# clips (docs/DECISIONS.md "Blink depth").
MAPPED: dict[str, float | None] = {"eyeBlinkLeft": 0.5, "eyeBlinkRight": 0.5}
# Quantile levels of a fit: fine at the top, where the deepest blinks lie.
LEVELS = np.concatenate([np.linspace(0.0, 0.9, 31), np.linspace(0.9, 1.0, 71)[1:]])
MIN_STEP = 1e-6          # knots closer than this on the model's side are merged (np.interp needs increasing x)
# What a fit writes into a model config's ``extra``: the model's own, never passed to a student
# (with the noise temperature it samples with, core.model.diffusion.noise_temperature).
FITTED_KEYS = ("value_maps", "head_gain", "value_maps_fit", TEMPERATURE_KEY)


@dataclass(frozen=True)
class ValueMap:
    """y = f(x) for one ARKit channel: piecewise linear through the knots, flat beyond them."""
    channel: str
    x: tuple[float, ...]
    y: tuple[float, ...]

    def __post_init__(self):
        if self.channel not in INDEX:
            raise ValueError(f"unknown ARKit channel {self.channel!r}")
        x, y = np.asarray(self.x), np.asarray(self.y)
        if len(x) < 2 or len(x) != len(y) or np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise ValueError(f"the map of {self.channel} needs >= 2 knots, x increasing and y not decreasing")

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return np.interp(values, self.x, self.y).astype(np.float32)

    def as_dict(self) -> dict:
        return {"channel": self.channel, "x": [round(v, 6) for v in self.x], "y": [round(v, 6) for v in self.y]}

    @classmethod
    def from_dict(cls, d: dict) -> "ValueMap":
        return cls(d["channel"], tuple(float(v) for v in d["x"]), tuple(float(v) for v in d["y"]))


def _quantile_knots(model_values: np.ndarray, truth_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots (x, y) of the quantile map taking one set of values onto the other (y not decreasing)."""
    return np.quantile(model_values, LEVELS), np.maximum.accumulate(np.quantile(truth_values, LEVELS))


def fit(channel: str, model_values: np.ndarray, truth_values: np.ndarray, anchor: float | None = None,
        below: tuple[np.ndarray, np.ndarray] | None = None) -> ValueMap:
    """The quantile map taking ``model_values`` onto ``truth_values`` (values of one channel, e.g.
    its frames or its blink peaks, any shape); with ``anchor``, only the values at or above it are
    mapped (each side's values >= anchor onto the other's) and ``anchor`` maps to itself. Below
    the anchor values stay as they are, or, given ``below`` = (the model's values, the truth's),
    e.g. every frame of each, are mapped from the model's values under the anchor onto the
    truth's under it."""
    m, t = np.asarray(model_values, np.float64).ravel(), np.asarray(truth_values, np.float64).ravel()
    if anchor is None:
        if m.size < 2 or t.size < 2:        # nothing to fit: leave it alone
            return _identity(channel)
        return _valid_map(channel, *_quantile_knots(m, t))
    m, t = m[m >= anchor], t[t >= anchor]
    if m.size >= 2 and t.size >= 2:
        x, y = _quantile_knots(m, t)
        x[0] = y[0] = anchor
    else:                               # no blink above the anchor to fit: the identity above it
        x, y = np.array([anchor, anchor + 1.0]), np.array([anchor, anchor + 1.0])
    low = min(-1.0, anchor - 1.0)
    under_x, under_y = np.array([low]), np.array([low])          # below the anchor: the identity
    if below is not None:
        mb, tb = (np.asarray(v, np.float64).ravel() for v in below)
        mb, tb = mb[mb < anchor], tb[tb < anchor]
        if mb.size >= 2 and tb.size >= 2:
            under_x, under_y = _quantile_knots(mb, tb)
    return _valid_map(channel, np.concatenate([under_x, x]), np.concatenate([under_y, y]))


def _valid_map(channel: str, x: np.ndarray, y: np.ndarray) -> ValueMap:
    """The map through knots (x, y), knots closer than :data:`MIN_STEP` on x merged."""
    keep = np.concatenate([[True], np.diff(x) > MIN_STEP])
    x, y = x[keep], y[keep]
    if len(x) < 2:
        return _identity(channel)
    return ValueMap(channel, tuple(map(float, x)), tuple(map(float, y)))


def _identity(channel: str) -> ValueMap:
    return ValueMap(channel, (0.0, 1.0), (0.0, 1.0))


def from_config(extra: dict) -> tuple[ValueMap, ...]:
    """The maps kept in a model config's ``extra`` (none: the model's values as they come)."""
    return tuple(ValueMap.from_dict(d) for d in extra.get("value_maps", ()))


def apply(curves: np.ndarray, maps: tuple[ValueMap, ...]) -> np.ndarray:
    """``curves`` [..., 52] with each map applied to its channel (in place; also returned)."""
    for value_map in maps:
        c = INDEX[value_map.channel]
        curves[..., c] = value_map(curves[..., c])
    return curves
