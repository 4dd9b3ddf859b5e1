"""Lip-sync metrics against phone labels: is the mouth open on open vowels, shut on p/b/m?

Every animation frame (30 fps) gets the phone under its centre (:func:`frame_labels`); the
frames inside open vowels (aa ae ah ao aw ay) and bilabials (p b m) are scored by how open the
curves say the mouth is (:func:`mouth_scores`, or the loudness of the audio as a no-model
baseline, :func:`frame_loudness`), and :func:`auc` gives the chance that a random open-vowel
frame scores above a random bilabial one (ties count 1/2). ARKit's ``mouthClose`` means "lips
together despite an open jaw", so the lip aperture is ``jawOpen - mouthClose``.

:func:`closures` asks of every bilabial segment whether the lip aperture really shuts there
(the rule is in its docstring), :func:`closure_chance` what the same curve scores when shifted
in time (no timing left, same shape). :func:`separation` and :func:`closure_rate` pool
recordings, with 95 % bootstrap intervals from :func:`bootstrap` (recordings resampled within
each speaker; differences such as model minus loudness taken on the same resamples).
"""
from __future__ import annotations

import numpy as np

from core.arkit import INDEX
from core.data.phones import Phone
from core.rates import FPS, SAMPLE_RATE

OPEN_VOWELS = frozenset("aa ae ah ao aw ay".split())
BILABIALS = frozenset("p b m".split())


def frame_labels(phones: list[Phone], frames: int, fps: int = FPS) -> np.ndarray:
    """The phone under each animation frame's centre (``pau`` where none is)."""
    centres = (np.arange(frames) + 0.5) / fps
    labels = np.full(frames, "pau", dtype=object)
    for phone in phones:
        labels[(centres >= phone.start) & (centres < phone.end)] = phone.label
    return labels


def auc(scores, positive) -> float:
    """Probability that a random positive frame scores above a random negative one (ties = 1/2).

    The Mann-Whitney U statistic from ranks; ``positive`` is a boolean mask over ``scores``.
    """
    from scipy.stats import rankdata

    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs frames of both classes")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def frame_loudness(audio: np.ndarray, frames: int, fps: int = FPS, window_s: float = 0.05) -> np.ndarray:
    """RMS level in dB of a ``window_s`` window centred on each animation frame."""
    audio = np.asarray(audio, np.float64)
    half = int(window_s * SAMPLE_RATE / 2)
    padded = np.pad(audio, half)
    power = np.concatenate([[0.0], np.cumsum(padded ** 2)])
    centres = np.minimum(((np.arange(frames) + 0.5) * SAMPLE_RATE / fps).astype(int), len(audio))
    mean_power = (power[centres + 2 * half] - power[centres]) / (2 * half)
    return 10.0 * np.log10(mean_power + 1e-10)


