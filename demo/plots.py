"""Plotly figures of the demo: blendshape curves, step (x emotion) x seed comparisons, spread across seeds.

Pure functions from numpy arrays to ``plotly.graph_objects.Figure``; the UI (:mod:`demo.ui`)
only wires them to Gradio, so they can be tested and reused from a notebook. Channels are
grouped as in :data:`core.arkit.GROUPS`; time is in seconds on every x axis.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative, sample_colorscale
from plotly.subplots import make_subplots

from core.arkit import ARKIT_NAMES, GROUPS, LIP_INDICES, UPPER_INDICES
from core.rates import FPS
from demo.formatting import steps_text

DECIMALS = 3                        # curves are in [0, 1]; 3 decimals keep the JSON small
REGION_COLORS = {"upper face (brows, eyes)": "#e4572e",
                 "lips (jaw, mouth)": "#2e86ab",
                 "cheeks, nose, tongue": "#9a9a9a"}
_FONT = dict(size=11)
MAX_OVERLAID = 4                    # channels of a group overlaid per seed: the ones that move most
_TOP_RIGHT_LEGEND = dict(orientation="h", x=1.0, xanchor="right", y=0.995, yanchor="top", yref="container")


def channel_spread(samples: np.ndarray) -> np.ndarray:
    """Per-channel spread across seeds: std over samples, averaged over time. [S, T, 52] -> [52]."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 3 or len(samples) < 2:
        raise ValueError(f"need samples [seeds >= 2, frames, 52], got {samples.shape}")
    return samples.std(axis=0).mean(axis=0)


def region_of(channel: int) -> str:
    """The face region a channel belongs to (the keys of :data:`REGION_COLORS`)."""
    names = list(REGION_COLORS)
    return names[0] if channel in UPPER_INDICES else names[1] if channel in LIP_INDICES else names[2]


def _panel(*names: str) -> tuple[int, ...]:
    return tuple(ARKIT_NAMES.index(n) for n in names)


def _pairs(*stems: str) -> tuple[str, ...]:
    return tuple(f"{stem}{side}" for stem in stems for side in ("Left", "Right"))


# The 52 curves in panels of at most 9 channels that move together (a 45 s clip stays readable).
CURVE_PANELS: dict[str, tuple[int, ...]] = {
    "jaw": _panel("jawOpen", "jawForward", "jawLeft", "jawRight"),
    "lips: open, close, press, roll": _panel("mouthClose", *_pairs("mouthPress", "mouthLowerDown", "mouthUpperUp"),
                                             "mouthRollLower", "mouthRollUpper"),
    "lips: smile, frown, stretch, dimple": _panel(*_pairs("mouthSmile", "mouthFrown", "mouthStretch", "mouthDimple")),
    "lips: pucker, funnel, shrug, sideways": _panel("mouthPucker", "mouthFunnel", "mouthShrugLower",
                                                    "mouthShrugUpper", "mouthLeft", "mouthRight"),
    "eyes: blink, squint, wide": _panel(*_pairs("eyeBlink", "eyeSquint", "eyeWide")),
    "eyes: gaze": _panel(*_pairs("eyeLookUp", "eyeLookDown", "eyeLookIn", "eyeLookOut")),
    "brows": GROUPS["brows"],
    "cheeks, nose, tongue": GROUPS["cheeks/nose/tongue"],
}
_PANEL_HEIGHT, _LEGEND_BAND = 150, 105     # pixels per panel, and above it for its title and legend
_PREFIXES = ("mouth", "jaw", "eye", "brow", "cheek", "nose")


def short_name(name: str) -> str:
    """A legend entry within its panel: ``mouthPressLeft`` -> ``Press L`` (hover shows the full name)."""
    for prefix in _PREFIXES:
        if name.startswith(prefix) and name != prefix:
            name = name[len(prefix):]
            break
    for side, letter in (("Left", " L"), ("Right", " R")):
        if name.endswith(side) and name != side:
            return name[: -len(side)] + letter
    return name


