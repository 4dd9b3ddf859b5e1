"""``performance``: head motion and emotion of every shipped model (a whole performance).

- Head motion, synthetic clips: K seeds of the model (the clip's identity and emotion) against K
  truth draws of the generator's head process (core/data/head_motion.py) for the same clip:
  across-seed spread, amplitude, speed, nods per minute, the share of frames faster than
  core.head_pose.MAX_SPEED (core/evaluation/head_motion.py).
- Emotion: a classifier fitted on the generator's labelled curves of the train split
  (core/evaluation/emotion.py) names the emotion of the model's clips generated with each emotion
  at intensities 0.5 and 1 (share recognised; target >= 90 %), and its probability for the asked
  emotion along intensity 0 .. 1 (monotonic?). Neutral against the previous release: how far the
  plain face moved, beside how far happy at 1 moves it.
- Lips under emotion, real speech (``--real``): lip AUC and p/b/m closure of the 8-step model with
  each emotion at intensity 1 against neutral, on the validation part (targets: within 0.02 and
  0.05) and on the test part (reported only).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.data.clip import TalkingClip
from core.data.head_motion import head_motion
from core.emotion import EMOTIONS, NEUTRAL
from core.evaluation import head_motion as H
from core.evaluation.emotion import EmotionClassifier, clip_features
from core.head_pose import HEAD_NAMES, MAX_SPEED
from core.inference.controls import Controls
from core.inference.talker import Talker
from core.model.manifest import read_manifest
from experiments.evaluate.tables import pick
from experiments.evaluate.upper_face import clip_controls, clip_phones, model_samples, styles
from experiments.report import machine_description, table, update_section

SECTION = "performance"
RECOGNITION_INTENSITIES = (0.5, 1.0)
INTENSITY_LADDER = (0.0, 0.25, 0.5, 0.75, 1.0)


def truth_heads(clip: TalkingClip, data, style, k: int, frames: int, seed: int = 20_000) -> np.ndarray:
    """[k, F, 3]: the generator's head motion for the clip drawn anew k times."""
    phones, audio = clip_phones(data, clip), clip.load_audio()
    return np.stack([head_motion(phones, audio, frames, style, np.random.default_rng([seed, i]), *clip.emotion)
                     for i in range(k)])


def head_figures(talker: Talker, steps: int, data, clips: list[TalkingClip], k: int) -> dict:
    style_of = styles(data)
    model_stats, truth_stats = [], []
    for clip in clips:
        audio = clip.load_audio()
        features, _ = talker.features(audio)
        _, _, heads = model_samples(talker, steps, audio, features, k, clip.identity, clip_controls(talker, steps, clip))
        frames = min(heads.shape[1], clip.frames)
        model_stats.append(H.clip_statistics(heads[:, :frames]))
        truth_stats.append(H.clip_statistics(truth_heads(clip, data, style_of[clip.identity], k, frames)))
    model, truth = H.pooled(model_stats), H.pooled(truth_stats)
    return {"model": model, "truth": truth, **H.against_truth(model, truth), "clips": len(clips), "samples": k}


def fit_classifier(data) -> EmotionClassifier:
    """On the train split's own curves, with the generator's labels (clips of intensity < 0.3 left out:
    too faint to name)."""
    from core.data.dataset import load_clips
    clips = [c for c in load_clips(data, ("train",)) if c.emotion[0] == NEUTRAL or c.emotion[1] >= 0.3]
    return EmotionClassifier.fit(np.stack([clip_features(c.blendshapes) for c in clips]),
                                 [c.emotion[0] for c in clips])


