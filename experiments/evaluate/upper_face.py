"""``upper-face``: does each model sample the upper face as the data does? (the seed must matter)

Synthetic clips: K samples of the model (seeds 0..K-1, the clip's own identity) against K truth
draws of the corpus generator for the same clip (its phones, audio and style, fresh randomness;
the lower face is the clip's own, which the generator draws deterministically). Real recordings
(validation part only): the model's samples with the identity matched from the voice against
truth draws of the matched identity's style on the recording's aligned phones: a real face has
no ground truth, but blink rate and spread do. Style labels: every identity forced on the same
clips, its blink rate against the style's (Spearman), brow raises of "busy brows" styles
against the rest. Statistics: :mod:`core.evaluation.upper_face`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.evaluation import upper_face as U
from core.arkit import UPPER_INDICES
from core.data.clip import TalkingClip, read_meta
from core.data.style import Style
from core.data.tts import Phone
from core.data.upper_face import upper_face
from core.data.emotion_face import with_emotion
from core.inference.controls import Controls, clip_controls as controls_for
from core.model.manifest import is_checkpoint_folder, model_entries, read_manifest, record_metrics
from core.inference.talker import Talker
from experiments.evaluate.tables import pick
from experiments.report import machine_description, table, update_section

SECTION = "upper-face"
BATCH = 4                  # seeds per generate call


def styles(data: str | Path) -> dict[str, Style]:
    params = read_meta(data)["identity_params"]
    return {name: Style(**p["style"]) for name, p in params.items()}


def clip_phones(data: str | Path, clip: TalkingClip) -> list[Phone]:
    extras = json.loads((Path(data) / "clips" / f"{clip.id}.json").read_text())
    return [Phone(label, start, end) for label, start, end in extras["phones"]]


def truth_draws(curves: np.ndarray, phones: list[Phone], audio: np.ndarray, style: Style, k: int,
                seed: int = 10_000, emotion: tuple[str, float] = ("neutral", 0.0)) -> np.ndarray:
    """[k, F, 52]: ``curves`` with the upper face drawn anew k times (seeds never used by the corpus),
    the clip's ``emotion`` (name, intensity) composed into it as the corpus does."""
    frames = len(curves)
    out = np.repeat(curves[None].astype(np.float32), k, 0)
    for i in range(k):
        upper = upper_face(phones, audio, frames, style, np.random.default_rng([seed, i]))
        out[i][:, UPPER_INDICES] = with_emotion(upper, phones, *emotion)[:, UPPER_INDICES]
    return out


def model_samples(talker: Talker, steps: int, audio: np.ndarray, features, k: int,
                  identity: str | None = None, controls: Controls | None = None) -> tuple[np.ndarray, str, np.ndarray]:
    """([k, F, 52] with seeds 0..k-1, the identity used, the head [k, F, 3])."""
    parts, heads, used = [], [], identity
    for first in range(0, k, BATCH):
        gen = talker.generate(audio, steps=steps, seed=first, identity=identity,
                              num_samples=min(BATCH, k - first), features=features, controls=controls)
        parts.append(gen.blendshapes)
        heads.append(gen.head)
        used = gen.identity
    return np.concatenate(parts), used, np.concatenate(heads)


def clip_controls(talker: Talker, steps: int, clip: TalkingClip) -> Controls:
    """The clip's own emotion when the model reads emotions, else the plain face."""
    return controls_for(clip.emotion, bool(talker.config(steps).emotions))


def sample_pairs(talker: Talker, steps: int, data, clips: list[TalkingClip], k: int):
    """Per clip: (the model's k samples, k truth draws of the upper face, both [k, F, 52], the
    model's heads [k, F, 3]) over the same frames."""
    style_of = styles(data)
    for clip in clips:
        audio = clip.load_audio()
        features, _ = talker.features(audio)
        samples, _, heads = model_samples(talker, steps, audio, features, k, clip.identity,
                                          clip_controls(talker, steps, clip))
        frames = min(len(samples[0]), clip.frames)
        yield (samples[:, :frames], truth_draws(clip.blendshapes[:frames], clip_phones(data, clip), audio,
                                                style_of[clip.identity], k, emotion=clip.emotion), heads[:, :frames])


