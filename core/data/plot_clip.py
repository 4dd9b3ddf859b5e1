"""Plot one corpus clip: waveform, key ARKit curves and the phone labels under them.

    python -m core.data.plot_clip /work/corpus/default id00_espeak_en-rp_belinda_train_000 --out clip.png

Bilabials (p b m) are shaded so lip closure can be checked at a glance.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from core.arkit import INDEX
from core.rates import FPS

PANELS = {
    "jaw & lip closure": ("jawOpen", "mouthClose", "mouthPressLeft", "mouthRollLower"),
    "rounding & spreading": ("mouthPucker", "mouthFunnel", "mouthStretchLeft", "mouthSmileLeft"),
    "upper face": ("eyeBlinkLeft", "browInnerUp", "browOuterUpLeft", "eyeLookOutRight"),
}
BILABIALS = ("p", "b", "m")


def plot_clip(corpus: str | Path, clip_id: str, out: str | Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips = Path(corpus) / "clips"
    if not (clips / f"{clip_id}.npy").is_file():
        raise ValueError(f"no clip {clip_id!r} in {corpus}")
    curves = np.load(clips / f"{clip_id}.npy")
    audio, rate = sf.read(clips / f"{clip_id}.wav", dtype="float32")
    extras_path = clips / f"{clip_id}.json"
    extras = json.loads(extras_path.read_text()) if extras_path.is_file() else {}
    phones = extras.get("phones", [])
    t = (np.arange(len(curves)) + 0.5) / FPS

    fig, axes = plt.subplots(len(PANELS) + 1, 1, figsize=(15, 9), sharex=True,
                             gridspec_kw={"height_ratios": [0.6] + [1] * len(PANELS)})
    axes[0].plot(np.arange(len(audio)) / rate, audio, lw=0.4, color="0.3")
    axes[0].set_title(f"{clip_id}: {' '.join(extras.get('sentences', []))}", fontsize=9)
    axes[0].set_ylabel("audio")
    for ax, (title, names) in zip(axes[1:], PANELS.items()):
        for name in names:
            ax.plot(t, curves[:, INDEX[name]], label=name, lw=1.2)
        ax.set_ylim(0, 1)
        ax.set_ylabel(title, fontsize=8)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    top = float(np.abs(audio).max()) or 1.0
    axes[0].set_ylim(-1.3 * top, 1.3 * top)
    for label, start, end in phones:
        for ax in axes:
            if label in BILABIALS:
                ax.axvspan(start, end, color="tab:red", alpha=0.12, lw=0)
        if label != "pau":
            axes[0].text((start + end) / 2, 1.25 * top, label, ha="center", va="top", fontsize=6)
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="plot one synthetic corpus clip")
    parser.add_argument("corpus")
    parser.add_argument("clip_id")
    parser.add_argument("--out", default="clip.png")
    args = parser.parse_args(argv)
    try:
        print(plot_clip(args.corpus, args.clip_id, args.out))
    except ValueError as err:
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
