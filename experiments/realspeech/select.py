"""``python -m experiments.realspeech.select RUN --data CORPUS``: keep the snapshot of a training
run that does best on validation data (no test recording or test clip is read).

Scores every ``RUN/snapshots/epoch-NNNN`` (``core.training.train --snapshot-minutes``) and the final
model (unless the last snapshot is it) on both things a teacher must do:

- lips on real speech: the validation AUC of the lip aperture (open vowels against p/b/m) and
  the p/b/m closure rate above chance;
- the upper face on the corpus's *val* clips: how far its across-seed spread per group and its
  blink rate are from the generator's truth draws (mean |log ratio|, 0 = as the data).

Kept: among the candidates within ``AUC_TOLERANCE`` of the best lip AUC, the one whose upper face
is closest to the truth (ties: AUC). Lips alone picked the collapsed teacher of the first
releases (its upper face did not depend on the seed at all). The winner's weights and config
replace the run's own; ``config.json`` records the choice and every candidate's figures under
``extra.selected``.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from core.model.checkpoint import CONFIG_NAME, WEIGHTS_NAME, sha256_of
from core.evaluation.upper_face import UPPER_GROUPS
from core.training.run_state import snapshots
from experiments.realspeech.__main__ import aligned_recordings, measure, part_figures
from experiments.realspeech.sources import DEFAULT_AUDIO_DIR


def candidates(run: Path) -> list[Path]:
    """The snapshots, then the final model unless the last snapshot is that model already."""
    kept = snapshots(run)
    if kept and sha256_of(kept[-1] / WEIGHTS_NAME) == sha256_of(run / WEIGHTS_NAME):
        return kept
    return kept + [run]


AUC_TOLERANCE = 0.01      # lip AUC a snapshot may give up for a truer upper face
UPPER_CLIPS, UPPER_SEEDS = 8, 4


def upper_face_mismatch(figures: dict) -> float:
    """Mean |log(model / truth)| of the upper-face spreads, roughness (frame-to-frame jitter, which
    the spread alone counts as diversity) and the blink rate (0: as the data)."""
    ratios = ([figures["spread_ratio"][g] for g in UPPER_GROUPS] + [figures["roughness_ratio"][g] for g in UPPER_GROUPS]
              + [figures["blink_rate_ratio"]])
    return float(np.mean([abs(np.log(max(r, 1e-6))) for r in ratios]))


def score(folder: Path, aligned, data, seed: int = 0) -> dict:
    from core.data.dataset import load_clips
    from core.inference.talker import Talker
    from experiments.evaluate.tables import pick
    from experiments.evaluate.upper_face import synthetic
    talker = Talker.from_pretrained(folder)
    steps = talker.steps_available[0]
    figures = part_figures(measure(talker, aligned, [steps], seed, verbose=False))[steps]
    upper = synthetic(talker, steps, data, pick(load_clips(data, ("val",)), UPPER_CLIPS, seed=1), UPPER_SEEDS)
    return {**figures, "upper_face_mismatch": round(upper_face_mismatch(upper), 4),
            "spread_ratio": {g: round(v, 3) for g, v in upper["spread_ratio"].items()},
            "roughness_ratio": {g: round(v, 3) for g, v in upper["roughness_ratio"].items()},
            "blinks_per_minute": round(upper["model"]["blinks_per_minute"], 2),
            "truth_blinks_per_minute": round(upper["truth"]["blinks_per_minute"], 2)}


def best(scored: dict[str, dict]) -> str:
    top = max(v["auc"] for v in scored.values())
    eligible = [name for name, v in scored.items() if v["auc"] >= top - AUC_TOLERANCE]
    return min(eligible, key=lambda name: (scored[name]["upper_face_mismatch"], -scored[name]["auc"]))


def select(run: Path, data, audio_dir=DEFAULT_AUDIO_DIR, seed: int = 0) -> dict:
    run = Path(run)
    config = json.loads((run / CONFIG_NAME).read_text())
    if "selected" in config.get("extra", {}):
        return config["extra"]["selected"]                      # chosen before: nothing to redo
    aligned, _, _ = aligned_recordings(audio_dir, validation_only=True, tts_control=False)
    scored = {}
    for folder in candidates(run):
        name = "final" if folder == run else folder.name
        scored[name] = score(folder, aligned, data, seed)
        print(json.dumps({"candidate": name, **scored[name]}), flush=True)
    winner = best(scored)
    if winner != "final":
        source = run / "snapshots" / winner
        shutil.copyfile(source / WEIGHTS_NAME, run / WEIGHTS_NAME)
        config = json.loads((source / CONFIG_NAME).read_text())
    config.setdefault("extra", {})["selected"] = {"kept": winner, "by": f"upper face closest to the truth on val clips, lip AUC within {AUC_TOLERANCE} of the best",
                                                  "candidates": scored}
    (run / CONFIG_NAME).write_text(json.dumps(config, indent=1))
    return config["extra"]["selected"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m experiments.realspeech.select", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="checkpoint folder of a training run (with snapshots/)")
    p.add_argument("--data", required=True, help="the corpus the run was trained on (its val clips are scored)")
    p.add_argument("--audio-dir", default=str(DEFAULT_AUDIO_DIR))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print(json.dumps(select(a.run, a.data, a.audio_dir, a.seed)))


if __name__ == "__main__":
    main()
