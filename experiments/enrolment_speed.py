"""How long enrolment takes, and whether the faster way learns identities as well:
``python -m experiments.enrolment_speed --data CORPUS``.

For every identity of the corpus's test_unseen split (voices no shipped model was trained
on): two of its clips become takes (speech wav + Live Link Face CSV, as a user uploads them)
and the others are held out. The identity is enrolled into every shipped model of a copy
of the checkpoints, once with every model learning its embedding from scratch (the old way)
and once warm-started from the first model's embedding (:func:`core.identities.enrolment.enroll_pairs`),
the two runs interleaved. Reported per way: the wall-clock seconds of the enrolment, how
often a held-out clip's voice is matched to the new identity in each model, and the 8-step
model's LBE with the new identity. Writes the "enrolment-speed" section of docs/RESULTS.md.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANTS = {"every model from scratch": False, "warm start from the first model (kept)": True}


def enrol_and_score(checkpoints: Path, name: str, takes: list, held_out: list, warm_start: bool) -> dict:
    """Enrol into a copy of ``checkpoints`` (and a user data folder of its own); score the held-out clips."""
    import torch

    from core.evaluation import metrics as M
    from core.identities.enrolment import enroll_pairs
    from core.identities.store import data_folder_at
    from core.inference.talker import Talker
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "checkpoints"
        shutil.copytree(checkpoints, root, ignore=shutil.ignore_patterns("training_state*", "log.jsonl"))
        with data_folder_at(Path(tmp) / "data"):
            began = time.perf_counter()
            enroll_pairs(root, name, takes, warm_start=warm_start)
            seconds = time.perf_counter() - began
            talker = Talker.from_pretrained(root)
            features = [talker.features(clip.load_audio())[0] for clip in held_out]
            matched = {steps: float(np.mean([talker.model(steps).match(torch.from_numpy(f))[0][0] == name
                                             for f in features])) for steps in talker.steps_available}
            lbe = float(np.mean([M.lbe(talker.generate(None, steps=8, seed=0, identity=name, features=f)
                                       .blendshapes[0], clip.blendshapes) for f, clip in zip(features, held_out)]))
    return {"seconds": seconds, "matched": matched, "lbe_8": lbe}


def takes_of(clips: list, folder: Path) -> list[tuple[Path, Path]]:
    """The clips as (speech wav, Live Link Face CSV) files, as a user would upload them."""
    from core.face.export import export_curves
    pairs = []
    for clip in clips:
        csv = folder / f"{clip.id}.csv"
        export_curves(clip.blendshapes, csv, audio=clip.load_audio())
        pairs.append((csv.with_suffix(".wav"), csv))
    return pairs


def main(argv=None) -> None:
    from core.data.dataset import load_clips
    from experiments.report import machine_description, table, update_section
    p = argparse.ArgumentParser(description="Enrolment time and held-out matching, old way vs warm start.")
    p.add_argument("--checkpoints", default="checkpoints")
    p.add_argument("--data", required=True, help="a corpus folder (its test_unseen split is used)")
    p.add_argument("--takes", type=int, default=2, help="clips per identity used as takes")
    p.add_argument("--results", default="docs/RESULTS.md")
    a = p.parse_args(argv)
    unseen = load_clips(a.data, ("test_unseen",))
    identities = sorted({c.identity for c in unseen})
    runs = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for ident in identities:
            clips = [c for c in unseen if c.identity == ident]
            takes, held_out = takes_of(clips[:a.takes], Path(tmp)), clips[a.takes:]
            for variant, warm in VARIANTS.items():            # interleaved: the machine's speed drifts
                result = enrol_and_score(Path(a.checkpoints), f"new-{ident}", takes, held_out, warm)
                runs[variant].append(result)
                print(variant, ident, {k: v for k, v in result.items() if k != "matched"}, flush=True)
    rows = []
    for variant, results in runs.items():
        matched = [m for r in results for m in r["matched"].values()]
        by_steps = {s: statistics.mean(r["matched"][s] for r in results) for s in results[0]["matched"]}
        rows.append([variant, f"{statistics.median(r['seconds'] for r in results):.1f}",
                     f"{statistics.mean(matched):.2f}", f"{by_steps.get(8, float('nan')):.2f}",
                     f"{min(by_steps.values()):.2f}", f"{statistics.mean(r['lbe_8'] for r in results):.4f}"])
    held = len(unseen) - a.takes * len(identities)
    md = (f"## Enrolment speed\n\n`python -m experiments.enrolment_speed --data {a.data}` on {machine_description()}: "
          f"{len(identities)} identities no shipped model was trained on, each enrolled from {a.takes} takes into "
          f"all shipped models (150 iterations for the first; the warm start gives each further model "
          f"150 // 6 = 25 from the first one's embedding), {held} held-out clips in all. Matched = share of "
          "held-out clips whose voice is matched to the new identity, over every model, at 8 steps, and in the "
          "model where it is lowest.\n\n"
          + table(["enrolment", "seconds (median)", "held-out matched, all models", "matched, 8 steps",
                   "matched, worst model", "LBE at 8 steps, new identity"], rows))
    update_section("enrolment-speed", md, a.results)
    print(md)


if __name__ == "__main__":
    main()