def curves_figure(curves: np.ndarray, fps: float = FPS, title: str | None = None) -> go.Figure:
    """All 52 curves in panels of channels that move together (:data:`CURVE_PANELS`).

    Each panel has its own legend above it, in a row that wraps on a narrow screen, with its
    title as the legend's title; within a panel every channel has its own colour, and
    ``...Right`` channels are dotted beside their solid ``...Left`` twin. ``curves``: [T, 52]
    or [K, T, 52]: sample 1 solid, further samples (other seeds) faint in the same colour
    and legend group, so one legend click toggles a channel across samples.
    """
    samples = _as_samples(curves)
    time = _time_axis(samples.shape[1], fps)
    panels = list(CURVE_PANELS.items())
    top, bottom = 70, 40
    height = top + bottom + len(panels) * (_PANEL_HEIGHT + _LEGEND_BAND)
    gap = _LEGEND_BAND / (height - top - bottom)
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=gap)
    for row, (panel, indices) in enumerate(panels, start=1):
        legend = "legend" if row == 1 else f"legend{row}"
        stems = list(dict.fromkeys(ARKIT_NAMES[c].removesuffix("Left").removesuffix("Right") for c in indices))
        colors = dict(zip(stems, _distinct_colors(len(stems))))
        for channel in indices:
            name = ARKIT_NAMES[channel]
            color = colors[name.removesuffix("Left").removesuffix("Right")]
            dash = "dot" if name.endswith("Right") else "solid"
            for k, sample in enumerate(samples):
                fig.add_trace(go.Scatter(
                    x=time, y=np.round(sample[:, channel], DECIMALS), name=short_name(name), legend=legend,
                    legendgroup=name, showlegend=k == 0, mode="lines", meta=name,
                    line=dict(color=color, dash=dash, width=1.6 if k == 0 else 1.0),
                    opacity=1.0 if k == 0 else 0.35,
                    hovertemplate=f"{name}{f' (sample {k + 1})' if k else ''}: %{{y:.2f}} at %{{x:.2f}} s"
                                  "<extra></extra>"), row=row, col=1)
        fig.update_yaxes(range=[-0.02, 1.02], nticks=3, row=row, col=1)
        domain_top = fig.layout["yaxis" if row == 1 else f"yaxis{row}"].domain[1]
        fig.update_layout({legend: dict(title=dict(text=f"<b>{panel}</b>", side="top", font=dict(size=12)),
                                        orientation="h", x=0, xanchor="left", y=domain_top + 0.002,
                                        yanchor="bottom", font=dict(size=10), itemclick="toggle",
                                        itemdoubleclick="toggleothers")})
    fig.update_xaxes(title_text="time (s)", row=len(panels), col=1)
    subtitle = f" · faint: samples 2-{len(samples)}" if len(samples) > 1 else ""
    fig.update_layout(title=dict(text=(title or "ARKit blendshape curves") + subtitle, font=dict(size=14),
                                 y=0.995, yref="container", yanchor="top"),
                      height=height, margin=dict(l=40, r=15, t=top, b=bottom), font=_FONT,
                      hovermode="closest", template="plotly_white")
    return fig


def row_title(row: int | str) -> str:
    """A comparison row's title: a step count ("8 steps") or a title made for it ("8 steps, happy 1.0")."""
    return steps_text(row) if isinstance(row, int) else str(row)