def mouth_scores(curves: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame openness scores from ARKit curves [frames, 52]; higher = more open, always."""
    c = np.asarray(curves, np.float64)
    jaw = c[:, INDEX["jawOpen"]]
    press = 0.5 * (c[:, INDEX["mouthPressLeft"]] + c[:, INDEX["mouthPressRight"]]) + c[:, INDEX["mouthRollLower"]]
    return {"jawOpen": jaw, "lip aperture": jaw - c[:, INDEX["mouthClose"]], "lips pressed (-)": -press}


def open_vs_bilabial(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the frames that count: (inside an open vowel or a bilabial, is an open vowel)."""
    labels = np.asarray(labels, dtype=object)
    is_open = np.isin(labels, list(OPEN_VOWELS))
    return is_open | np.isin(labels, list(BILABIALS)), is_open


def pearson(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def bootstrap(statistic, units: int, strata=None, differences=(), resamples: int = 1000,
              seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """Value and 95 % percentile interval of every entry of ``statistic(indices)``.

    ``statistic`` maps an array of unit indices (with repeats) to ``{name: value}``; it may
    raise ``ValueError`` for a resample it cannot score (that resample is dropped). Units are
    drawn with replacement; with ``strata`` (one label per unit, e.g. its speaker) each stratum
    keeps its own count, so a resample has every speaker in the same share as the data and
    the interval says how much the result depends on *which* utterances each speaker gave.
    Each pair ``(a, b)`` in ``differences`` adds ``"a - b"``, computed on the same resamples
    (a paired interval). Intervals are NaN below 3 units, when every stratum holds a single unit,
    or when no resample can be scored.
    Returns ``name -> (value, low, high)``.
    """
    def with_differences(values):
        return {**values, **{f"{a} - {b}": values[a] - values[b] for a, b in differences}}

    point = with_differences(statistic(np.arange(units)))
    boots = {name: [] for name in point}
    groups = [np.arange(units)] if strata is None else [
        np.flatnonzero(np.asarray(strata, dtype=object) == s) for s in dict.fromkeys(strata)]
    if units >= 3 and max(len(g) for g in groups) > 1:     # else no resample differs from the data
        rng = np.random.default_rng(seed)
        for _ in range(resamples):
            idx = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
            try:
                values = with_differences(statistic(idx))
            except ValueError:
                continue
            for name, value in values.items():
                boots[name].append(value)
    return {name: (point[name], *(np.percentile(boots[name], [2.5, 97.5]) if boots[name] else (np.nan, np.nan)))
            for name in point}


def separation(rows: list[dict], score_names, baseline: str | None = None, strata=None,
               resamples: int = 1000, seed: int = 0) -> dict[str, tuple]:
    """Pooled open-vowel vs bilabial AUC per score over recordings, with 95 % bootstrap intervals.

    ``rows``: dicts with ``scores`` (name -> per-frame array) and ``labels``; ``strata`` as in
    :func:`bootstrap`. With a ``baseline`` score, every other score also gets
    ``"name - baseline"``: the paired difference of the AUCs and its interval.
    Returns name -> (auc, low, high); the interval is NaN when fewer than 3 recordings.
    """
    pieces = []
    for row in rows:
        keep, is_open = open_vs_bilabial(row["labels"])
        pieces.append(({n: row["scores"][n][keep] for n in score_names}, is_open[keep]))

    def pooled(idx):
        positive = np.concatenate([pieces[i][1] for i in idx])
        return {n: auc(np.concatenate([pieces[i][0][n] for i in idx]), positive) for n in score_names}

    differences = [(n, baseline) for n in score_names if baseline is not None and n != baseline]
    return bootstrap(pooled, len(pieces), strata, differences, resamples, seed)


# A bilabial segment counts as closed when the aperture, within the segment (widened by
# CLOSURE_TOLERANCE_S each side for alignment error and the 30 fps grid), dips to at most
# CLOSURE_SHUT (lips nearly together: aperture is in jawOpen units, and the corpus's own p/b/m
# reach 0), and the mouth opens by at least CLOSURE_OPENING more somewhere within
# CLOSURE_CONTEXT_S either side: a closing movement in speech, not a mouth resting shut (which
# also makes the dip at most half the opening around it). The opening condition was added after
# the validation part showed the corpus rules' own curves, shifted in time, "closing" 61 % of
# p/b/m by resting shut in pauses (38 % with it; unshifted 99-100 % either way).
CLOSURE_TOLERANCE_S = 0.05
CLOSURE_CONTEXT_S = 0.3
CLOSURE_SHUT = 0.1
CLOSURE_OPENING = 0.1
CHANCE_MIN_LAG_S = 0.5          # shifts shorter than this keep some of the real timing


def bilabial_segments(phones: list[Phone]) -> list[tuple[float, float]]:
    """(start, end) of every run of adjacent bilabial phones: ``m b`` in "number" is one closure."""
    segments = []
    for phone in phones:
        if phone.label not in BILABIALS:
            continue
        if segments and abs(phone.start - segments[-1][1]) < 1e-6:
            segments[-1] = (segments[-1][0], phone.end)
        else:
            segments.append((phone.start, phone.end))
    return segments


def closures(aperture, segments, fps: int = FPS) -> np.ndarray:
    """Per segment: does ``aperture`` (per frame, jawOpen units) shut there? See CLOSURE_*.

    The frames looked at are those whose centre lies within the segment widened by
    ``CLOSURE_TOLERANCE_S`` (at least the frame nearest its middle); the opening is the largest
    aperture with centre within ``CLOSURE_CONTEXT_S`` of the segment.
    """
    aperture = np.asarray(aperture, np.float64)
    centres = (np.arange(len(aperture)) + 0.5) / fps
    closed = np.zeros(len(segments), bool)
    for k, (start, end) in enumerate(segments):
        near = (centres >= start - CLOSURE_TOLERANCE_S) & (centres <= end + CLOSURE_TOLERANCE_S)
        if not near.any():
            near = np.abs(centres - (start + end) / 2) == np.abs(centres - (start + end) / 2).min()
        context = (centres >= start - CLOSURE_CONTEXT_S) & (centres <= end + CLOSURE_CONTEXT_S)
        dip, peak = aperture[near].min(), aperture[context | near].max()
        closed[k] = dip <= CLOSURE_SHUT and peak - dip >= CLOSURE_OPENING
    return closed


def closure_chance(aperture, segments, fps: int = FPS) -> float:
    """Closure rate of the same curve shifted in time: the mean over every circular shift of at
    least ``CHANCE_MIN_LAG_S`` (every non-zero shift for clips too short for that). The shape,
    level and rhythm of the curve stay; only its timing against the phones is lost. NaN when
    there is no segment."""
    aperture = np.asarray(aperture, np.float64)
    n = len(aperture)
    if not segments or n < 2:
        return float("nan")
    least = int(round(CHANCE_MIN_LAG_S * fps))
    lags = range(least, n - least + 1) if n - least + 1 > least else range(1, n)
    return float(np.mean([closures(np.roll(aperture, lag), segments, fps).mean() for lag in lags]))


def closure_rate(rows: list[dict], name: str, strata=None, resamples: int = 1000,
                 seed: int = 0) -> dict[str, tuple]:
    """Pooled closure rate of score ``name`` over bilabial segments, its chance level and their
    paired difference, each as (value, low, high) with a 95 % bootstrap interval.

    ``rows``: dicts with ``closure[name] = (closed per segment, chance rate)``; rows without a
    segment count for nothing. Keys: ``"closure"``, ``"chance"``, ``"closure - chance"``.
    """
    closed = [np.asarray(row["closure"][name][0], bool) for row in rows]
    chance = [row["closure"][name][1] if len(c) else 0.0 for row, c in zip(rows, closed)]

    def pooled(idx):
        segments = sum(len(closed[i]) for i in idx)
        if segments == 0:
            raise ValueError("no bilabial segment")
        return {"closure": sum(closed[i].sum() for i in idx) / segments,
                "chance": sum(chance[i] * len(closed[i]) for i in idx) / segments}

    return bootstrap(pooled, len(rows), strata, [("closure", "chance")], resamples, seed)
