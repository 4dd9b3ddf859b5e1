"""``value-maps``: fit each model's eyelid value maps (:mod:`core.inference.value_maps`) and head
gain (:class:`core.inference.output_filter.HeadFilter`) and write them into its config.json, with
the noise temperature the model samples with (:func:`core.model.diffusion.noise_temperature`:
:data:`TEMPERATURE` for the students, which sample deterministically, and the eyelids' scale fitted
to the data's blink rate, :func:`fit_blink_scale`; the maps are fitted on what the model gives
with it).

Both are fitted on the model's own output, made without them, against the generator's truth draws
of the same clips, on validation clips that no decision figure uses (the ``upper-face`` and
``performance`` runs pick theirs with :func:`~experiments.evaluate.tables.pick`, seed 1). Not on
train clips: there a model partly remembers its training head, its samples vary less, and gains
fitted there came out 20-30 % too large on other clips (docs/DECISIONS.md "The head filter,
second try").
"""
from __future__ import annotations

import json

import numpy as np

from core.arkit import ARKIT_NAMES
from core.evaluation import head_motion as H
from core.evaluation import upper_face as U
from core.head_pose import HEAD_NAMES
from core.inference import value_maps as V
from core.inference.talker import Talker
from core.model.checkpoint import CONFIG_NAME
from core.model.diffusion import TEMPERATURE_KEY
from core.model.manifest import build_manifest, is_checkpoint_folder
from experiments.evaluate.performance import truth_heads
from experiments.evaluate.tables import pick
from experiments.evaluate.upper_face import chosen_entries, sample_pairs, styles

DECISION_PICKS = (8, 12, 24)        # the clip counts the val decision runs pick (seed 1): never fitted on
# x_T's scale per channel group of a deterministic (DDIM) student, chosen on the 8 val decision
# clips with distilled-8 (docs/DECISIONS.md "Noise temperature"): the lips' seed noise is error
# (the data's lips follow the phones alone), squint spread too much, brows and gaze too little.
TEMPERATURE = {"lips": 0.5, "squint": 0.7, "brows": 1.2, "eye look": 1.3}
# The eyelids' scale sets how often blinks start, and by how much differs from student to student
# (distilled-8's 0.9 gave distilled-1 16.2 blinks a minute against the data's 20.9 on the val
# decision clips): fitted per model, by bisection between these bounds, to the data's blink rate
# on the fitting clips.
BLINK_SCALES = (0.75, 1.15)
BLINK_SEARCH = 4                  # bisection steps: the scale to 0.025


def temperature_for(sampler: str, blinks: float = 1.0) -> dict[str, float]:
    """{ARKit channel: scale} of a model with ``sampler``: :data:`TEMPERATURE` and the eyelids'
    ``blinks`` for a deterministic one; none for an ancestral teacher, whose every step draws
    fresh noise."""
    if sampler != "ddim":
        return {}
    scales = {**TEMPERATURE, "blinks": blinks}
    return {ARKIT_NAMES[c]: scale for group, scale in scales.items() for c in U.CHANNEL_GROUPS[group]}


def blink_rate(samples: list[np.ndarray]) -> float:
    """Blinks a minute over clips of samples [K, F, 52]."""
    return U.pooled([U.clip_statistics(s) for s in samples])["blinks_per_minute"]


def fit_blink_scale(sample_at) -> tuple[float, dict, tuple]:
    """(the eyelids' scale whose blink rate comes nearest the truth's, the fit's record) and what
    ``sample_at(scale)`` -> (model samples, truth draws, heads), lists per clip, gave there. The
    rate rises with the scale: bisection over :data:`BLINK_SCALES`."""
    lo, hi = BLINK_SCALES
    best, truth_rate = None, None
    for _ in range(BLINK_SEARCH):
        scale = round((lo + hi) / 2, 4)
        made = sample_at(scale)
        truth_rate = blink_rate(made[1]) if truth_rate is None else truth_rate     # the same draws each time
        rate = blink_rate(made[0])
        if best is None or abs(rate - truth_rate) < abs(best[1] - truth_rate):
            best = (scale, rate, made)
        lo, hi = (scale, hi) if rate < truth_rate else (lo, scale)
    scale, rate, made = best
    return scale, {"blink_scale": scale, "blinks_per_minute": round(rate, 2),
                   "truth_blinks_per_minute": round(truth_rate, 2)}, made