def compare_figure(runs: Mapping[tuple[int | str, int], np.ndarray], channels: Sequence[int] | str,
                   fps: float = FPS) -> go.Figure:
    """Curves of some channels for every (row, seed) run: one row per step count (or step count and
    emotion), one colour per seed.

    ``runs``: ``{(row, seed): curves [T, 52]}``, rows in the order given (a step count or a
    title, :func:`row_title`); ``channels``: indices, a group name of
    :data:`core.arkit.GROUPS` or one ARKit channel name. Legend entries toggle a seed. Of a
    group, only the :data:`MAX_OVERLAID` channels that move most (std over time, all runs) are
    drawn: 24 lip channels per seed was a tangle no one could read.
    """
    if not runs:
        return message_figure("Nothing to compare yet.")
    label, indices = resolve_channels(channels)
    if len(indices) > MAX_OVERLAID:
        motion = np.stack([np.asarray(c)[:, indices].std(axis=0) for c in runs.values()]).mean(axis=0)
        indices = sorted(indices[k] for k in np.argsort(-motion, kind="stable")[:MAX_OVERLAID])
        label = f"{label} (the {MAX_OVERLAID} channels that move most: {', '.join(ARKIT_NAMES[c] for c in indices)})"
    rows = list(dict.fromkeys(row for row, _ in runs))
    seeds = sorted({seed for _, seed in runs})
    colors = dict(zip(seeds, qualitative.D3 * (len(seeds) // len(qualitative.D3) + 1)))
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[row_title(r) for r in rows])
    for row, key in enumerate(rows, start=1):
        for seed in seeds:
            curves = runs.get((key, seed))
            if curves is None:
                continue
            time = _time_axis(len(curves), fps)
            for j, channel in enumerate(indices):
                name = ARKIT_NAMES[channel]
                fig.add_trace(go.Scatter(
                    x=time, y=np.round(curves[:, channel], DECIMALS), mode="lines", name=f"seed {seed}",
                    legendgroup=f"seed {seed}", showlegend=row == 1 and j == 0,
                    line=dict(color=colors[seed], width=1.3), opacity=0.8,
                    hovertemplate=f"{name}, {row_title(key)}, seed {seed}: %{{y:.2f}} at %{{x:.2f}} s<extra></extra>"),
                    row=row, col=1)
        fig.update_yaxes(range=[-0.02, 1.02], row=row, col=1)
    fig.update_xaxes(title_text="time (s)", row=len(rows), col=1)
    fig.update_layout(title=dict(text=f"{label}: one colour per seed", font=dict(size=14)),
                      height=170 + 230 * len(rows), margin=dict(l=50, r=20, t=70, b=40), font=_FONT,
                      hovermode="closest", template="plotly_white",
                      legend=_TOP_RIGHT_LEGEND)
    return fig


def spread_figure(spreads: Mapping[int | str, np.ndarray]) -> go.Figure:
    """Per-channel spread across seeds (see :func:`channel_spread`), one row per step count (or
    comparison row, :func:`row_title`), in the order given.

    Bars are coloured by face region; each row's title gives the mean spread of the upper
    face and of the lips, the contrast the paper's diversity claim rests on.
    """
    if not spreads:
        return message_figure("Pick at least two seeds to see how much the seeds differ.")
    rows = list(spreads)
    titles = []
    for key in rows:
        spread = np.asarray(spreads[key])
        titles.append(f"{row_title(key)}: mean spread upper face {spread[list(UPPER_INDICES)].mean():.4f}, "
                      f"lips {spread[list(LIP_INDICES)].mean():.4f}")
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=titles)
    regions = [region_of(c) for c in range(len(ARKIT_NAMES))]
    for row, key in enumerate(rows, start=1):
        spread = np.asarray(spreads[key], dtype=np.float64)
        for region, color in REGION_COLORS.items():
            channels = [c for c, r in enumerate(regions) if r == region]
            fig.add_trace(go.Bar(
                x=[ARKIT_NAMES[c] for c in channels], y=np.round(spread[channels], 5), name=region,
                legendgroup=region, showlegend=row == 1, marker_color=color,
                hovertemplate="%{x}: %{y:.4f}<extra>" + f"{row_title(key)}</extra>"), row=row, col=1)
    # One y scale for every row: the rows are compared with each other (1 step vs 32 steps).
    peak = max(float(np.max(spreads[s])) for s in rows) * 1.05 or 1.0
    fig.update_yaxes(title_text="std across seeds", range=[0, peak])
    fig.update_xaxes(categoryorder="array", categoryarray=list(ARKIT_NAMES), tickangle=-60, tickfont=dict(size=9))
    fig.update_layout(title=dict(text="Spread across seeds per channel (std over seeds, mean over time)",
                                 font=dict(size=14)),
                      height=200 + 260 * len(rows), margin=dict(l=60, r=20, t=80, b=110), font=_FONT,
                      barmode="group", bargap=0.15, template="plotly_white",
                      legend=_TOP_RIGHT_LEGEND)
    return fig


def message_figure(text: str) -> go.Figure:
    """An empty figure that says ``text`` (used where a plot has nothing to show)."""
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font=dict(size=14))
    fig.update_layout(height=160, xaxis=dict(visible=False), yaxis=dict(visible=False), template="plotly_white",
                      margin=dict(l=20, r=20, t=20, b=20))
    return fig


def resolve_channels(channels: Sequence[int] | str) -> tuple[str, list[int]]:
    """(label, channel indices) for a group name, one ARKit name, or a list of indices."""
    if isinstance(channels, str):
        if channels in GROUPS:
            return channels, list(GROUPS[channels])
        if channels in ARKIT_NAMES:
            return channels, [ARKIT_NAMES.index(channels)]
        raise ValueError(f"unknown channel or group {channels!r}; use one of {', '.join(GROUPS)} or an ARKit name")
    indices = [int(c) for c in channels]
    if not indices or not all(0 <= c < len(ARKIT_NAMES) for c in indices):
        raise ValueError(f"channel indices must be within 0..{len(ARKIT_NAMES) - 1}, got {indices}")
    return ", ".join(ARKIT_NAMES[c] for c in indices[:3]) + (" ..." if len(indices) > 3 else ""), indices


def _as_samples(curves: np.ndarray) -> np.ndarray:
    curves = np.asarray(curves, dtype=np.float32)
    if curves.ndim == 2:
        curves = curves[None]
    if curves.ndim != 3 or curves.shape[-1] != len(ARKIT_NAMES) or curves.shape[1] == 0:
        raise ValueError(f"curves must be [T, 52] or [K, T, 52], got {curves.shape}")
    return curves


def _time_axis(frames: int, fps: float) -> np.ndarray:
    return np.round(np.arange(frames) / fps, 4)


def _distinct_colors(n: int) -> list[str]:
    """``n`` distinguishable colours: D3's ten, else Dark24 then Light24 (48 in all)."""
    palette = qualitative.D3 if n <= len(qualitative.D3) else qualitative.Dark24 + qualitative.Light24
    return list(palette[:n]) if n <= len(palette) else sample_colorscale("Turbo", list(np.linspace(0, 1, n)))
