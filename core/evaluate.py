"""Evaluation: ``python -m core.evaluate --checkpoints checkpoints --data CORPUS``.

For every model in the manifest (shipped chain, from-scratch baselines, ablations) on the test
split: MBE, LBE, |FDD|, LVE (curves drive the ARKit head), ITF end-to-end (audio array ->
encoder -> match -> sampling; audio decoding excluded) and decoder-only (sampling); identity
matching P/R/F1 on seen voices and what unseen voices match; seed diversity upper vs lower
face.  Writes JSON, the paper's Tables 1, 4 and 5 into docs/RESULTS.md, and the metrics into
the manifest.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core import metrics as M
from core.data.clip import TalkingClip
from core.manifest import read_manifest, record_metrics, verify
from core.pipeline import Talker
from core.report import machine_description, table, update_section


class MeshDriver:
    """Drives the ARKit head with curves for LVE; lip vertices = those the mouth/jaw targets move most."""

    def __init__(self):
        from core.arkit import LIP_INDICES
        from core.face_mesh import load_face_mesh
        self.mesh = load_face_mesh()
        motion = np.linalg.norm(self.mesh.morph_deltas[list(LIP_INDICES)], axis=-1).max(0)
        self.lip_ids = np.flatnonzero(motion > 0.25 * motion.max())

    def lve(self, pred: np.ndarray, gt: np.ndarray) -> float:
        n = min(len(pred), len(gt))
        return M.lve(self.mesh.deform_sequence(pred[:n]), self.mesh.deform_sequence(gt[:n]), self.lip_ids)


def evaluate_checkpoint(talker: Talker, clips: list[TalkingClip], seed: int = 0, mesh: MeshDriver | None = None,
                        progress: bool = True) -> dict:
    steps = talker.steps_available[0]
    rows = {"mbe": [], "lbe": [], "fdd": [], "lve": [], "itf": [], "itf_decoder": []}
    for clip in tqdm(clips, desc=f"{steps} steps", disable=not progress, leave=False):
        out = talker.generate(clip.load_audio(), steps=steps, seed=seed)
        pred, gt = out.blendshapes[0], clip.blendshapes
        rows["mbe"].append(M.mbe(pred, gt))
        rows["lbe"].append(M.lbe(pred, gt))
        rows["fdd"].append(M.fdd(pred, gt))
        if mesh is not None:
            rows["lve"].append(mesh.lve(pred, gt))
        rows["itf"].append(out.itf)
        rows["itf_decoder"].append(out.timings["sampling"] / out.frames)
    result = {k: float(np.mean(v)) for k, v in rows.items() if v}
    result["fdd_abs"] = abs(result.pop("fdd"))
    result["itf_median"] = float(np.median(rows["itf"]))
    result["clips"] = len(clips)
    return result


def identity_matching(talker: Talker, seen: list[TalkingClip], unseen: list[TalkingClip]) -> dict:
    steps = talker.steps_available[0]
    model = talker.model(steps)
    import torch

    def best(clip):
        feats, _ = talker.features(clip.load_audio())
        return model.match(torch.from_numpy(feats))[0][0]

    out = {"seen": M.identity_scores([c.identity for c in seen], [best(c) for c in seen])}
    if unseen:
        matches: dict[str, Counter] = {}
        for clip in unseen:
            matches.setdefault(clip.identity, Counter())[best(clip)] += 1
        out["unseen"] = {k: dict(v.most_common(3)) for k, v in matches.items()}
    return out


def diversity(talker: Talker, clips: list[TalkingClip], samples: int = 4) -> dict:
    steps = talker.steps_available[0]
    vals = [M.seed_diversity(talker.generate(c.load_audio(), steps=steps, seed=0, num_samples=samples).blendshapes)
            for c in clips]
    up, low = float(np.mean([v["upper"] for v in vals])), float(np.mean([v["lower"] for v in vals]))
    return {"upper": up, "lower": low, "ratio": up / max(low, 1e-9), "samples": samples, "clips": len(clips)}


def compare_talkers(a: Talker, b: Talker, clips: list[TalkingClip]) -> dict:
    """Same clips and seeds through two variants of one model: LBE of each, the largest curve
    difference, and how often both match the same identity."""
    steps = a.steps_available[0]
    runs = [(a.generate(c.load_audio(), steps=steps, seed=0), b.generate(c.load_audio(), steps=steps, seed=0))
            for c in clips]
    return {"lbe_a": float(np.mean([M.lbe(x.blendshapes[0], c.blendshapes) for (x, _), c in zip(runs, clips)])),
            "lbe_b": float(np.mean([M.lbe(y.blendshapes[0], c.blendshapes) for (_, y), c in zip(runs, clips)])),
            "max_abs_curve_diff": max(float(np.abs(x.blendshapes - y.blendshapes).max()) for x, y in runs),
            "same_identity": float(np.mean([x.matched_identity == y.matched_identity for x, y in runs])),
            "clips": len(clips)}


def fp16_check(folder: Path, clips: list[TalkingClip]) -> dict:
    """Does storing the weights as float16 change the outputs measurably? Same seeds, both ways."""
    import torch
    exact = Talker.from_pretrained(folder)
    rounded = Talker.from_pretrained(folder)
    with torch.no_grad():
        for p in rounded.model(rounded.steps_available[0]).parameters():
            p.copy_(p.half().float())
    res = compare_talkers(exact, rounded, clips)
    return {"model": folder.name, "lbe_fp32": res.pop("lbe_a"), "lbe_fp16": res.pop("lbe_b"), **res}


def encoder_check(folder: Path, clips: list[TalkingClip], variant: str = "whisper-tiny.en-int8") -> dict:
    """The model was trained on one encoder's features: does a faster variant (int8) change its output?"""
    from core.encoders import get_encoder
    exact = Talker.from_pretrained(folder, encoder=get_encoder("whisper-tiny.en"))
    fast = Talker.from_pretrained(folder, encoder=get_encoder(variant))
    res = compare_talkers(exact, fast, clips)
    return {"model": folder.name, "variant": variant, "lbe_float32": res.pop("lbe_a"), "lbe_variant": res.pop("lbe_b"),
            **res}


