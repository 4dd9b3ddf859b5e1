"""``python -m experiments.realspeech.select RUN``: keep the snapshot of a training run that does
best on the real-speech *validation* part (the test part is never read).

Scores every ``RUN/snapshots/epoch-NNNN`` (``core.training.train --snapshot-minutes``) and the final
model (unless the last snapshot is it), by the validation AUC of the lip aperture (open vowels
against p/b/m), ties broken by the p/b/m closure rate above chance. The winner's weights
and config replace the run's own; ``config.json`` records the choice and every candidate's
figures under ``extra.selected``.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from core.model.checkpoint import CONFIG_NAME, WEIGHTS_NAME, sha256_of
from core.training.train import snapshots
from experiments.realspeech.__main__ import aligned_recordings, measure, validation_figures
from experiments.realspeech.sources import DEFAULT_AUDIO_DIR


def candidates(run: Path) -> list[Path]:
    """The snapshots, then the final model unless the last snapshot is that model already."""
    kept = snapshots(run)
    if kept and sha256_of(kept[-1] / WEIGHTS_NAME) == sha256_of(run / WEIGHTS_NAME):
        return kept
    return kept + [run]


def score(folder: Path, aligned, seed: int = 0) -> dict:
    from core.model.network import DiffusionTalker
    from core.inference.talker import Talker
    steps = DiffusionTalker.from_pretrained(folder).config.steps
    figures = validation_figures(measure(Talker.from_pretrained(folder), aligned, [steps], seed, verbose=False))
    return figures[steps]


def best(scored: dict[str, dict]) -> str:
    return max(scored, key=lambda name: (scored[name]["auc"], scored[name]["closure_minus_chance"]))


def select(run: Path, audio_dir=DEFAULT_AUDIO_DIR, seed: int = 0) -> dict:
    run = Path(run)
    config = json.loads((run / CONFIG_NAME).read_text())
    if "selected" in config.get("extra", {}):
        return config["extra"]["selected"]                      # chosen before: nothing to redo
    aligned, _, _ = aligned_recordings(audio_dir, validation_only=True, tts_control=False)
    scored = {}
    for folder in candidates(run):
        name = "final" if folder == run else folder.name
        scored[name] = score(folder, aligned, seed)
        print(json.dumps({"candidate": name, **scored[name]}), flush=True)
    winner = best(scored)
    if winner != "final":
        source = run / "snapshots" / winner
        shutil.copyfile(source / WEIGHTS_NAME, run / WEIGHTS_NAME)
        config = json.loads((source / CONFIG_NAME).read_text())
    config.setdefault("extra", {})["selected"] = {"kept": winner, "by": "real-speech validation AUC",
                                                  "candidates": scored}
    (run / CONFIG_NAME).write_text(json.dumps(config, indent=1))
    return config["extra"]["selected"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m experiments.realspeech.select", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="checkpoint folder of a training run (with snapshots/)")
    p.add_argument("--audio-dir", default=str(DEFAULT_AUDIO_DIR))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print(json.dumps(select(a.run, a.audio_dir, a.seed)))


if __name__ == "__main__":
    main()
