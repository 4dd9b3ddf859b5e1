"""``value-maps``: set each model's noise temperature (:mod:`experiments.evaluate.temperature_fit`,
for the distilled students, which sample deterministically), then fit its eyelid value maps
(:mod:`core.inference.value_maps`) and head gain (:class:`core.inference.output_filter.HeadFilter`)
on what it gives with it, and write all three into its config.json. ``--head-gain-only`` refits the
head gain alone, on the model sampled with the temperature it has; its temperature and maps are
kept as they are (the maps touch only the curves, the gain only the head).

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

from core.arkit import INDEX
from core.evaluation import head_motion as H
from core.evaluation import upper_face as U
from core.head_pose import HEAD_NAMES
from core.inference import value_maps as V
from core.inference.talker import Talker
from core.model.checkpoint import CONFIG_NAME
from core.model.diffusion import TEMPERATURE_KEY
from core.model.manifest import build_manifest, is_checkpoint_folder
from experiments.evaluate import temperature_fit as T
from experiments.evaluate.performance import truth_heads
from experiments.evaluate.tables import pick
from experiments.evaluate.upper_face import chosen_entries, sample_pairs, styles

DECISION_PICKS = (8, 12, 24)        # the clip counts the val decision runs pick (seed 1): never fitted on


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


def eyelid_maps(curves: list[np.ndarray], truth: list[np.ndarray]) -> list[V.ValueMap]:
    """The eyelids' maps, model onto truth (clips of samples [K, F, 52]): above the blink level
    fitted on blink peaks, below it on frame values (:func:`core.inference.value_maps.fit`)."""
    def frames(clips: list[np.ndarray], name: str) -> np.ndarray:
        return np.concatenate([clip[..., INDEX[name]].ravel() for clip in clips])
    peaks = blink_peaks(curves), blink_peaks(truth)          # a blink is counted on both lids: one set for each
    return [V.fit(name, *peaks, anchor, below=(frames(curves, name), frames(truth, name)))
            for name, anchor in V.MAPPED.items()]


def with_eyelid_maps(curves: list[np.ndarray], truth: list[np.ndarray]) -> list[np.ndarray]:
    """``curves`` as the model delivers them once its eyelid maps are fitted on them."""
    maps = tuple(eyelid_maps(curves, truth))
    return [V.apply(clip.copy(), maps) for clip in curves]


# The least across-seed spread of a head axis, over the truth's, that its gain must give. The
# model ties its roll to the speech more than the data does, so the amplitude's gain left the roll's
# spread at 0.71-0.72x on the val decision clips, the edge of the 0.7-1.3x band, and under it on other
# clip sets (docs/DECISIONS.md "The head's roll: a spread floor").
SPREAD_FLOOR = 0.8


def head_gain(model_heads: list[np.ndarray], truth_heads_: list[np.ndarray]) -> list[float] | None:
    """Per axis, the gain that gives the model's head the truth's amplitude (std over time), raised
    where that would leave its across-seed spread under :data:`SPREAD_FLOOR` of the truth's; None
    for a model whose head never moves. Matching the spread on every axis instead gave heads that
    move 1.6x as much as the data's (docs/DECISIONS.md "The head filter, second try")."""
    model = H.pooled([H.clip_statistics(h) for h in model_heads])
    truth = H.pooled([H.clip_statistics(h) for h in truth_heads_])
    if any(model["amplitude"][name] <= 0 for name in HEAD_NAMES):
        return None
    gains = []
    for name in HEAD_NAMES:
        gain = truth["amplitude"][name] / model["amplitude"][name]
        if model["spread"][name] > 0:
            gain = max(gain, SPREAD_FLOOR * truth["spread"][name] / model["spread"][name])
        gains.append(round(float(gain), 4))
    return gains


def run(a) -> None:
    root = a.checkpoints
    clips = fitting_clips(a.data, a.max_clips)
    style_of = styles(a.data)
    for entry in chosen_entries(root, a.models):
        folder, steps = root / entry["path"], entry["steps"]
        talker = Talker.from_pretrained(folder)
        model_config = talker.model(steps).config
        extra = model_config.extra
        fitted = {key: extra.pop(key) for key in V.FITTED_KEYS if key in extra}   # fitted on the model's own values

        def sample_at(scales: dict[str, float] | None):  # ... as it samples them, with these x_T scales
            extra.pop(TEMPERATURE_KEY, None)
            if scales:
                extra[TEMPERATURE_KEY] = scales
            return tuple(map(list, zip(*sample_pairs(talker, steps, a.data, clips, a.samples))))

        config = json.loads((folder / CONFIG_NAME).read_text())
        if a.head_gain_only:                           # temperature and maps kept; sampled with its temperature
            _, _, heads = sample_at(fitted.get(TEMPERATURE_KEY))
            record = {}
        else:
            if model_config.sampler == "ddim":         # an ancestral teacher draws fresh noise every step
                temperature, record, (curves, truth, heads) = T.fit(sample_at, delivered=with_eyelid_maps)
            else:
                temperature, record, (curves, truth, heads) = {}, {}, sample_at(None)
            config["extra"]["value_maps"] = [m.as_dict() for m in eyelid_maps(curves, truth)]
            config["extra"].pop(TEMPERATURE_KEY, None)
            if temperature:
                config["extra"][TEMPERATURE_KEY] = temperature
            config["extra"]["value_maps_fit"] = {"split": "val, outside the decision picks", "clips": len(clips),
                                                 "samples": a.samples, **record}
        head_truth = [truth_heads(clip, a.data, style_of[clip.identity], a.samples, h.shape[1])
                      for clip, h in zip(clips, heads)]
        gain = head_gain(heads, head_truth) if config.get("head_channels") else None
        config["extra"].pop("head_gain", None)
        if gain:
            config["extra"]["head_gain"] = gain
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2))
        print(entry["name"], "fitted on", len(clips), "val clips x", a.samples, "samples; head gain", gain,
              json.dumps(record), flush=True)
    if not is_checkpoint_folder(root):
        build_manifest(root)
