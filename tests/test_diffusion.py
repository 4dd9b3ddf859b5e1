import pytest
import torch

import numpy as np
from types import SimpleNamespace

from core.arkit import INDEX
from core.model.diffusion import (NoiseSchedule, ScheduleConfig, frame_noise, make_generator, noise_temperature,
                                  sample)


@pytest.mark.parametrize("steps", [1, 2, 8, 32, 256])
@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_last_step_is_pure_noise_and_first_is_clean(steps, kind):
    s = NoiseSchedule(ScheduleConfig(steps=steps, kind=kind))
    assert s.alpha_bar[0] == 1.0
    assert s.alpha_bar[-1] < 1e-3
    assert torch.all(s.alpha_bar[1:] < s.alpha_bar[:-1])
    assert torch.all((s.beta[1:] > 0) & (s.beta[1:] <= 1))


def test_student_grid_is_every_other_teacher_point():
    teacher, student = NoiseSchedule(ScheduleConfig(steps=16)), NoiseSchedule(ScheduleConfig(steps=8))
    torch.testing.assert_close(student.alpha_bar, teacher.alpha_bar[::2])


def test_q_sample_statistics():
    s = NoiseSchedule(ScheduleConfig(steps=32))
    x0 = torch.full((20000, 4), 0.7, dtype=torch.float64)
    t = torch.full((20000,), 10)
    xt = s.q_sample(x0, t, torch.randn(x0.shape, generator=make_generator(0), dtype=torch.float64))
    assert abs(xt.mean().item() - s.alpha[10].item() * 0.7) < 0.01
    assert abs(xt.std().item() - s.sigma[10].item()) < 0.01


@pytest.mark.parametrize("method", ["ddim", "ddpm"])
def test_sampling_with_exact_x0_predictor_recovers_x0(method):
    s = NoiseSchedule(ScheduleConfig(steps=8))
    x0 = torch.randn(3, 5, 52, generator=make_generator(1))
    out = sample(s, lambda x, t: x0, [2, 3, 4], 5, method=method)
    torch.testing.assert_close(out, x0)


def test_ddim_with_exact_x0_stays_on_the_forward_trajectory():
    s = NoiseSchedule(ScheduleConfig(steps=8))
    x0, eps = torch.randn(2, 6, 52, dtype=torch.float64), torch.randn(2, 6, 52, dtype=torch.float64)
    t = torch.tensor([6, 6])
    x_next = s.ddim_step(s.q_sample(x0, t, eps), x0, t, t - 1)
    torch.testing.assert_close(x_next, s.q_sample(x0, t - 1, eps))


def test_distillation_target_equals_two_teacher_steps():
    """With an exact x0 predictor the target is x0 and one student step lands on the teacher's x''."""
    teacher, student = NoiseSchedule(ScheduleConfig(steps=16)), NoiseSchedule(ScheduleConfig(steps=8))
    x0, eps = torch.randn(4, 7, 52, dtype=torch.float64), torch.randn(4, 7, 52, dtype=torch.float64)
    t = torch.tensor([1, 3, 5, 8])
    x_t = student.q_sample(x0, t, eps)
    target = student.distillation_target(x_t, t, teacher, lambda x, tt: x0)
    torch.testing.assert_close(target, x0)
    # A non-trivial teacher: the student's DDIM step with x~ reproduces the teacher's two steps.
    def bent_teacher(x, tt):
        return 0.5 * x + 0.1 * tt.view(-1, 1, 1).double()
    target = student.distillation_target(x_t, t, teacher, bent_teacher)
    x_mid = teacher.ddim_step(x_t, bent_teacher(x_t, 2 * t), 2 * t, 2 * t - 1)
    x_two = teacher.ddim_step(x_mid, bent_teacher(x_mid, 2 * t - 1), 2 * t - 1, 2 * t - 2)
    torch.testing.assert_close(student.ddim_step(x_t, target, t, t - 1), x_two)