def fitting_clips(data, count: int) -> list:
    """``count`` validation clips outside every decision pick."""
    from core.data.dataset import load_clips
    val = load_clips(data, ("val",))
    used = {c.id for n in DECISION_PICKS for c in pick(val, n, seed=1)}
    return pick([c for c in val if c.id not in used], count, seed=2)


def blink_peaks(samples: list[np.ndarray]) -> np.ndarray:
    """The peak of every blink in clips of samples [K, F, 52]: what the eyelid maps match
    (docs/DECISIONS.md "Blink depth": matching the frame values instead leaves shallow blinks
    on the data's flanks)."""
    return np.array([peak for clip in samples for sample in clip for peak, _ in U.blinks(sample)])


def head_gain(model_heads: list[np.ndarray], truth_heads_: list[np.ndarray]) -> list[float] | None:
    """Per axis, the gain that gives the model's head the truth's amplitude (std over time); None
    for a model whose head never moves. Matching the across-seed spread instead gave heads that
    move 1.6x as much as the data's (docs/DECISIONS.md "The head filter, second try")."""
    model = H.pooled([H.clip_statistics(h) for h in model_heads])
    truth = H.pooled([H.clip_statistics(h) for h in truth_heads_])
    if any(model["amplitude"][name] <= 0 for name in HEAD_NAMES):
        return None
    return [round(float(truth["amplitude"][name] / model["amplitude"][name]), 4) for name in HEAD_NAMES]


def run(a) -> None:
    root = a.checkpoints
    clips = fitting_clips(a.data, a.max_clips)
    style_of = styles(a.data)
    for entry in chosen_entries(root, a.models):
        folder, steps = root / entry["path"], entry["steps"]
        talker = Talker.from_pretrained(folder)
        model_config = talker.model(steps).config
        extra = model_config.extra
        for key in V.FITTED_KEYS:                        # fitted on the model's own values
            extra.pop(key, None)

        def sample_at(blinks: float):                    # ... as it samples them, with the eyelids' scale
            extra[TEMPERATURE_KEY] = temperature_for(model_config.sampler, blinks)
            return tuple(map(list, zip(*sample_pairs(talker, steps, a.data, clips, a.samples))))

        if model_config.sampler == "ddim":
            blinks, record, (curves, truth, heads) = fit_blink_scale(sample_at)
        else:
            blinks, record, (curves, truth, heads) = 1.0, {}, sample_at(1.0)
        temperature = temperature_for(model_config.sampler, blinks)
        head_truth = [truth_heads(clip, a.data, style_of[clip.identity], a.samples, h.shape[1])
                      for clip, h in zip(clips, heads)]
        maps = [V.fit(name, blink_peaks(curves), blink_peaks(truth), anchor) for name, anchor in V.MAPPED.items()]
        config = json.loads((folder / CONFIG_NAME).read_text())
        config["extra"]["value_maps"] = [m.as_dict() for m in maps]
        config["extra"].pop(TEMPERATURE_KEY, None)
        if temperature:
            config["extra"][TEMPERATURE_KEY] = temperature
        gain = head_gain(heads, head_truth) if config.get("head_channels") else None
        config["extra"].pop("head_gain", None)
        if gain:
            config["extra"]["head_gain"] = gain
        config["extra"]["value_maps_fit"] = {"split": "val, outside the decision picks", "clips": len(clips),
                                             "samples": a.samples, **record}
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2))
        print(entry["name"], "fitted on", len(clips), "val clips x", a.samples, "samples; head gain", gain,
              json.dumps(record), flush=True)
    if not is_checkpoint_folder(root):
        build_manifest(root)
