"""The students' noise temperature fit (experiments/evaluate/temperature_fit.py): the gaze's
spread reaches its aim whatever the model's slope, and the eyelids' scale trades the blink rate
against the blinks' spread, each within its tolerance, instead of matching the rate alone."""
import math

import numpy as np
import pytest

from core.arkit import ARKIT_NAMES, INDEX
from core.evaluation import upper_face as U
from experiments.evaluate import temperature_fit as T

LOOK = [INDEX[n] for n in ARKIT_NAMES if n.startswith("eyeLook")]
EYES = [INDEX["eyeBlinkLeft"], INDEX["eyeBlinkRight"]]


def _blinks(rng, count: int, frames: int, width: float) -> np.ndarray:
    t = np.arange(frames)
    track = np.zeros(frames)
    for centre in rng.uniform(10, frames - 10, count):
        track += 0.95 * np.exp(-0.5 * ((t - centre) / width) ** 2)
    return np.clip(track, 0, 1)


def _sampler(seen: list, gaze_slope: float):
    """A model whose gaze spreads as its scale ** ``gaze_slope`` and whose blinks come at a rate
    that rises with the eyelids' scale, each 1.3 times as long as the data's (so at the data's rate
    they spread more than the data's)."""
    def sample_at(scales):
        seen.append(scales)
        rng = np.random.default_rng(0)                     # the same draws every pass
        k, frames = 4, 1800
        model, truth = np.zeros((2, k, frames, 52), np.float32)
        noise = rng.standard_normal((2, k, frames, len(LOOK)))
        model[..., LOOK] = 0.05 * scales["eyeLookUpLeft"] ** gaze_slope * noise[0]
        truth[..., LOOK] = 0.05 * noise[1]
        count = round(20 * scales["eyeBlinkLeft"] ** 3)
        for i in range(k):
            model[i][:, EYES] = _blinks(rng, count, frames, 2.6)[:, None]
            truth[i][:, EYES] = _blinks(rng, 20, frames, 2.0)[:, None]
        return [model], [truth], [np.zeros((k, frames, 3), np.float32)]
    return sample_at


@pytest.mark.parametrize("slope", [0.4, 1.0])
def test_fit_brings_the_gaze_to_its_aim_and_balances_the_eyelids(slope):
    seen = []
    scales, record, made = T.fit(_sampler(seen, slope))
    assert len(seen) == T.PASSES and scales == seen[-1]          # the samples returned were made with it
    assert all(s["jawOpen"] == T.FIXED["lips"] and s["eyeSquintLeft"] == 0.0 and s["eyeWideRight"] == 0.0
               and s["browInnerUp"] == T.FIXED["brows"] for s in seen)
    assert record["spread_ratios"]["eye look"] == pytest.approx(T.GAZE_SPREAD, rel=0.03)
    assert record["gaze_scale"] == pytest.approx(scales["eyeLookInLeft"]) and record["blink_scale"] == scales["eyeBlinkLeft"]
    model = U.pooled([U.clip_statistics(s) for s in made[0]])
    truth = U.pooled([U.clip_statistics(s) for s in made[1]])
    rate = model["blinks_per_minute"] / truth["blinks_per_minute"]
    spread = model["spread"]["blinks"] / truth["spread"]["blinks"]
    assert rate < 1 < spread                                     # neither matched alone: the two traded
    assert 1 / T.RATE_TOLERANCE < rate and spread < T.SPREAD_TOLERANCE
    rate_matched = _sampler([], slope)(T.channel_scales(T.GAZE_START, 1.0))     # the eyelids at the data's rate
    matched = [U.pooled([U.clip_statistics(s) for s in m]) for m in rate_matched[:2]]
    assert matched[0]["blinks_per_minute"] == pytest.approx(truth["blinks_per_minute"], rel=0.05)
    assert abs(T.eyelid_deviation(model, truth)) < 0.5 * abs(T.eyelid_deviation(*matched))


def test_secant_steps():
    assert T.secant([(1.0, math.log(0.8))]) == pytest.approx(math.exp(-math.log(0.8) / T.SLOPE))   # the prior slope
    # two points on spread = scale ** 0.5: one step lands on the aim
    history = [(1.0, 0.5 * math.log(1.0) - math.log(0.8)), (1.5, 0.5 * math.log(1.5) - math.log(0.8))]
    assert T.secant(history) == pytest.approx(0.8 ** 2)
    assert T.secant([(1.0, -10.0)]) == T.SCALES[1] and T.secant([(1.0, 10.0)]) == T.SCALES[0]   # bounded


def test_the_fit_reads_its_figures_on_the_curves_as_delivered():
    """The eyelids' value maps change the blinks' spread after sampling, so the fit measures what
    ``delivered`` makes of each pass's samples (here: lids halved) and returns the raw samples."""
    calls = []

    def halved(model, truth):
        calls.append(len(model))
        out = [m.copy() for m in model]
        for m in out:
            m[..., EYES] *= 0.5
        return out
    scales, record, made = T.fit(_sampler([], 1.0), delivered=halved)
    assert calls == [1] * T.PASSES
    shown = U.pooled([U.clip_statistics(s) for s in halved(made[0], made[1])])
    truth = U.pooled([U.clip_statistics(s) for s in made[1]])
    assert record["spread_ratios"]["blinks"] == pytest.approx(shown["spread"]["blinks"] / truth["spread"]["blinks"], rel=1e-3)
    raw = U.pooled([U.clip_statistics(s) for s in made[0]])
    assert raw["spread"]["blinks"] > 1.5 * shown["spread"]["blinks"]       # what it returns is as sampled