def test_distillation_needs_a_twice_as_long_teacher():
    with pytest.raises(ValueError, match="2x"):
        NoiseSchedule(ScheduleConfig(steps=8)).distillation_target(
            torch.zeros(1, 2, 52), torch.tensor([1]), NoiseSchedule(ScheduleConfig(steps=8)), lambda x, t: x)


def test_seeds_reproducible_and_distinct():
    s = NoiseSchedule(ScheduleConfig(steps=4))
    f = lambda x, t: 0.3 * x
    a = sample(s, f, [5], 10, method="ddpm")
    b = sample(s, f, [5], 10, method="ddpm")
    c = sample(s, f, [6], 10, method="ddpm")
    assert torch.equal(a, b) and not torch.allclose(a, c)
    batch = sample(s, f, [6, 5], 10, method="ddpm")                 # a row does not depend on its batch
    torch.testing.assert_close(batch[1:], a)


@pytest.mark.parametrize("method", ["ddim", "ddpm"])
def test_update_coefficients_reproduce_the_reverse_steps(method):
    sched = NoiseSchedule(ScheduleConfig(steps=8))
    c_x0, c_xt, c_noise = sched.update_coefficients(method)
    gen = torch.Generator().manual_seed(0)
    x_t, x0, z = (torch.randn(8, 5, 52, generator=gen, dtype=torch.float64) for _ in range(3))
    t = torch.arange(8, 0, -1)                      # row k holds step T - k
    view = lambda c: c.view(-1, 1, 1)               # noqa: E731
    mine = view(c_x0) * x0 + view(c_xt) * x_t + view(c_noise) * z
    expected = sched.ddim_step(x_t, x0, t, t - 1) if method == "ddim" else sched.ddpm_step(x_t, x0, t, z)
    torch.testing.assert_close(mine, expected)
    assert c_noise[-1] == 0 and (method == "ddpm") == bool(c_noise[0] > 0)


def test_noise_temperature_scales_x_T_per_channel_and_nothing_else():
    config = SimpleNamespace(channels=55, extra={"noise_temperature": {"jawOpen": 0.5, "eyeLookUpLeft": 1.3}})
    scale = noise_temperature(config)
    assert scale.shape == (55,) and scale[INDEX["jawOpen"]] == 0.5 and scale[INDEX["eyeLookUpLeft"]] == np.float32(1.3)
    assert np.count_nonzero(scale != 1) == 2
    plain, warm = frame_noise(3, 0, 5, 70, 55), frame_noise(3, 0, 5, 70, 55, scale)
    np.testing.assert_allclose(warm, plain * scale)                         # x_T, channel by channel
    np.testing.assert_array_equal(frame_noise(3, 2, 5, 70, 55, scale), frame_noise(3, 2, 5, 70, 55))  # step noise
    np.testing.assert_array_equal(frame_noise(3, 0, 20, 70, 55, scale), warm[15:])     # chunking-invariant
    assert noise_temperature(SimpleNamespace(channels=52, extra={})) is None
    for bad in ({"jawOpne": 0.5}, {"jawOpen": -0.1}, {"jawOpen": 2.5}):
        with pytest.raises(ValueError, match="temperature"):
            noise_temperature(SimpleNamespace(channels=52, extra={"noise_temperature": bad}))


def test_generate_samples_with_the_model_noise_temperature(toy_talker):
    """The toy student's config sets jawOpen's x_T to half (tests/conftest.py); the streamed replay
    tests run through the same temperature."""
    audio = np.random.default_rng(3).normal(0, 0.1, 16_000 * 2).astype(np.float32)
    model = toy_talker.model(4)
    warm = toy_talker.generate(audio, steps=4, seed=5).blendshapes
    chosen = model.config.extra.pop("noise_temperature")
    try:
        plain = toy_talker.generate(audio, steps=4, seed=5).blendshapes
    finally:
        model.config.extra["noise_temperature"] = chosen
    assert not np.allclose(warm, plain)
    np.testing.assert_array_equal(toy_talker.generate(audio, steps=4, seed=5).blendshapes, warm)
