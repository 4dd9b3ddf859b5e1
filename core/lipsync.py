"""Lip-sync metrics against phone labels: is the mouth open on open vowels, shut on p/b/m?

Every animation frame (30 fps) gets the phone under its centre (:func:`frame_labels`); the
frames inside open vowels (aa ae ah ao aw ay) and bilabials (p b m) are scored by how open the
curves say the mouth is (:func:`mouth_scores`, or the loudness of the audio as a no-model
baseline, :func:`frame_loudness`), and :func:`auc` gives the chance that a random open-vowel
frame scores above a random bilabial one (ties count 1/2). :func:`separation` pools recordings
and adds a 95 % bootstrap interval over them. ARKit's ``mouthClose`` means "lips together
despite an open jaw", so the lip aperture is ``jawOpen - mouthClose``.
"""
from __future__ import annotations

import numpy as np

from core.arkit import INDEX
from core.data.tts import Phone
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


def separation(rows: list[dict], score_names, resamples: int = 1000, seed: int = 0) -> dict[str, tuple]:
    """Pooled AUC per score over recordings, with a 95 % bootstrap interval over recordings.

    ``rows``: dicts with ``scores`` (name -> per-frame array) and ``labels``.
    Returns name -> (auc, low, high); the interval is NaN when fewer than 3 recordings.
    """
    pieces = []
    for row in rows:
        keep, is_open = open_vs_bilabial(row["labels"])
        pieces.append(({n: row["scores"][n][keep] for n in score_names}, is_open[keep]))

    def pooled(idx):
        positive = np.concatenate([pieces[i][1] for i in idx])
        return {n: auc(np.concatenate([pieces[i][0][n] for i in idx]), positive) for n in score_names}

    point = pooled(range(len(pieces)))
    boots = {n: [] for n in score_names}
    if len(pieces) >= 3:
        rng = np.random.default_rng(seed)
        for _ in range(resamples):
            try:
                for n, v in pooled(rng.integers(0, len(pieces), len(pieces))).items():
                    boots[n].append(v)
            except ValueError:       # a resample without one of the classes
                continue
    return {n: (point[n], *(np.percentile(boots[n], [2.5, 97.5]) if boots[n] else (np.nan, np.nan)))
            for n in score_names}