def synthetic(talker: Talker, steps: int, data, clips: list[TalkingClip], k: int) -> dict:
    model_stats, truth_stats, model_frames, truth_frames = [], [], [], []
    for samples, truth, _ in sample_pairs(talker, steps, data, clips, k):
        model_stats.append(U.clip_statistics(samples))
        truth_stats.append(U.clip_statistics(truth))
        model_frames.append(samples.reshape(-1, samples.shape[-1]))
        truth_frames.append(truth.reshape(-1, truth.shape[-1]))
    model, truth = U.pooled(model_stats), U.pooled(truth_stats)
    m, t = np.concatenate(model_frames), np.concatenate(truth_frames)
    return {"model": model, "truth": truth, **U.against_truth(model, truth), "clips": len(clips), "samples": k,
            "w1": {g: U.w1(m, t, ch) for g, ch in U.CHANNEL_GROUPS.items()}}


def style_labels(talker: Talker, steps: int, data, clips: list[TalkingClip], k: int) -> dict:
    """Every library identity forced on the same clips: blink and brow-raise rates per style."""
    from scipy.stats import spearmanr
    style_of = styles(data)
    names = [n for n in talker.identities() if n in style_of]
    rows = {}
    audios = [c.load_audio() for c in clips]
    cached = [(audio, talker.features(audio)[0]) for audio in audios]
    for name in names:
        stats = [U.clip_statistics(model_samples(talker, steps, audio, feats, k, name)[0]) for audio, feats in cached]
        pooled = U.pooled(stats)
        rows[name] = {"style_blink_rate": style_of[name].blink_rate, "blinks_per_minute": pooled["blinks_per_minute"],
                      "brow_activity": style_of[name].brow_activity,
                      "brow_raises_per_minute": pooled["brow_raises_per_minute"],
                      "busy_brows": "busy brows" in style_of[name].describe()}
    rho = spearmanr([r["style_blink_rate"] for r in rows.values()], [r["blinks_per_minute"] for r in rows.values()])
    busy = [r["brow_raises_per_minute"] for r in rows.values() if r["busy_brows"]]
    rest = [r["brow_raises_per_minute"] for r in rows.values() if not r["busy_brows"]]
    return {"identities": rows, "blink_spearman": float(rho.statistic),
            "brow_raises_busy": float(np.mean(busy)) if busy else float("nan"),
            "brow_raises_rest": float(np.mean(rest)) if rest else float("nan"), "clips": len(clips), "samples": k}


def real_validation(talker: Talker, steps: int, data, k: int) -> dict:
    """Real validation recordings: per matched style, the model's figures against its truth draws."""
    from experiments.realspeech.__main__ import aligned_recordings
    from experiments.realspeech.sources import DEFAULT_AUDIO_DIR
    style_of = styles(data)
    aligned, _, _ = aligned_recordings(DEFAULT_AUDIO_DIR, validation_only=True, tts_control=False)
    by_style: dict[str, tuple[list, list]] = {}
    for rec, audio, phones in aligned:
        features, _ = talker.features(audio)
        samples, identity, _ = model_samples(talker, steps, audio, features, k)
        truth = truth_draws(samples[0], phones, audio, style_of[identity], k)
        model_list, truth_list = by_style.setdefault(identity, ([], []))
        model_list.append(U.clip_statistics(samples))
        truth_list.append(U.clip_statistics(truth))
    out = {}
    for identity, (model_list, truth_list) in sorted(by_style.items()):
        model, truth = U.pooled(model_list), U.pooled(truth_list)
        out[identity] = {"model": model, "truth": truth, **U.against_truth(model, truth),
                         "recordings": len(model_list)}
    return out


def real_pooled(real: dict) -> dict:
    """Blinks a minute over every real recording, model and truth, and the minutes of face."""
    minutes = sum(v["model"]["minutes"] for v in real.values())
    count = lambda side: sum(v[side]["blinks_per_minute"] * v[side]["minutes"] for v in real.values())
    return {"model": count("model") / max(minutes, 1e-9), "truth": count("truth") / max(minutes, 1e-9),
            "minutes": minutes, "recordings": sum(v["recordings"] for v in real.values())}