def emotion_figures(talker: Talker, steps: int, clips: list[TalkingClip], classifier: EmotionClassifier,
                    previous: Talker | None = None) -> dict:
    """Recognition per emotion and intensity, the classifier's probability along the intensity
    ladder, and neutral against the previous release."""
    recognised: dict[str, dict[str, float]] = {}
    ladder: dict[str, list[float]] = {}
    plain_moved, happy_moved = [], []
    for emotion in EMOTIONS:
        probabilities = {i: [] for i in INTENSITY_LADDER}
        hits = {i: [] for i in RECOGNITION_INTENSITIES}
        for clip in clips:
            audio = clip.load_audio()
            features, _ = talker.features(audio)
            levels = INTENSITY_LADDER if emotion != NEUTRAL else (1.0,)
            for level in levels:
                gen = talker.generate(audio, steps=steps, identity=clip.identity, features=features,
                                      controls=Controls(emotion, level))
                p = classifier.probabilities(clip_features(gen.blendshapes[0]))[0]
                probabilities[level].append(float(p[EMOTIONS.index(emotion)]))
                if level in hits:
                    hits[level].append(EMOTIONS[int(p.argmax())] == emotion)
                if emotion == NEUTRAL and previous is not None:
                    before = previous.generate(audio, steps=steps, identity=clip.identity, features=features)
                    plain_moved.append(float(np.abs(gen.blendshapes - before.blendshapes).mean()))
                if emotion == "happy" and level == 1.0:
                    plain = talker.generate(audio, steps=steps, identity=clip.identity, features=features)
                    happy_moved.append(float(np.abs(gen.blendshapes - plain.blendshapes).mean()))
        recognised[emotion] = {str(i): float(np.mean(v)) for i, v in hits.items() if v}
        ladder[emotion] = [float(np.mean(probabilities[i])) for i in INTENSITY_LADDER if probabilities[i]]
    strong = [v for e, r in recognised.items() for i, v in r.items() if float(i) >= 0.5]
    return {"recognised": recognised, "recognised_all": float(np.mean(strong)), "ladder": ladder,
            "monotonic": {e: bool(np.all(np.diff(v) >= -0.02)) for e, v in ladder.items() if len(v) > 1},
            "neutral_vs_previous": float(np.mean(plain_moved)) if plain_moved else None,
            "happy_vs_neutral": float(np.mean(happy_moved)) if happy_moved else None, "clips": len(clips)}


def lips_under_emotion(talker: Talker, steps: int) -> dict:
    """Real recordings: lip AUC and closure per emotion at intensity 1, on the validation part
    (the targets; decisions) and the test part (``"test"``: reported only)."""
    from experiments.realspeech.__main__ import aligned_recordings, measure, part_figures
    from experiments.realspeech.sources import DEFAULT_AUDIO_DIR, TEST
    aligned, _, _ = aligned_recordings(DEFAULT_AUDIO_DIR, tts_control=False)
    out = {}
    for emotion in EMOTIONS:
        results = measure(talker, aligned, [steps], verbose=False, controls=Controls(emotion, 1.0))
        out[emotion] = {**part_figures(results)[steps], "test": part_figures(results, TEST)[steps]}
    return out


def _f(v, digits: int = 2) -> str:
    return "-" if v is None or v != v else f"{v:.{digits}f}"


