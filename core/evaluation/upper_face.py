"""Is the generated upper face distributed as the data's? Statistics of K samples of one clip.

The corpus generator draws the upper face (blinks, brow raises, gaze) at random for given phones,
audio and style (:mod:`core.data.upper_face`), so for a synthetic clip its true conditional
distribution is known: draw it again with fresh randomness. A model that learned the
conditional *mean* has the right average and no spread and never blinks; these statistics show
that where a mean error cannot:

- ``spread``: the across-sample standard deviation (per frame and channel, averaged) of a
  channel group; the model's over the truth's is the ratio to read;
- ``blinks``: events where eyeBlink (mean of both eyes) rises through 0.5, with their peak and
  their time above 0.5;
- ``brow raises``: browInnerUp rising through 0.1, per minute;
- ``temporal std``: each channel's standard deviation over time (how much it moves at all);
- ``roughness``: the standard deviation of each channel's frame-to-frame step: frame-level jitter
  (noise the sampler left in) shows here while spread and temporal std read it as liveliness;
- ``w1``: Wasserstein-1 distance between the pooled frame values of model and truth, per channel,
  averaged over the group;
- ``chance_range``: the blink rates a face blinking at exactly a given rate shows over so many
  minutes 90 % of the time: what a rate from a few short recordings can be read against.
"""
from __future__ import annotations

import numpy as np

from core.arkit import ARKIT_NAMES, INDEX, LIP_INDICES
from core.rates import FPS

BLINK_LEVEL = 0.5        # eyeBlink rising through this counts a blink
FULL_BLINK = 0.8         # a blink whose peak reaches this closes the eye
BROW_LEVEL = 0.1         # browInnerUp rising through this counts a brow raise