def _chance(figures: dict) -> str:
    lo, hi = U.chance_range(figures["truth"]["blinks_per_minute"], figures["model"]["minutes"])
    rate = figures["model"]["blinks_per_minute"]
    return f"{_f(lo, 1)}-{_f(hi, 1)} ({'inside' if lo <= rate <= hi else 'outside'})"


def _f(v: float, digits: int = 3) -> str:
    return "-" if v != v else f"{v:.{digits}f}"


def markdown(results: dict) -> str:
    groups = list(U.CHANNEL_GROUPS)
    md = [f"`{results['command']}` on {results['data']} ({results['split']} split, {results['clips']} clips, "
          f"{results['samples']} seeds per clip against as many truth draws of the generator), {results['machine']}.",
          "",
          "Across-seed spread (std over samples, per frame and channel) of the model and of the truth, and their "
          "ratio (target 0.7-1.3 in every upper-face group); lips: the model's lip spread over its upper-face "
          "spread (target <= 0.25). Blinks: eyeBlink rising through 0.5, per minute of generated face; "
          "full: share of blinks peaking at >= 0.8 (target >= 80 %).", ""]
    rows = []
    for name, r in results["models"].items():
        s = r["synthetic"]
        rows.append([name, r["steps"], *(f"{_f(s['model']['spread'][g])} / {_f(s['truth']['spread'][g])}"
                                         + (f" ({_f(s['spread_ratio'][g], 2)}x)" if g in U.UPPER_GROUPS else "")
                                         for g in groups),
                     _f(s["lip_to_upper_spread"], 2),
                     f"{_f(s['model']['blinks_per_minute'], 1)} / {_f(s['truth']['blinks_per_minute'], 1)}",
                     _f(s["model"]["full_blink_share"], 2), _f(s["model"]["blink_peak"], 2),
                     f"{_f(s['model']['blink_seconds'], 2)} / {_f(s['truth']['blink_seconds'], 2)}",
                     f"{_f(s['model']['brow_raises_per_minute'], 1)} / {_f(s['truth']['brow_raises_per_minute'], 1)}"])
    md.append(table(["model", "steps", *(f"{g} spread model / truth" for g in groups), "lips / upper",
                     "blinks/min model / truth", "full blinks", "blink peak", "blink s model / truth",
                     "brow raises/min model / truth"], rows))
    md += ["", "Movement and distribution: temporal std (model / truth) and Wasserstein-1 of frame values.", ""]
    rows = [[name, r["steps"], *(f"{_f(r['synthetic']['model']['temporal'][g])} / "
                                 f"{_f(r['synthetic']['truth']['temporal'][g])}" for g in groups),
             *(_f(r["synthetic"]["w1"][g], 4) for g in groups)] for name, r in results["models"].items()]
    md.append(table(["model", "steps", *(f"{g} temporal std" for g in groups), *(f"{g} W1" for g in groups)], rows))
    md += ["", "Roughness: std of the frame-to-frame step, model / truth. Frame-level jitter left by the sampler "
           "shows here; spread and temporal std count it as liveliness.", ""]
    rows = [[name, r["steps"], *(f"{_f(s['model']['roughness'][g])} / {_f(s['truth']['roughness'][g])} "
                                 f"({_f(s['roughness_ratio'][g], 1)}x)" for g in groups)]
            for name, r in results["models"].items() for s in [r["synthetic"]] if "roughness_ratio" in s]
    md.append(table(["model", "steps", *(f"{g} roughness" for g in groups)], rows))
    for name, r in results["models"].items():
        if "styles" not in r:
            continue
        st = r["styles"]
        md += ["", f"**Style labels, {name}** ({st['clips']} clips x {st['samples']} seeds per identity, every "
               f"identity forced): Spearman of generated vs style blink rate {_f(st['blink_spearman'], 2)} (target "
               f">= 0.6); brow raises per minute, \"busy brows\" styles {_f(st['brow_raises_busy'], 1)}, others "
               f"{_f(st['brow_raises_rest'], 1)}."]
    for name, r in results["models"].items():
        if "real" not in r:
            continue
        md += ["", f"**Real validation recordings, {name}** (identity matched from the voice; truth: the matched "
               "style's draws on the recording's aligned phones; target blink rate 8-26/min and within 30 % of the "
               "style's, upper-face spread >= 0.7x):", ""]
        rows = [[ident, v["recordings"], _f(v["model"]["minutes"], 2), f"{_f(v['model']['blinks_per_minute'], 1)} / "
                 f"{_f(v['truth']['blinks_per_minute'], 1)}", _f(v["blink_rate_ratio"], 2), _chance(v),
                 *(_f(v["spread_ratio"][g], 2) for g in U.UPPER_GROUPS)] for ident, v in r["real"].items()]
        everyone = real_pooled(r["real"])
        rows.append(["all styles", everyone["recordings"], _f(everyone["minutes"], 2),
                     f"{_f(everyone['model'], 1)} / {_f(everyone['truth'], 1)}",
                     _f(everyone["model"] / everyone["truth"], 2), "", *([""] * len(U.UPPER_GROUPS))])
        md.append(table(["matched style", "recordings", "minutes of face (all seeds)", "blinks/min model / truth",
                         "ratio", "90 % of counts at the truth's rate", *(f"{g} spread ratio" for g in U.UPPER_GROUPS)],
                        rows))
        md += ["", "A style matched to a few short recordings has few blinks to count: the range is where 90 % "
               "of the rates fall for a face that blinks at exactly the truth's rate for as many minutes "
               "(Poisson; `core.evaluation.upper_face.chance_range`). A rate inside it is as close as that "
               "much face can show; \"all styles\" pools the blinks of every recording."]
    return "\n".join(md)