def enrolment_check(folder: Path, clips: list[TalkingClip], iterations: int = 150) -> dict:
    """Enrol an identity never seen in training from half of its clips (a copy of the checkpoint),
    then on the other half: does its voice match the new identity, and is LBE lower with the new
    identity than with the best old one (the one matched before enrolment)?"""
    import shutil
    import tempfile
    from core.enroll import enroll
    name = clips[0].identity
    enrol, held_out = clips[::2], clips[1::2]
    before = Talker.from_pretrained(folder)
    steps = before.steps_available[0]
    best_old = Counter(before.generate(c.load_audio(), steps=steps).matched_identity for c in held_out).most_common(1)[0][0]
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / folder.name
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("training_state*", "log.jsonl"))
        enroll(copy, name, enrol, iterations=iterations)
        after = Talker.from_pretrained(copy)
        new = [after.generate(c.load_audio(), steps=steps, seed=0) for c in held_out]
        old = [after.generate(c.load_audio(), steps=steps, seed=0, identity=best_old) for c in held_out]
    return {"identity": name, "model": folder.name, "enrol_clips": len(enrol), "held_out_clips": len(held_out),
            "matched_new": float(np.mean([g.matched_identity == name for g in new])),
            "best_old_identity": best_old,
            "lbe_new": float(np.mean([M.lbe(g.blendshapes[0], c.blendshapes) for g, c in zip(new, held_out)])),
            "lbe_best_old": float(np.mean([M.lbe(g.blendshapes[0], c.blendshapes) for g, c in zip(old, held_out)]))}


def pick(clips: list[TalkingClip], n: int | None, seed: int = 0) -> list[TalkingClip]:
    if n is None or len(clips) <= n:
        return clips
    idx = np.random.default_rng(seed).choice(len(clips), n, replace=False)
    return [clips[i] for i in sorted(idx)]


def training_budgets(root: Path, names: list[str]) -> list[list]:
    """Epochs and wall-clock minutes each checkpoint trained (from its log.jsonl)."""
    rows = []
    for name in names:
        log = root / name / "log.jsonl"
        if not log.is_file():
            continue
        last = json.loads(log.read_text().splitlines()[-1])
        cfg = json.loads((root / name / "config.json").read_text())
        rows.append([name, cfg["steps"], cfg.get("parent") or "-", last["epoch"], last["minutes"]])
    return rows