def _channels(prefixes: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(i for i, n in enumerate(ARKIT_NAMES) if n.startswith(prefixes))


CHANNEL_GROUPS: dict[str, tuple[int, ...]] = {
    "blinks": _channels(("eyeBlink",)),
    "brows": _channels(("brow",)),
    "eye look": _channels(("eyeLook",)),
    "squint": _channels(("eyeSquint", "eyeWide")),
    "lips": tuple(LIP_INDICES),
}
UPPER_GROUPS = ("blinks", "brows", "eye look", "squint")
UPPER_CHANNELS = tuple(sorted({c for g in UPPER_GROUPS for c in CHANNEL_GROUPS[g]}))


def spread(samples: np.ndarray, channels) -> float:
    """Across-sample std of samples [K, F, 52] on ``channels``, averaged over frames and channels."""
    return float(samples[..., list(channels)].std(axis=0).mean())


def temporal_std(samples: np.ndarray, channels) -> float:
    """Std over time of each channel, averaged over samples and channels."""
    return float(samples[..., list(channels)].std(axis=1).mean())


def roughness(samples: np.ndarray, channels) -> float:
    """Std over time of each channel's frame-to-frame step, averaged over samples and channels."""
    return float(np.diff(samples[..., list(channels)], axis=1).std(axis=1).mean())


def _rises(signal: np.ndarray, level: float) -> np.ndarray:
    """Frame indices where ``signal`` goes from below ``level`` to at or above it."""
    above = signal >= level
    return np.flatnonzero(above[1:] & ~above[:-1]) + 1


def blinks(curves: np.ndarray, fps: int = FPS) -> list[tuple[float, float]]:
    """(peak, seconds above BLINK_LEVEL) of every blink in curves [F, 52]."""
    eye = curves[:, [INDEX["eyeBlinkLeft"], INDEX["eyeBlinkRight"]]].mean(-1)
    events = []
    for start in _rises(eye, BLINK_LEVEL):
        below = np.flatnonzero(eye[start:] < BLINK_LEVEL)
        end = start + (int(below[0]) if below.size else len(eye) - start)
        events.append((float(eye[start:end].max()), (end - start) / fps))
    return events


def brow_raises(curves: np.ndarray) -> int:
    return int(_rises(curves[:, INDEX["browInnerUp"]], BROW_LEVEL).size)


def w1(a: np.ndarray, b: np.ndarray, channels) -> float:
    """Wasserstein-1 distance of the frame values of a and b [..., 52], per channel, averaged."""
    from scipy.stats import wasserstein_distance
    return float(np.mean([wasserstein_distance(a[..., c].ravel(), b[..., c].ravel()) for c in channels]))


def clip_statistics(samples: np.ndarray, fps: int = FPS) -> dict:
    """Raw sums of one clip's K samples [K, F, 52], to pool over clips with :func:`pooled`."""
    events = [e for s in samples for e in blinks(s, fps)]
    return {"minutes": samples.shape[0] * samples.shape[1] / fps / 60, "samples": samples.shape[0],
            "spread": {g: spread(samples, ch) for g, ch in CHANNEL_GROUPS.items()},
            "temporal": {g: temporal_std(samples, ch) for g, ch in CHANNEL_GROUPS.items()},
            "roughness": {g: roughness(samples, ch) for g, ch in CHANNEL_GROUPS.items()},
            "blinks": len(events), "full_blinks": sum(p >= FULL_BLINK for p, _ in events),
            "blink_peak": sum(p for p, _ in events), "blink_seconds": sum(d for _, d in events),
            "brow_raises": sum(brow_raises(s) for s in samples)}


def pooled(stats: list[dict]) -> dict:
    """Clip statistics pooled: group means over clips, rates per minute over all samples."""
    minutes = sum(s["minutes"] for s in stats)
    count = sum(s["blinks"] for s in stats)
    return {"spread": {g: float(np.mean([s["spread"][g] for s in stats])) for g in CHANNEL_GROUPS},
            "temporal": {g: float(np.mean([s["temporal"][g] for s in stats])) for g in CHANNEL_GROUPS},
            "roughness": {g: float(np.mean([s["roughness"][g] for s in stats])) for g in CHANNEL_GROUPS},
            "blinks_per_minute": count / max(minutes, 1e-9),
            "full_blink_share": sum(s["full_blinks"] for s in stats) / count if count else float("nan"),
            "blink_peak": sum(s["blink_peak"] for s in stats) / count if count else float("nan"),
            "blink_seconds": sum(s["blink_seconds"] for s in stats) / count if count else float("nan"),
            "brow_raises_per_minute": sum(s["brow_raises"] for s in stats) / max(minutes, 1e-9),
            "minutes": minutes}


def against_truth(model: dict, truth: dict) -> dict:
    """The figures the targets are read from: the model's pooled statistics beside the truth's."""
    ratio = {g: model["spread"][g] / max(truth["spread"][g], 1e-12) for g in CHANNEL_GROUPS}
    upper = float(np.mean([model["spread"][g] for g in UPPER_GROUPS]))
    return {"spread_ratio": ratio,
            "roughness_ratio": {g: model["roughness"][g] / max(truth["roughness"][g], 1e-12) for g in CHANNEL_GROUPS}, "lip_to_upper_spread": model["spread"]["lips"] / max(upper, 1e-12),
            "blink_rate_ratio": model["blinks_per_minute"] / max(truth["blinks_per_minute"], 1e-12)}


def chance_range(per_minute: float, minutes: float, share: float = 0.9) -> tuple[float, float]:
    """The blink rates (per minute) that ``share`` of all counts fall between when blinks come at
    exactly ``per_minute`` over ``minutes`` of face, at random (Poisson; the central interval).
    Why: a real recording gives a style a few blinks; 0.3 minutes at 20 a minute is 6 of them, and
    a count that small misses +-30 % by chance more often than not."""
    from scipy.stats import poisson
    if minutes <= 0:
        return float("nan"), float("nan")
    expected, tail = per_minute * minutes, (1 - share) / 2
    return float(poisson.ppf(tail, expected)) / minutes, float(poisson.ppf(1 - tail, expected)) / minutes


# A step count is offered on the page only if its samples still vary as its teacher's do: on the
# validation clips, the blinks' and brows' across-seed spread and the blink rate, each over the
# generator's truth, at least this share of the teacher's (docs/DECISIONS.md "The seed must matter").
SEED_FLOOR = 0.5
SEED_CHECKS = (("blinks", "blink spread"), ("brows", "brow spread"))


def _seed_ratios(figures: dict) -> dict[str, float]:
    ratios = {label: figures["spread_ratio"][group] for group, label in SEED_CHECKS}
    ratios["blink rate"] = figures["blink_rate_ratio"]
    return ratios


def seed_verdict(figures: dict, teacher: dict | None = None) -> dict:
    """Whether a student keeps its teacher's seed, from :func:`against_truth`'s figures of both on
    the same validation clips (``teacher=None``: the teacher itself, always offered):
    ``{"offered": bool, "why": str, "ratios": {...}}``, ratios student / teacher; ``why`` names what
    fell short, as a page can say it."""
    own = _seed_ratios(figures)
    if teacher is None:
        return {"offered": True, "why": "", "ratios": {k: round(float(v), 3) for k, v in own.items()}}
    reference = _seed_ratios(teacher)
    ratios = {k: own[k] / reference[k] if reference[k] > 0 else float("nan") for k in own}
    short = [f"{label} {ratio:.2f}x" for label, ratio in ratios.items() if not ratio >= SEED_FLOOR]
    why = (f"its upper face varies less across seeds than the teacher's ({', '.join(short)} the teacher's; "
           f"at least {SEED_FLOOR}x is needed)") if short else ""
    return {"offered": not short, "why": why, "ratios": {k: round(float(v), 3) for k, v in ratios.items()}}