def chosen_entries(root: Path, models: list[str] | None) -> list[dict]:
    """The manifest entries of ``models`` (default: every shipped model); a checkpoint folder's own."""
    if is_checkpoint_folder(root):          # one run (validation of a training choice)
        return model_entries(root)
    return [m for m in read_manifest(root)["models"]
            if (not models and m.get("role", "shipped") == "shipped") or (models and m["name"] in models)]


def run(a) -> None:
    root = a.checkpoints
    if a.offer and (a.split != "val" or is_checkpoint_folder(root)):
        raise SystemExit("--offer decides what the page offers: it needs --split val and a folder with a manifest")
    from core.data.dataset import load_clips
    clips = pick(load_clips(a.data, (a.split,)), a.max_clips, seed=1)
    entries = chosen_entries(root, a.models)
    results = {"command": a.command_line, "data": str(a.data), "split": a.split, "clips": len(clips),
               "samples": a.samples, "machine": machine_description(), "models": {}}
    if a.json and a.models and Path(a.json).is_file():    # models measured before (same split) are kept
        before = json.loads(Path(a.json).read_text())
        if before.get("split") == a.split:
            results["models"] = {k: v for k, v in before["models"].items() if k not in a.models}
    for entry in sorted(entries, key=lambda e: -e["steps"]):
        talker = Talker.from_pretrained(root / entry["path"])
        steps = entry["steps"]
        res = {"steps": steps, "synthetic": synthetic(talker, steps, a.data, clips, a.samples)}
        if steps in a.style_steps:
            res["styles"] = style_labels(talker, steps, a.data, clips[: a.style_clips], a.style_samples)
        if a.real and steps in a.style_steps:
            res["real"] = real_validation(talker, steps, a.data, a.samples)
        results["models"][entry["name"]] = res
        results["models"] = dict(sorted(results["models"].items(), key=lambda kv: -kv[1]["steps"]))
        s = res["synthetic"]
        print(entry["name"], json.dumps({"spread_ratio": s["spread_ratio"], "blinks": (
            s["model"]["blinks_per_minute"], s["truth"]["blinks_per_minute"])}), flush=True)
        if a.json:                        # after every model: a long run keeps what it measured
            Path(a.json).write_text(json.dumps(results, indent=1, default=float))
    if a.offer:
        record_seed_checks(root, results["models"])
    if a.write:
        update_section(SECTION, "## Upper face against the generator's truth (the seed must matter)\n\n"
                       + markdown(results), a.results)
        print(f"wrote {a.results}")