def write_report(results: dict, path: Path, root: Path | None = None) -> None:
    models = results["models"]
    shipped = sorted([m for m in models.values() if m["role"] == "shipped"], key=lambda m: -m["steps"])
    baselines = [m for m in models.values() if m["role"] == "baseline"]
    t1 = [[m["steps"], "yes" if m["distilled"] else "no", m["name"], m["lbe"], m["mbe"], m["fdd_abs"],
           m.get("lve", float("nan")), m["itf"] * 1e4, m["itf_decoder"] * 1e4]
          for m in sorted(shipped + baselines, key=lambda m: (-m["steps"], m["distilled"]))]
    md = [f"## Accuracy and speed by steps (paper Table 1)\n\n`{results['command']}` on {results['data']} "
          f"({results['clips']} test clips: held-out sentences of seen identities), seed 0, {results['machine']}.\n"
          "ITF in 1e-4 s/frame; end-to-end = encoder + identity match + sampling on an in-memory 16 kHz array, "
          "decoder = sampling only. LVE in mesh units of the facecap head (lip vertices, max per frame).\n",
          table(["steps", "distilled", "model", "LBE", "MBE", "|FDD|", "LVE", "ITF e2e", "ITF decoder"], t1)]
    teacher = next((m for m in shipped if not m["distilled"]), None)
    if teacher:
        md.append("\nLBE relative to the teacher: " + ", ".join(
            f"{m['steps']} steps {m['lbe'] / teacher['lbe']:.3f}x" for m in shipped if m["distilled"]))
    ident = results.get("identity")
    if ident:
        s = ident["seen"]
        md += [f"\n## Identity matching (paper Table 4), {ident['model']}\n\nEvery clip of the test split (the "
               "other tables use a random subset of it).\n",
               table(["voices", "precision", "recall", "F1", "accuracy", "clips"],
                     [["seen (test split)", s["precision"], s["recall"], s["f1"], s["accuracy"], s["clips"]]])]
        if "unseen" in ident:
            md.append("\nUnseen voices (never in training) match these library identities (count of clips):\n")
            md.append(table(["unseen voice", "matched identities"],
                            [[k, ", ".join(f"{n} ({c})" for n, c in v.items())] for k, v in ident["unseen"].items()]))
    abl = [m for m in models.values() if m["role"] == "ablation"]
    if abl:
        ref = next((m for m in shipped if m["steps"] == 8), None)
        scratch = next((m for m in baselines if m["steps"] == 8), None)
        rows = ([["full model (distilled-8)", ref["mbe"], ref["lbe"]]] if ref else []) + \
               ([["without distillation (scratch-8)", scratch["mbe"], scratch["lbe"]]] if scratch else []) + \
               [[m["name"], m["mbe"], m["lbe"]] for m in sorted(abl, key=lambda m: m["name"])]
        md += ["\n## Ablations at 8 steps (paper Table 5)\n\nThe ablations are trained from scratch at 8 steps "
               "with the same budget as scratch-8, so compare them with that row; the full model adds the "
               "teacher's training and the distillation chain (budgets in the manifest).\n",
               table(["setting", "MBE", "LBE"], rows)]
    div = results.get("diversity")
    if div:
        md += ["\n## Seed diversity\n", table(["model", "upper face", "lower face", "upper/lower", "seeds", "clips"],
                                              [[k, v["upper"], v["lower"], v["ratio"], v["samples"], v["clips"]]
                                               for k, v in div.items()])]
    if root is not None:
        budget = training_budgets(root, sorted(models, key=lambda n: (models[n]["role"], -models[n]["steps"])))
        md += ["\n## Training budgets\n\nWall-clock minutes on the machine above (teacher: 2 threads; distillation "
               "rounds and from-scratch models: 1 thread each, two processes side by side; batch 32 x 120 frames). "
               "Reproduce with `scripts/train_all.sh`.\n",
               table(["model", "steps", "parent", "epochs", "minutes"], budget)]
    update_section("evaluation", "\n".join(md), path)


