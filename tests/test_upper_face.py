"""The seed must matter: v-prediction, the distillation targets and the upper-face statistics."""
import numpy as np
import pytest
import torch

from core.model import losses as L
from core.evaluation import upper_face as U
from core.arkit import INDEX, LIP_INDICES, NUM_BLENDSHAPES
from core.model.diffusion import NoiseSchedule, ScheduleConfig, make_generator
from tests.helpers import tiny_model


def test_v_output_gives_x0_exactly():
    s = NoiseSchedule(ScheduleConfig(steps=16))
    x0 = torch.randn(4, 7, 52, generator=make_generator(0), dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=make_generator(1), dtype=torch.float64)
    t = torch.tensor([1, 5, 11, 16])
    x_t = s.q_sample(x0, t, eps)
    v = s._gather(s.alpha, t, x0) * eps - s._gather(s.sigma, t, x0) * x0
    torch.testing.assert_close(s.x0_from_output(v, x_t, t, "v"), x0)
    torch.testing.assert_close(s.x0_from_output(x0, x_t, t, "x0"), x0)
    with pytest.raises(ValueError, match="unknown prediction"):
        s.x0_from_output(v, x_t, t, "eps")


def test_v_model_follows_x_t_at_low_noise_by_construction():
    """Even untrained, a v-model's x0-hat at the first step is x_t up to sigma_1 times its output:
    the upper face a sampler has committed to by then cannot be averaged away."""
    model = tiny_model(steps=256, prediction="v")
    audio, ident = torch.randn(2, 30, model.config.audio_dim), torch.tensor([0, 1])
    cond = model.condition(audio, ident)
    x_a, x_b = torch.randn(2, 30, 52), torch.randn(2, 30, 52)
    t = torch.ones(2, dtype=torch.long)
    with torch.no_grad():
        moved = model.denoise(x_a, t, cond) - model.denoise(x_b, t, cond)
    follow = (moved * (x_a - x_b)).sum() / (x_a - x_b).pow(2).sum()
    assert follow > 0.95
    x0_model = tiny_model(steps=256)                 # the first models' x0 output has no such term
    with torch.no_grad():
        moved = x0_model.denoise(x_a, t, cond) - x0_model.denoise(x_b, t, cond)
    assert (moved * (x_a - x_b)).sum() / (x_a - x_b).pow(2).sum() < 0.5


def test_student_face_terms_follow_the_teacher_and_lips_the_data():
    x0 = torch.zeros(2, 20, 52)
    target = torch.ones(2, 20, 52)
    mask = torch.ones(2, 20)
    logits, ident = torch.zeros(2, 3), torch.tensor([0, 1])
    terms = L.diffusion_terms(target, x0, mask, logits, ident, face_target=target)
    assert float(terms["exp"]) == 0.0 and float(terms["vel"]) == 0.0
    assert float(terms["lip"]) == pytest.approx(1.0)          # lips still on the data
    weighted = L.diffusion_terms(target, x0, mask, logits, ident, weight=torch.tensor([2.0, 0.0]))
    assert float(weighted["exp"]) == pytest.approx(1.0)       # (2 * 1 + 0 * 1) / 2 rows


def _blink(frames: int, at: int, peak: float, width: int) -> np.ndarray:
    curves = np.zeros((frames, NUM_BLENDSHAPES), np.float32)
    shape = peak * np.sin(np.linspace(0, np.pi, width + 2)[1:-1])
    for name in ("eyeBlinkLeft", "eyeBlinkRight"):
        curves[at:at + width, INDEX[name]] = shape
    return curves


def test_blinks_are_counted_with_peak_and_time_above_half():
    curves = _blink(90, 10, 0.9, 9) + _blink(90, 50, 0.6, 9) + _blink(90, 75, 0.4, 9)   # the last never reaches 0.5
    events = U.blinks(curves, fps=30)
    assert len(events) == 2
    assert events[0][0] == pytest.approx(0.9, abs=0.02) and events[1][0] == pytest.approx(0.6, abs=0.02)
    assert 0 < events[1][1] < events[0][1] <= 9 / 30
    stats = U.pooled([U.clip_statistics(curves[None])])
    assert stats["blinks_per_minute"] == pytest.approx(2 / (90 / 30 / 60))
    assert stats["full_blink_share"] == pytest.approx(0.5)


def test_spread_and_ratios_against_hand_values():
    base = np.zeros((2, 10, NUM_BLENDSHAPES), np.float32)
    model, truth = base.copy(), base.copy()
    model[1, :, INDEX["browInnerUp"]] = 0.2           # one of five brow channels differs by 0.2 between samples
    truth[1, :, list(U.CHANNEL_GROUPS["brows"])] = 0.2
    assert U.spread(model, U.CHANNEL_GROUPS["brows"]) == pytest.approx(0.1 / 5)
    assert U.spread(truth, U.CHANNEL_GROUPS["brows"]) == pytest.approx(0.1)
    m, t = U.pooled([U.clip_statistics(model)]), U.pooled([U.clip_statistics(truth)])
    assert U.against_truth(m, t)["spread_ratio"]["brows"] == pytest.approx(0.2)
    assert U.w1(model, truth, [INDEX["browInnerUp"]]) == pytest.approx(0.0)
    assert U.w1(model, truth, [INDEX["browDownLeft"]]) == pytest.approx(0.1)
    assert set(U.CHANNEL_GROUPS["lips"]) == set(LIP_INDICES)