def record_seed_checks(root: Path, results: dict) -> None:
    """Each student's :func:`seed_verdict` against the teacher (the model with the most steps,
    measured on the same validation clips) into its manifest entry's metrics (``seed_check``),
    which the page reads to offer only the step counts that keep the seed."""
    teacher = max(results, key=lambda name: results[name]["steps"])
    verdicts = {name: U.seed_verdict(r["synthetic"], None if name == teacher else results[teacher]["synthetic"])
                for name, r in results.items()}
    record_metrics(root, {name: {"seed_check": verdict} for name, verdict in verdicts.items()})
    for name, verdict in verdicts.items():
        print(name, json.dumps(verdict))


FOLLOW_LEVELS = (1 / 256, 4 / 256, 16 / 256, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0)


def follow(folder, data, clips: list[TalkingClip], levels=FOLLOW_LEVELS, seed: int = 0) -> dict:
    """Does x0-hat depend on x_t? Two truth draws of a clip differ only in the upper face; both
    are noised with the same noise to each level (share s of the model's steps), and the change of
    x0-hat is projected on the change of x0, per channel group: 1 = follows x_t fully, 0 = ignores
    it. A model of the data's conditional distribution follows at low noise (x_t shows which blink
    is happening) and lets go at high noise; one that learned the conditional mean never follows.

    Also, per level, how much noise x0-hat removes: its error over the error of x_t / alpha_t
    (doing nothing), for the upper face and the lips ("denoise upper", "denoise lips"; < 1 removes
    noise, > 1 adds error). What a sampler leaves in its last steps is what the model cannot remove
    there."""
    import torch
    from core.model.network import model_targets
    talker = Talker.from_pretrained(folder)
    model = talker.model(talker.steps_available[0])          # the network the talker samples with
    style_of = styles(data)
    parts = {**{g: U.CHANNEL_GROUPS[g] for g in U.UPPER_GROUPS}, "denoise upper": U.UPPER_CHANNELS, "denoise lips": U.CHANNEL_GROUPS["lips"]}
    sums = {level: {g: [0.0, 0.0] for g in parts} for level in levels}
    gen = torch.Generator().manual_seed(seed)
    for clip in clips:
        audio = clip.load_audio()
        features = torch.as_tensor(talker.features(audio)[0], dtype=torch.float32)[None]
        frames = min(features.shape[1], clip.frames)
        pair = truth_draws(clip.blendshapes[:frames], clip_phones(data, clip), audio, style_of[clip.identity], 2,
                           emotion=clip.emotion)
        x0 = model_targets(model, torch.as_tensor(pair))
        emotion = torch.as_tensor(clip_controls(talker, model.config.steps, clip).emotion_vector).expand(2, -1)
        cond = model.condition(features[:, :frames].expand(2, -1, -1),
                               torch.full((2,), model.identity_index(clip.identity)), emotion=emotion)
        noise = torch.randn((1, *x0.shape[1:]), generator=gen).expand(2, -1, -1)
        for level in levels:
            t = torch.full((2,), max(1, round(level * model.schedule.steps)))
            x_t = model.schedule.q_sample(x0, t, noise)
            with torch.no_grad():
                hat = model.denoise(x_t, t, cond)
            moved, wanted = hat[0] - hat[1], x0[0] - x0[1]
            naive = x_t / float(model.schedule.alpha[int(t[0])])
            for g, channels in parts.items():
                ch = list(channels)
                if g.startswith("denoise"):
                    sums[level][g][0] += float(((hat - x0)[..., ch] ** 2).sum())
                    sums[level][g][1] += float(((naive - x0)[..., ch] ** 2).sum())
                else:
                    sums[level][g][0] += float((moved[:, ch] * wanted[:, ch]).sum())
                    sums[level][g][1] += float((wanted[:, ch] ** 2).sum())
    return {level: {g: (num / max(den, 1e-12)) ** (0.5 if g.startswith("denoise") else 1.0)
                    for g, (num, den) in groups.items()} for level, groups in sums.items()}



def run_follow(a) -> None:
    """``follow``: print the follow ratios of one checkpoint on the corpus's val clips (JSON)."""
    from core.data.dataset import load_clips
    clips = pick(load_clips(a.data, ("val",)), a.max_clips, seed=1)
    out = follow(a.model, a.data, clips)
    for level, groups in out.items():
        print(json.dumps({"model": str(a.model), "noise_share": round(level, 4),
                          **{g: round(v, 3) for g, v in groups.items()}}))
