"""Evaluation of a :class:`~core.inference.talker.Talker` on clips with ground truth (reusable pieces).

Per model on test clips: MBE, LBE, |FDD|, LVE (the curves drive the ARKit head), ITF end to
end (audio array -> encoder -> match -> sampling; audio decoding excluded) and decoder-only
(sampling); identity matching P/R/F1 on seen voices and what unseen voices match; seed
diversity of the upper vs the lower face; and three checks that compare two variants of one
model (fp16 weights, the int8 speech encoder, enrolment of an unseen identity).
``python -m experiments.evaluate`` runs them over the manifest and writes docs/RESULTS.md.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.evaluation import metrics as M
from core.data.clip import TalkingClip
from core.inference.talker import Talker
from core.inference.controls import clip_controls


class MeshDriver:
    """Drives the ARKit head with curves for LVE; lip vertices = those the mouth/jaw targets move most."""

    def __init__(self):
        from core.arkit import LIP_INDICES
        from core.face.mesh import load_face_mesh
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
        out = talker.generate(clip.load_audio(), steps=steps, seed=seed,
                              controls=clip_controls(clip.emotion, bool(talker.config(steps).emotions)))
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
    controls = [clip_controls(c.emotion, bool(a.config(steps).emotions)) for c in clips]
    runs = [(a.generate(c.load_audio(), steps=steps, seed=0, controls=k),
             b.generate(c.load_audio(), steps=steps, seed=0, controls=k)) for c, k in zip(clips, controls)]
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
    from core.audio.encoders import get_encoder
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
    from core.identities.enrolment import enroll
    name = clips[0].identity
    enrol, held_out = clips[::2], clips[1::2]
    before = Talker.from_pretrained(folder)
    steps = before.steps_available[0]
    best_old = Counter(before.generate(c.load_audio(), steps=steps).matched_identity for c in held_out).most_common(1)[0][0]
    from core.identities.store import data_folder_at
    with tempfile.TemporaryDirectory() as tmp, data_folder_at(Path(tmp) / "data"):
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