def test_roughness_sees_jitter_that_spread_calls_diversity():
    """A slow brow ramp is smooth; the same ramp with +-0.05 alternating each frame has the same
    temporal std to within a little, but its steps' std is ~0.1 against ~0.0."""
    frames = 60
    smooth = np.zeros((2, frames, NUM_BLENDSHAPES), np.float32)
    smooth[:, :, INDEX["browInnerUp"]] = np.linspace(0, 0.3, frames)
    jitter = smooth.copy()
    jitter[0, :, INDEX["browInnerUp"]] += 0.05 * (-1.0) ** np.arange(frames)
    one = [INDEX["browInnerUp"]]
    assert U.roughness(smooth, one) == pytest.approx(0.0, abs=1e-6)
    assert U.roughness(jitter, one) == pytest.approx(0.1 / 2, rel=0.02)   # sample 0: steps +-0.1, sample 1: 0
    stats = U.pooled([U.clip_statistics(jitter)])
    assert stats["roughness"]["brows"] == pytest.approx(0.1 / 2 / 5, rel=0.02)


def test_truth_draws_redraw_only_the_upper_face():
    from core.arkit import UPPER_INDICES
    from core.data.style import Style
    from core.data.tts import Phone
    from experiments.evaluate.upper_face import truth_draws
    rng = np.random.default_rng(0)
    frames, audio = 150, rng.normal(0, 0.1, 16000 * 5).astype(np.float32)
    phones = [Phone("pau", 0.0, 0.5), Phone("aa", 0.5, 1.2), Phone("b", 1.2, 1.3), Phone("iy", 1.3, 2.5),
              Phone("pau", 2.5, 5.0)]
    curves = rng.uniform(0, 1, (frames, NUM_BLENDSHAPES)).astype(np.float32)
    draws = truth_draws(curves, phones, audio, Style(blink_rate=40, brow_activity=1.0), k=3)
    other = [i for i in range(NUM_BLENDSHAPES) if i not in UPPER_INDICES]
    assert draws.shape == (3, frames, NUM_BLENDSHAPES)
    np.testing.assert_array_equal(draws[:, :, other], np.repeat(curves[None, :, other], 3, 0))
    assert U.spread(draws, UPPER_INDICES) > 0.01                       # fresh randomness per draw
    np.testing.assert_array_equal(draws, truth_draws(curves, phones, audio, Style(blink_rate=40, brow_activity=1.0), 3))


def test_seed_verdict_offers_a_student_only_when_its_upper_face_varies_as_its_teacher():
    from core.evaluation.upper_face import SEED_FLOOR, seed_verdict
    teacher = {"spread_ratio": {"blinks": 1.0, "brows": 0.8, "eye look": 0.7, "squint": 1.5, "lips": 9.0},
               "blink_rate_ratio": 0.4}
    assert seed_verdict(teacher) == {"offered": True, "why": "",
                                     "ratios": {"blink spread": 1.0, "brow spread": 0.8, "blink rate": 0.4}}
    alive = {"spread_ratio": {**teacher["spread_ratio"], "blinks": 0.9, "brows": 0.6}, "blink_rate_ratio": 0.3}
    assert seed_verdict(alive, teacher) == {"offered": True, "why": "",
                                            "ratios": {"blink spread": 0.9, "brow spread": 0.75, "blink rate": 0.75}}
    dead = {"spread_ratio": {**teacher["spread_ratio"], "blinks": 0.09}, "blink_rate_ratio": 0.0}
    verdict = seed_verdict(dead, teacher)
    assert not verdict["offered"]
    assert "blink spread 0.09x" in verdict["why"] and "blink rate 0.00x" in verdict["why"]
    assert "brow" not in verdict["why"] and f"{SEED_FLOOR}x" in verdict["why"] and "teacher's" in verdict["why"]
    silent = {**teacher, "blink_rate_ratio": 0.0}                   # a teacher that never blinks: no rate to keep
    assert not seed_verdict(alive, silent)["offered"]


def test_chance_range_of_a_few_blinks_against_hand_values():
    """20 blinks a minute over 0.3 minutes is 6 expected; Poisson(6) has 5 % of its mass at <= 1 and
    95.7 % at <= 10, so the central 90 % runs from 2 to 10 blinks: 6.7 to 33.3 a minute. Over 100
    minutes the same rate is pinned to within a few percent."""
    from core.evaluation.upper_face import chance_range
    lo, hi = chance_range(20.0, 0.3)
    assert lo == pytest.approx(2 / 0.3) and hi == pytest.approx(10 / 0.3)
    lo, hi = chance_range(20.0, 100.0)
    assert 19.0 < lo < 20.0 < hi < 21.0


def test_real_recordings_pool_their_blinks_by_minutes_of_face():
    """Two styles, 10 blinks in 1 minute and 2 in 0.5: pooled 12 in 1.5 minutes, 8 a minute, not the
    mean of the two rates; each style's rate is read against its own chance range."""
    from experiments.evaluate.upper_face import _chance, real_pooled
    real = {"a": {"model": {"blinks_per_minute": 10.0, "minutes": 1.0}, "truth": {"blinks_per_minute": 12.0, "minutes": 1.0},
                  "recordings": 3},
            "b": {"model": {"blinks_per_minute": 4.0, "minutes": 0.5}, "truth": {"blinks_per_minute": 2.0, "minutes": 0.5},
                  "recordings": 1}}
    pooled = real_pooled(real)
    assert pooled["model"] == pytest.approx(8.0) and pooled["truth"] == pytest.approx(13.0 / 1.5)
    assert pooled["minutes"] == 1.5 and pooled["recordings"] == 4
    assert _chance(real["a"]).endswith("(inside)")
    far = {"model": {"blinks_per_minute": 60.0, "minutes": 5.0}, "truth": {"blinks_per_minute": 12.0, "minutes": 5.0}}
    assert _chance(far).endswith("(outside)")
