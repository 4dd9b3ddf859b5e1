"""The "real-speech" section of docs/RESULTS.md."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.realspeech.analysis import SCORE_NAMES, TTS_GROUP, auc_or_nan

SECTION = "real-speech"


def markdown(rows: list[dict], summary: list[dict], model: str, steps: int, plot_path: Path | None,
             not_found: list[str] = (), unaligned: list[str] = ()) -> str:
    from experiments.report import table

    lines = [
        "## Real human speech (lip-sync sanity check)",
        "",
        f"Written by `python -m experiments.realspeech --steps {steps}` (model: {model}, seed 0). The model never "
        "heard a human voice in training. Frames (30 fps) inside open vowels (aa ae ah ao aw ay) and "
        "inside bilabials (p b m), phones from pocketsphinx forced alignment to the known text "
        "(or phone recognition where none is known); AUC = chance that a random open-vowel frame "
        "scores as more open than a random bilabial frame (0.5 = no separation), with a 95 % "
        "bootstrap interval over recordings. Lip aperture = jawOpen - mouthClose; lips pressed = "
        "mean(mouthPress L/R) + mouthRollLower, sign flipped. *Loudness* uses no model at all: "
        "it is the baseline to beat. r = Pearson correlation with the corpus's own viseme rules "
        "applied to the aligned phones (mean over recordings); *rules:* columns score those rule-drawn "
        "curves themselves, the ceiling at this frame labelling (the rules' coarticulation and 30 ms "
        "lead blur phone edges too). The TTS control speaks the same texts "
        "with espeak-ng and goes through the same alignment and measurement: the model's home ground.",
        "",
    ]
    header = ["recordings", "speakers", "seconds", "open / bilabial frames", "mean jawOpen: open / bilabial",
              "mean lips pressed: open / bilabial",
              *(f"AUC {n}" for n in SCORE_NAMES), "r jaw", "r aperture"]
    body = []
    for res in summary:
        aucs = [f"{a:.3f} [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else f"{a:.3f}"
                for a, lo, hi in (res["auc"][n] for n in SCORE_NAMES)] if "auc" in res else ["-"] * len(SCORE_NAMES)
        body.append([f"{res['group']}: {res['recordings']}", res["speakers"], f"{res['seconds']:.1f}",
                     f"{res['open']} / {res['bilabial']}", "{:.3f} / {:.3f}".format(*res["mean_jaw"]),
                     "{:.3f} / {:.3f}".format(*res["mean_pressed"]),
                     *aucs, f"{res['r_jaw']:.2f}", f"{res['r_aperture']:.2f}"])
    lines += [table(header, body), ""]
    lines += ["Identity matching (the voice -> nearest library identity, cosine similarity):", ""]
    id_rows = []
    for row in (r for r in rows if r["recording"].group != TTS_GROUP):
        (best, sim), *rest = row["scores_identity"]
        runner = f"{rest[0][0]} ({rest[0][1]:.3f})" if rest else "-"
        id_rows.append([row["recording"].name, row["recording"].speaker, f"{row['seconds']:.1f}",
                        f"{best} ({sim:.3f})", runner,
                        *(_fmt(auc_or_nan(row, n)) for n in ("jawOpen", "lips pressed (-)", "loudness (no model)"))])
    lines += [table(["recording", "speaker", "s", "best match", "runner-up", "AUC jaw", "AUC lips pressed",
                     "AUC loudness"], id_rows), "",
              "(AUC -: the clip has no open-vowel or no bilabial frame.)", ""]
    if plot_path is not None:
        lines += [f"![real speech]({plot_path.as_posix()})", ""]
    lines += ["Sources: pocketsphinx 5.1.1 sdist test data (LibriVox, public domain; CMU, BSD-style) and "
              "Debian codec2-examples (LGPL-2.1); `python -m experiments.realspeech --fetch` downloads them, two "
              "short clips ship in demo/examples (SOURCES.md there). The 8 kHz clips are telephone-band "
              "and phone-recognised, so their labels are noisier."]
    if not_found:
        lines += ["", f"Not run (audio not found; `--fetch` brings it): {', '.join(not_found)}."]
    if unaligned:
        lines += ["", f"Left out (pocketsphinx could not align the text to the audio): {', '.join(unaligned)}."]
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:.2f}"