def markdown(results: dict) -> str:
    md = [f"`{results['command']}` on {results['data']} (test split), {results['machine']}.", "",
          f"**Head motion** ({results['head_clips']} clips x {results['samples']} seeds against as many truth draws "
          "of the generator's head process; degrees). Target: across-seed spread 0.7-1.3x the truth's; no "
          f"rotation faster than {np.degrees(MAX_SPEED):.0f} deg/s.", ""]
    rows = []
    for name, r in results["models"].items():
        h = r["head"]
        rows.append([name, r["steps"],
                     *(f"{_f(h['model']['spread'][n])} / {_f(h['truth']['spread'][n])} ({_f(h['spread_ratio'][n])}x)"
                       for n in HEAD_NAMES),
                     *(f"{_f(h['model']['amplitude'][n])} / {_f(h['truth']['amplitude'][n])}" for n in HEAD_NAMES),
                     f"{_f(h['model']['nods_per_minute'], 1)} / {_f(h['truth']['nods_per_minute'], 1)}",
                     f"{_f(np.mean(list(h['model']['speed'].values())), 1)} / "
                     f"{_f(np.mean(list(h['truth']['speed'].values())), 1)}",
                     f"{_f(max(h['model']['max_speed'].values()), 0)} / {_f(max(h['truth']['max_speed'].values()), 0)}",
                     f"{100 * h['model']['too_fast_share']:.2f} %"])
    md.append(table(["model", "steps", *(f"{n} spread model / truth" for n in HEAD_NAMES),
                     *(f"{n} amplitude" for n in HEAD_NAMES), "nods/min model / truth",
                     "mean deg/s model / truth", "fastest deg/s model / truth", "frames too fast"], rows))
    md += ["", f"**Emotion** ({results['emotion_clips']} clips, seed 0, the clip's identity; a classifier fitted on "
           "the train split's curves and labels names the emotion of each generated clip). Target: >= 90 % "
           "recognised at intensity >= 0.5.", ""]
    rows = []
    for name, r in results["models"].items():
        e = r["emotion"]
        rows.append([name, r["steps"], f"{100 * e['recognised_all']:.0f} %",
                     *(" / ".join(f"{100 * v:.0f}" for v in e["recognised"][emo].values()) for emo in EMOTIONS),
                     ", ".join(e for e, ok in e["monotonic"].items() if not ok) or "none",
                     _f(e["neutral_vs_previous"], 4), _f(e["happy_vs_neutral"], 4)])
    md.append(table(["model", "steps", "recognised (>= 0.5)",
                     *(f"{emo} % at " + ("1.0" if emo == NEUTRAL else "0.5 / 1.0") for emo in EMOTIONS),
                     "not monotonic in intensity", "neutral vs previous release (mean abs)",
                     "happy 1.0 vs neutral (mean abs)"], rows))
    for name, r in results["models"].items():
        if "lips" not in r:
            continue
        base = r["lips"][NEUTRAL]
        md += ["", f"**Lips under emotion, {name}** (real recordings, intensity 1; targets on the validation part: "
               "AUC within 0.02 and closure within 0.05 of neutral; the test part reported only):", ""]
        test = {emo: v.get("test") for emo, v in r["lips"].items()}
        md.append(table(["emotion", "lip AUC", "vs neutral", "closure", "vs neutral", "test: AUC vs neutral",
                         "test: closure vs neutral"],
                        [[emo, _f(v["auc"], 3), f"{v['auc'] - base['auc']:+.3f}", _f(v["closure"], 3),
                          f"{v['closure'] - base['closure']:+.3f}",
                          *((f"{_f(test[emo][k], 3)} ({test[emo][k] - test[NEUTRAL][k]:+.3f})" for k in ("auc", "closure"))
                            if test[emo] and test[NEUTRAL] else ("-", "-"))] for emo, v in r["lips"].items()]))
    return "\n".join(md)


def run(a) -> None:
    if a.report_only:                       # the section again from the figures of an earlier run
        results = json.loads(Path(a.json).read_text())
        update_section(SECTION, "## Head motion and emotion (a whole performance)\n\n" + markdown(results), a.results)
        print(f"wrote {a.results}")
        return
    from core.data.dataset import load_clips
    clips = load_clips(a.data, ("test",))
    head_clips, emotion_clips = pick(clips, a.max_clips, seed=1), pick(clips, a.emotion_clips, seed=2)
    classifier = fit_classifier(a.data)
    root = a.checkpoints
    entries = [m for m in read_manifest(root)["models"]
               if (not a.models and m.get("role", "shipped") == "shipped") or (a.models and m["name"] in a.models)]
    previous = Talker.from_pretrained(a.previous) if a.previous else None
    results = {"command": a.command_line, "data": str(a.data), "machine": machine_description(),
               "head_clips": len(head_clips), "emotion_clips": len(emotion_clips), "samples": a.samples, "models": {}}
    for entry in sorted(entries, key=lambda e: -e["steps"]):
        talker, steps = Talker.from_pretrained(root / entry["path"]), entry["steps"]
        before = previous if previous is not None and steps in previous.steps_available else None
        res = {"steps": steps, "head": head_figures(talker, steps, a.data, head_clips, a.samples),
               "emotion": emotion_figures(talker, steps, emotion_clips, classifier, before)}
        if a.real and steps == a.lips_steps:
            res["lips"] = lips_under_emotion(talker, steps)
        results["models"][entry["name"]] = res
        print(entry["name"], json.dumps({"head_spread_ratio": res["head"]["spread_ratio"],
                                         "recognised": res["emotion"]["recognised_all"]}), flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=1, default=float))
    update_section(SECTION, "## Head motion and emotion (a whole performance)\n\n" + markdown(results), a.results)
    print(f"wrote {a.results}")
