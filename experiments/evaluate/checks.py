"""``fp16``, ``encoder``, ``enrolment`` and ``splits``: one checkpoint against a variant of itself
(or, ``splits``, against the previous release on the previous corpus's test split too).

Each writes its own section of docs/RESULTS.md ("fp16", "encoder-precision", "enrolment",
"corpus-change").
"""
from __future__ import annotations

import json

from core.evaluation.evaluate import encoder_check, enrolment_check, fp16_check
from experiments.evaluate.tables import test_split
from experiments.report import table, update_section


def fp16(a) -> None:
    """Does storing the weights as float16 change the curves measurably?"""
    res = fp16_check(a.checkpoints / a.model, test_split(a.data, a.max_clips)[1][:20])
    print(json.dumps(res))
    update_section("fp16", f"## fp16 weights\n\n`{a.command_line}` "
                   f"({res['clips']} test clips, seed 0): LBE {res['lbe_fp32']:.5f} with fp32 weights, "
                   f"{res['lbe_fp16']:.5f} with fp16-rounded weights; largest curve difference "
                   f"{res['max_abs_curve_diff']:.2e} (weights in [0, 1]).", a.results)


def encoder(a) -> None:
    """Does the int8 speech encoder change the curves of a model trained on float32 features?"""
    res = encoder_check(a.checkpoints / a.model, test_split(a.data, a.max_clips)[1])
    print(json.dumps(res))
    update_section("encoder-precision", f"## int8 speech encoder\n\n`{a.command_line}` "
                   f"({res['clips']} test clips, seed 0; the model was "
                   f"trained on float32 encoder features): LBE {res['lbe_float32']:.5f} with the float32 encoder, "
                   f"{res['lbe_variant']:.5f} with {res['variant']}; largest curve difference "
                   f"{res['max_abs_curve_diff']:.3f}; same matched identity on {res['same_identity']:.0%} of "
                   "clips.", a.results)


def enrolment(a) -> None:
    """Every identity of test_unseen enrolled from half of its clips, scored on the other half."""
    every = test_split(a.data, None, "test_unseen")[0]
    rows = []
    for ident in sorted({c.identity for c in every}):
        res = enrolment_check(a.checkpoints / a.model, [c for c in every if c.identity == ident])
        print(json.dumps(res), flush=True)
        rows.append([res["identity"], res["enrol_clips"], res["held_out_clips"], res["matched_new"],
                     res["best_old_identity"], res["lbe_best_old"], res["lbe_new"]])
    update_section("enrolment", f"## Enrolment of unseen identities\n\n`{a.command_line}`: each identity of "
                   "test_unseen is enrolled (network frozen, one new embedding, 150 iterations) from every other "
                   "clip; the rest are held out.\n\n"
                   + table(["identity", "enrol clips", "held-out clips", "held-out matched to new identity",
                            "best old identity", "LBE with best old", "LBE with new"], rows), a.results)


def splits(a) -> None:
    """When the corpus changes: the model and the previous releases' models of the same name, each
    on the new and the old corpus's test split (LBE, the same clips for every model)."""
    from pathlib import Path
    from core.evaluation.evaluate import evaluate_checkpoint
    from core.inference.talker import Talker
    corpora = {"new": Path(a.data), "old": Path(a.old_data)}
    clips = {name: test_split(folder, a.max_clips)[1] for name, folder in corpora.items()}
    previous = [Path(p) for p in a.previous]
    releases = [("shipped", Path(a.checkpoints))] + [("previous", root) for root in previous]
    rows, lbe = [], {}
    for release, root in releases:
        talker = Talker.from_pretrained(root / a.model)
        for name in corpora:
            lbe[root, name] = evaluate_checkpoint(talker, clips[name], progress=False)["lbe"]
            print(json.dumps({"release": str(root), "split": name, "lbe": lbe[root, name]}), flush=True)
        rows.append([f"{a.model} ({release}: {root})", round(lbe[root, "new"], 4), round(lbe[root, "old"], 4)])
    shipped = releases[0][1]
    rows += [[f"shipped / previous ({root})", round(lbe[shipped, "new"] / lbe[root, "new"], 3),
              round(lbe[shipped, "old"] / lbe[root, "old"], 3)] for root in previous]
    update_section("corpus-change", f"## Synthetic test LBE across the corpus change\n\n`{a.command_line}`: "
                   f"{len(clips['new'])} test clips of {corpora['new']} and {len(clips['old'])} of {corpora['old']} "
                   "(held-out sentences of each corpus's seen identities; identity matched from the voice, seed 0). "
                   "Target: the shipped model no worse than 1.05 x the previous ones. Each corpus draws its own talking "
                   "style per identity and a model can only reproduce the styles of its own library, so across "
                   "corpora the LBE mostly measures that mismatch; each model on its own corpus's split is the "
                   "comparable pair.\n\n"
                   + table(["model", f"LBE, new split ({corpora['new'].name})", f"LBE, old split ({corpora['old'].name})"],
                           rows), a.results)