def main(argv=None):
    p = argparse.ArgumentParser(description="Evaluate checkpoints (paper Tables 1, 4, 5).")
    p.add_argument("--checkpoints", default="checkpoints")
    p.add_argument("--data", required=True)
    p.add_argument("--max-clips", type=int, default=40, help="test clips per model (random, fixed seed)")
    p.add_argument("--models", nargs="*", help="only these checkpoint names")
    p.add_argument("--json", default="docs/results.json")
    p.add_argument("--results", default="docs/RESULTS.md")
    p.add_argument("--no-lve", action="store_true")
    p.add_argument("--report-only", action="store_true", help="rewrite RESULTS.md from the JSON, no evaluation")
    p.add_argument("--fp16-check", metavar="NAME", help="only compare fp32 vs fp16 weights of this checkpoint")
    p.add_argument("--encoder-check", metavar="NAME", help="only compare the float32 and int8 speech encoder "
                                                           "under this checkpoint")
    p.add_argument("--enrol-check", metavar="NAME", help="only run the enrolment check on this checkpoint, "
                                                         "with every unseen identity of the test_unseen split")
    a = p.parse_args(argv)
    from core.data.dataset import load_clips
    root = Path(a.checkpoints)
    if a.report_only:
        write_report(json.loads(Path(a.json).read_text()), Path(a.results), root)
        return
    every_test = load_clips(a.data, ("test",))
    test = pick(every_test, a.max_clips)
    try:
        unseen = pick(load_clips(a.data, ("test_unseen",)), a.max_clips)
    except ValueError:
        unseen = []
    if a.fp16_check:
        res = fp16_check(root / a.fp16_check, test[:20])
        print(json.dumps(res))
        update_section("fp16", f"## fp16 weights\n\n`python -m core.evaluate --fp16-check {a.fp16_check}` "
                       f"({res['clips']} test clips, seed 0): LBE {res['lbe_fp32']:.5f} with fp32 weights, "
                       f"{res['lbe_fp16']:.5f} with fp16-rounded weights; largest curve difference "
                       f"{res['max_abs_curve_diff']:.2e} (weights in [0, 1]).", a.results)
        return
    if a.encoder_check:
        res = encoder_check(root / a.encoder_check, test)
        print(json.dumps(res))
        update_section("encoder-precision", f"## int8 speech encoder\n\n`python -m core.evaluate --data {a.data} "
                       f"--encoder-check {a.encoder_check}` ({res['clips']} test clips, seed 0; the model was "
                       f"trained on float32 encoder features): LBE {res['lbe_float32']:.5f} with the float32 encoder, "
                       f"{res['lbe_variant']:.5f} with {res['variant']}; largest curve difference "
                       f"{res['max_abs_curve_diff']:.3f}; same matched identity on {res['same_identity']:.0%} of "
                       "clips.", a.results)
        return
    if a.enrol_check:
        every = load_clips(a.data, ("test_unseen",))
        rows = []
        for ident in sorted({c.identity for c in every}):
            res = enrolment_check(root / a.enrol_check, [c for c in every if c.identity == ident])
            print(json.dumps(res), flush=True)
            rows.append([res["identity"], res["enrol_clips"], res["held_out_clips"], res["matched_new"],
                         res["best_old_identity"], res["lbe_best_old"], res["lbe_new"]])
        update_section("enrolment", f"## Enrolment of unseen identities\n\n`python -m core.evaluate --data {a.data} "
                       f"--enrol-check {a.enrol_check}`: each identity of test_unseen is enrolled (network frozen, one "
                       "new embedding, 150 iterations) from every other clip; the rest are held out.\n\n"
                       + table(["identity", "enrol clips", "held-out clips", "held-out matched to new identity",
                                "best old identity", "LBE with best old", "LBE with new"], rows), a.results)
        return
    mesh = None if a.no_lve else MeshDriver()
    entries = [m for m in read_manifest(root)["models"] if not a.models or m["name"] in a.models]
    results = {"command": "python -m core.evaluate " + " ".join(argv if argv is not None else sys.argv[1:]),
               "data": str(a.data), "clips": len(test), "machine": machine_description(), "models": {}}
    prev = json.loads(Path(a.json).read_text()) if Path(a.json).is_file() else {}
    results["models"] = {k: v for k, v in prev.get("models", {}).items() if (root / k).is_dir()}
    for entry in entries:
        verify(root, entry)
        talker = Talker.from_pretrained(root / entry["path"])
        began = time.time()
        res = evaluate_checkpoint(talker, test, mesh=mesh)
        res.update(name=entry["name"], role=entry.get("role", "shipped"), steps=entry["steps"],
                   distilled=entry.get("distilled", False), eval_seconds=round(time.time() - began, 1))
        results["models"][entry["name"]] = res
        print(json.dumps(res), flush=True)
    shipped = sorted([e for e in entries if e.get("role", "shipped") == "shipped"], key=lambda e: e["steps"])
    eight = next((e for e in shipped if e["steps"] == 8), shipped[0] if shipped else None)
    if eight:
        talker = Talker.from_pretrained(root / eight["path"])
        results["identity"] = {"model": eight["name"], **identity_matching(talker, every_test, unseen)}
        results["diversity"] = {}
        for e in [eight] + [e for e in shipped if not e.get("distilled")]:
            results["diversity"][e["name"]] = diversity(Talker.from_pretrained(root / e["path"]), pick(test, 12))
    else:
        results.update({k: prev[k] for k in ("identity", "diversity") if k in prev})
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=1))
    record_metrics(root, {k: {m: v[m] for m in ("mbe", "lbe", "fdd_abs", "lve", "itf", "itf_decoder") if m in v}
                          for k, v in results["models"].items()})
    write_report(results, Path(a.results), root)
    print(f"wrote {a.json} and {a.results}")


if __name__ == "__main__":
    main()
