"""``tables`` and ``report``: every model of the manifest on the test split -> paper Tables 1, 4, 5.

Writes docs/results.json, the "evaluation" section of docs/RESULTS.md and the metrics into
the manifest; ``report`` rewrites the section from the JSON alone.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from core.data.clip import TalkingClip
from core.evaluation.evaluate import MeshDriver, diversity, evaluate_checkpoint, identity_matching
from core.model.manifest import read_manifest, record_metrics, verify
from core.inference.talker import Talker
from experiments.report import machine_description, table, update_section


def pick(clips: list[TalkingClip], n: int | None, seed: int = 0) -> list[TalkingClip]:
    if n is None or len(clips) <= n:
        return clips
    idx = np.random.default_rng(seed).choice(len(clips), n, replace=False)
    return [clips[i] for i in sorted(idx)]


def test_split(data: str | Path, max_clips: int | None, split: str = "test") -> tuple[list[TalkingClip], list[TalkingClip]]:
    """(every clip of ``split``, the fixed random subset of at most ``max_clips`` the tables use)."""
    from core.data.dataset import load_clips
    every = load_clips(data, (split,))
    return every, pick(every, max_clips)


def training_budgets(root: Path, names: list[str]) -> list[list]:
    """Epochs and wall-clock minutes each checkpoint trained (from its log.jsonl)."""
    rows = []
    for name in names:
        log = root / name / "log.jsonl"
        if not log.is_file():
            continue
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        cfg = json.loads((root / name / "config.json").read_text())
        kept = cfg.get("extra", {}).get("selected", {}).get("kept", "final")
        at = next((row for row in lines if kept.startswith("epoch-") and row["epoch"] == int(kept[6:])), None)
        # a snapshot chosen on real validation speech, or the last epoch
        note = f"epoch {at['epoch']} ({at['minutes']} min) kept by real-speech validation" if at else "last epoch"
        rows.append([name, cfg["steps"], cfg.get("parent") or "-", lines[-1]["epoch"], lines[-1]["minutes"], note])
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
        md += ["\n## Seed diversity\n\nMean pairwise distance between seeds' curves (L2 over the channels of each "
               "half, per frame), absolute; what the data's own spread is, and blinks, are in \"Upper face against "
               "the generator's truth\" below. The upper/lower ratio alone hid a collapsed upper face: a ratio of "
               "two tiny numbers.\n",
               table(["model", "upper face", "lower face", "upper/lower", "seeds", "clips"],
                                              [[k, v["upper"], v["lower"], v["ratio"], v["samples"], v["clips"]]
                                               for k, v in div.items()])]
    if root is not None:
        budget = training_budgets(root, sorted(models, key=lambda n: (models[n]["role"], -models[n]["steps"])))
        md += ["\n## Training budgets\n\nWall-clock minutes of each model's last training run on the machine above "
               "(batch 32 x 120 frames; the teacher's earlier stages, the threads each run had and the minute "
               "budgets: `scripts/train_all.sh` and docs/DECISIONS.md). Reproduce with `scripts/train_all.sh`.\n",
               table(["model", "steps", "parent", "epochs", "minutes", "weights kept"], budget)]
    update_section("evaluation", "\n".join(md), path)


def rewrite(a) -> None:
    """``report``: the section again from the JSON, e.g. after editing its wording."""
    write_report(json.loads(Path(a.json).read_text()), a.results, a.checkpoints)


def run(a) -> None:
    """``tables``: evaluate every (selected) model of the manifest and write the results."""
    root = a.checkpoints
    every_test, test = test_split(a.data, a.max_clips)
    try:
        unseen = test_split(a.data, a.max_clips, "test_unseen")[1]
    except ValueError:
        unseen = []
    mesh = None if a.no_lve else MeshDriver()
    entries = [m for m in read_manifest(root)["models"] if not a.models or m["name"] in a.models]
    results = {"command": a.command_line,
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
    write_report(results, a.results, root)
    print(f"wrote {a.json} and {a.results}")


