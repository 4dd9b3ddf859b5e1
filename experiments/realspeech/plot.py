"""The figure of the check: waveform with phones shaded, and the model's mouth curves."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.evaluation.lipsync import BILABIALS, OPEN_VOWELS
from core.rates import FPS, SAMPLE_RATE

_OPEN_COLOUR, _BILABIAL_COLOUR = "#f4a261", "#2a9d8f"


def plot(rows: list[dict], out: str | Path, title: str = "") -> Path:
    """Waveform with phones shaded, and the model's mouth curves, for each row (1-2 recordings)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = 3.3 * len(rows) + 0.6                      # + room for the legend at the bottom
    fig, axes = plt.subplots(2 * len(rows), 1, figsize=(12, height), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 1.4] * len(rows)})
    for k, row in enumerate(rows):
        wave_ax, curve_ax = axes[2 * k, 0], axes[2 * k + 1, 0]
        audio, seconds = row["audio"], row["seconds"]
        t = np.arange(len(audio)) / SAMPLE_RATE
        step = max(1, len(audio) // 6000)               # decimate: keeps the PNG small
        wave_ax.plot(t[::step], audio[::step], color="0.35", lw=0.5)
        for ax in (wave_ax, curve_ax):
            for phone in row["phones"]:
                colour = (_OPEN_COLOUR if phone.label in OPEN_VOWELS else
                          _BILABIAL_COLOUR if phone.label in BILABIALS else None)
                if colour:
                    ax.axvspan(phone.start, phone.end, color=colour, alpha=0.35, lw=0)
            ax.set_xlim(0, seconds)
        peak = np.abs(audio).max()
        for phone in row["phones"]:
            if phone.label != "pau":
                wave_ax.text((phone.start + phone.end) / 2, 1.02 * peak, phone.label, ha="center",
                             va="bottom", fontsize=6, clip_on=True,
                             weight="bold" if phone.label in OPEN_VOWELS | BILABIALS else "normal")
        rec = row["recording"]
        wave_ax.set_ylim(-1.1 * peak, 1.35 * peak)
        wave_ax.set_yticks([])
        wave_ax.set_xticklabels([])
        wave_ax.set_title(f"{rec.name}: {rec.speaker}, {rec.group}, {rec.split} part; voice matched to {row['identity']}",
                          fontsize=9, loc="left")
        ft = (np.arange(len(row["curves"])) + 0.5) / FPS
        s = row["scores"]
        curve_ax.plot(ft, s["rules: jawOpen"], color="#e76f51", lw=0.9, ls=":")
        curve_ax.plot(ft, s["jawOpen"], color="#e76f51", lw=1.5)
        curve_ax.plot(ft, s["lip aperture"], color="#264653", lw=1.1)
        curve_ax.plot(ft, -s["lips pressed (-)"], color="#2a9d8f", lw=1.1, ls="--")
        loud = s["loudness (no model)"]
        loud = (loud - loud.min()) / max(np.ptp(loud), 1e-9) * max(0.2, float(s["jawOpen"].max()))
        curve_ax.plot(ft, loud, color="0.65", lw=0.7)
        curve_ax.set_ylabel("weight", fontsize=8)
        curve_ax.tick_params(labelsize=7)
        if k == len(rows) - 1:
            curve_ax.set_xlabel("seconds", fontsize=8)
    line = matplotlib.lines.Line2D
    handles = [matplotlib.patches.Patch(color=_OPEN_COLOUR, alpha=0.5, label="open vowel (aa ae ah ao aw ay)"),
               matplotlib.patches.Patch(color=_BILABIAL_COLOUR, alpha=0.5, label="bilabial (p b m)"),
               line([], [], color="#e76f51", lw=1.5, label="jawOpen (model)"),
               line([], [], color="#264653", lw=1.1, label="lip aperture = jawOpen - mouthClose"),
               line([], [], color="#2a9d8f", lw=1.1, ls="--", label="lips pressed = mouthPress + mouthRollLower"),
               line([], [], color="#e76f51", lw=0.9, ls=":", label="jawOpen by the corpus rules"),
               line([], [], color="0.65", lw=0.7, label="loudness (scaled; no model)")]
    fig.legend(handles=handles, loc="lower center", fontsize=7.5, ncol=4, frameon=False)
    if title:
        fig.suptitle(title, x=0.01, ha="left", fontsize=10)
    fig.tight_layout(rect=(0, 0.6 / height, 1, 1 - 0.3 / height))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


