"""Noise schedule, samplers and the progressive-distillation target, separate from the network.

Time is continuous, s in [0, 1], and a model with T steps lives on the grid s_t = t / T.
The schedule is the continuous limit of DDPM's linear beta schedule (beta from 1e-4 to 0.02
over 1000 steps), i.e. the variance-preserving SDE of Song et al.::

    alpha_bar(s) = exp(-(beta_min * s + 0.5 * (beta_max - beta_min) * s**2)),
    beta_min = 0.1, beta_max = 20.

Why continuous: a discrete linear beta from 1e-4 to 0.02 over only 8..256 steps leaves
alpha_bar_T far from 0, and rescaling the range by 1000/T breaks down below ~20 steps
(beta > 1).  With the continuous form every T ends at alpha_bar(1) ~ 4e-5 (pure noise), and
the T-step grid is exactly every other point of the 2T-step grid, which is what progressive
distillation needs: a distilled N-step student and its 2N-step parent share one schedule.

Notation (Salimans & Ho 2022): alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar),
x_t = alpha_t * x0 + sigma_t * eps.  Every sampler and loss works with x0-hat; what the network
outputs is turned into it by :meth:`NoiseSchedule.x0_from_output`:

- ``"x0"``: the output is x0-hat (the first models);
- ``"v"``: the output is v-hat, v = alpha_t eps - sigma_t x0, so x0-hat = alpha_t x_t - sigma_t v-hat
  (Salimans & Ho 2022). At low noise x0-hat follows x_t by construction: an x0-predicting GRU
  learned to ignore x_t and gave the conditional mean of the upper face at every noise level
  (docs/DECISIONS.md "Why the seed did nothing").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from core.arkit import INDEX, NUM_BLENDSHAPES

# x0_fn(x_t, t_index) -> predicted x0, with t_index a LongTensor [B] on this schedule's grid.
X0Predictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PREDICTIONS = ("x0", "v")


@dataclass(frozen=True)
class ScheduleConfig:
    steps: int = 256
    kind: str = "linear"          # "linear" (continuous linear beta) or "cosine"
    beta_min: float = 0.1
    beta_max: float = 20.0


def alpha_bar_at(s: torch.Tensor, cfg: ScheduleConfig) -> torch.Tensor:
    """alpha_bar at continuous times s in [0, 1] (float64 for exactness)."""
    s = s.double()
    if cfg.kind == "linear":
        return torch.exp(-(cfg.beta_min * s + 0.5 * (cfg.beta_max - cfg.beta_min) * s ** 2))
    if cfg.kind == "cosine":  # Nichol & Dhariwal, clipped so that the last point is ~pure noise
        offset = 0.008
        f = torch.cos((s + offset) / (1 + offset) * math.pi / 2) ** 2
        f0 = math.cos(offset / (1 + offset) * math.pi / 2) ** 2
        return (f / f0).clamp(min=1e-5, max=1.0)
    raise ValueError(f"unknown schedule kind {cfg.kind!r} (use 'linear' or 'cosine')")


class NoiseSchedule:
    """All schedule math for a T-step model; index t = 0 .. T, t = 0 is clean data."""

    def __init__(self, cfg: ScheduleConfig):
        if cfg.steps < 1:
            raise ValueError("a schedule needs at least one step")
        self.cfg = cfg
        self.steps = cfg.steps
        ab = alpha_bar_at(torch.arange(cfg.steps + 1, dtype=torch.float64) / cfg.steps, cfg)
        ab[0] = 1.0
        self.alpha_bar = ab                                  # [T+1], float64
        self.alpha = ab.sqrt()
        self.sigma = (1 - ab).clamp(min=0).sqrt()
        self.beta = torch.cat([torch.zeros(1, dtype=torch.float64), 1 - ab[1:] / ab[:-1]])
        # Ancestral step t -> t-1 as x_{t-1} = c_x0 x0_hat + c_xt x_t + std z (index t; 0 unused).
        ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
        self.ddpm_x0 = ab_prev.sqrt() * self.beta / (1 - ab).clamp(min=1e-12)
        self.ddpm_xt = (1 - self.beta).sqrt() * (1 - ab_prev) / (1 - ab).clamp(min=1e-12)
        self.ddpm_std = (self.beta * (1 - ab_prev) / (1 - ab).clamp(min=1e-12)).sqrt()
        self.ddpm_std[:2] = 0.0                              # the last step (t = 1) adds no noise

    # -- helpers -------------------------------------------------------------------------------
    def time(self, t: torch.Tensor) -> torch.Tensor:
        """Continuous time s = t / T for the step encoder (shared by teachers and students)."""
        return t.float() / self.steps

    def _gather(self, table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return table.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def output_coefficients(self, prediction: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(c_skip, c_out) [T+1] float64 with x0-hat = c_skip[t] x_t + c_out[t] output."""
        if prediction == "x0":
            return torch.zeros_like(self.alpha), torch.ones_like(self.alpha)
        if prediction == "v":
            return self.alpha.clone(), -self.sigma
        raise ValueError(f"unknown prediction {prediction!r} (use one of {PREDICTIONS})")

    def x0_from_output(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, prediction: str) -> torch.Tensor:
        """The network's output at step indices t [B] as x0-hat (see the module docstring)."""
        if prediction == "x0":
            return output
        c_skip, c_out = self.output_coefficients(prediction)
        return self._gather(c_skip, t, x_t) * x_t + self._gather(c_out, t, x_t) * output

    # -- forward process -----------------------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = alpha_t x0 + sigma_t eps."""
        return self._gather(self.alpha, t, x0) * x0 + self._gather(self.sigma, t, x0) * noise

    def training_input(self, x0: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """What every training objective starts from: a step t ~ U{1..T} per row and x0 noised
        to it, (t [B], x_t). Draws t first, then the noise, from ``generator`` (on the CPU)."""
        t = torch.randint(1, self.steps + 1, (x0.shape[0],), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        return t, self.q_sample(x0, t, noise)

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """alpha^2 / sigma^2 at step indices t [B] (float32, on t's device)."""
        return (self.alpha_bar[t.cpu()] / (1 - self.alpha_bar[t.cpu()]).clamp(min=1e-12)).float().to(t.device)

    def snr_weight(self, t: torch.Tensor) -> torch.Tensor:
        """Truncated SNR weight max(alpha^2 / sigma^2, 1) of the distillation loss (eq. 16)."""
        return self.snr(t).clamp(min=1.0)

    # -- reverse steps -------------------------------------------------------------------------
    def ddim_step(self, x_t: torch.Tensor, x0_hat: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
        """Deterministic step from t to t_next (< t) given the predicted x0 (eq. 8)."""
        a_t, s_t = self._gather(self.alpha, t, x_t), self._gather(self.sigma, t, x_t)
        a_n, s_n = self._gather(self.alpha, t_next, x_t), self._gather(self.sigma, t_next, x_t)
        eps_hat = (x_t - a_t * x0_hat) / s_t
        return a_n * x0_hat + s_n * eps_hat

    def ddpm_step(self, x_t: torch.Tensor, x0_hat: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Ancestral step t -> t-1: posterior mean plus sigma_t z (the source of diversity)."""
        return (self._gather(self.ddpm_x0, t, x_t) * x0_hat + self._gather(self.ddpm_xt, t, x_t) * x_t
                + self._gather(self.ddpm_std, t, x_t) * noise)

    def update_coefficients(self, method: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The reverse step t -> t-1 for t = T .. 1 as x_{t-1} = c_x0 x0_hat + c_xt x_t + c_noise z
        (float64 [T] each): ``ddim_step`` and ``ddpm_step`` in a form that needs no model call."""
        t = torch.arange(self.steps, 0, -1)
        if method == "ddim":
            c_xt = self.sigma[t - 1] / self.sigma[t]
            return self.alpha[t - 1] - c_xt * self.alpha[t], c_xt, torch.zeros_like(c_xt)
        if method == "ddpm":
            return self.ddpm_x0[t], self.ddpm_xt[t], self.ddpm_std[t]
        raise ValueError(f"unknown sampler {method!r} (use 'ddim' or 'ddpm')")

    def reverse_coefficients(self, method: str) -> tuple[list[float], list[float], list[float]]:
        """:meth:`update_coefficients` in float32 precision as plain numbers, for :func:`reverse`
        (the same values whether the decoder computes in torch or numpy)."""
        return tuple([float(v) for v in c.float()] for c in self.update_coefficients(method))

    # -- distillation --------------------------------------------------------------------------
    def distillation_target(self, x_t: torch.Tensor, t_student: torch.Tensor, teacher: "NoiseSchedule",
                            teacher_x0: X0Predictor) -> torch.Tensor:
        """Target x~ for a student step t -> t-1 on this (N-step) grid, from two deterministic
        teacher steps on its 2N grid: 2t -> 2t-1 -> 2t-2 (eq. 8-9).

        For the student to land where the teacher did in one DDIM step from x_t, its x0
        prediction must be x~ = (x'' - (sigma''/sigma_t) x_t) / (alpha'' - (sigma''/sigma_t) alpha_t).
        """
        if teacher.steps != 2 * self.steps:
            raise ValueError(f"teacher has {teacher.steps} steps, student {self.steps}: need 2x")
        t_hi = 2 * t_student
        x_mid = teacher.ddim_step(x_t, teacher_x0(x_t, t_hi), t_hi, t_hi - 1)
        x_lo = teacher.ddim_step(x_mid, teacher_x0(x_mid, t_hi - 1), t_hi - 1, t_hi - 2)
        t_next = t_student - 1
        a_t, s_t = self._gather(self.alpha, t_student, x_t), self._gather(self.sigma, t_student, x_t)
        a_n, s_n = self._gather(self.alpha, t_next, x_t), self._gather(self.sigma, t_next, x_t)
        ratio = s_n / s_t
        return (x_lo - ratio * x_t) / (a_n - ratio * a_t)


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed) if seed is not None else torch.seed())
    return g


# -- the reverse process ---------------------------------------------------------------------------
# One loop (:func:`reverse`) serves every decoder: torch (:func:`sample`), the ONNX step pipeline,
# which only schedules chunks of frames over it, and the stream, which runs it on each new chunk.
# They can agree to the last frame because the noise of a frame depends only on (seed, draw,
# frame): :func:`frame_noise`. So a stream that replays a clip gets the offline curves.

NOISE_BLOCK = 64       # frames per noise generator (a generator costs ~0.1 ms to make, whatever its size)

# x0 of step t (an int, T .. 1) from x_t: a torch tensor or a numpy array, as the caller's decoder wants.
StepPredictor = Callable[[object, int], object]


def noise_draws(method: str, steps: int) -> int:
    """How many noise draws a sampler uses: x_T, plus one per reverse step but the last (ancestral)."""
    return steps if method == "ddpm" else 1


TEMPERATURE_KEY = "noise_temperature"     # a model config's extra: {ARKit channel: x_T's scale}
MAX_TEMPERATURE = 2.0


def noise_temperature(config) -> np.ndarray | None:
    """The scale of x_T per channel, float32 [config.channels], from ``config.extra["noise_temperature"]``
    ({ARKit channel name: scale}, the other channels 1); None when the model sets none.

    Why (docs/DECISIONS.md "Noise temperature"): a distilled student samples deterministically from
    x_T, so how far its samples spread is set by how far x_T does. Its lips, which the data draws
    deterministically from the phones, kept a seed's noise (a spread 0.35x the upper face's); x_T's
    lips at a reduced scale (experiments/evaluate/temperature_fit.py) take most of it out and bring
    the lips nearer the data (a lower LBE)."""
    chosen = config.extra.get(TEMPERATURE_KEY)
    if not chosen:
        return None
    scale = np.ones(config.channels, np.float32)
    for name, value in chosen.items():
        if name not in INDEX:
            raise ValueError(f"noise temperature for an unknown ARKit channel {name!r}")
        if not 0.0 <= float(value) <= MAX_TEMPERATURE:
            raise ValueError(f"the noise temperature of {name} must lie in [0, {MAX_TEMPERATURE}], not {value!r}")
        scale[INDEX[name]] = float(value)
    return scale


def frame_noise(seed: int, draw: int, first: int, stop: int, channels: int = NUM_BLENDSHAPES,
                temperature: np.ndarray | None = None) -> np.ndarray:
    """Gaussian noise float32 [stop - first, channels] of frames [first, stop): draw 0 is x_T, draw
    k the noise of reverse step k (ancestral samplers). Frame f's values depend only on (seed,
    draw, f), so any chunking of a clip, and any batch it is part of, sees the same noise. The
    52 curves' noise comes from its own stream, so adding the head's channels (core/head_pose.py)
    leaves a seed's noise for the face as it was. ``temperature`` [channels] scales x_T alone
    (:func:`noise_temperature`)."""
    blocks = range(first // NOISE_BLOCK, -(-stop // NOISE_BLOCK))
    extra = channels - NUM_BLENDSHAPES

    def block(b: int) -> np.ndarray:
        face = np.random.default_rng([seed, draw, b]).standard_normal((NOISE_BLOCK, NUM_BLENDSHAPES), dtype=np.float32)
        if extra <= 0:
            return face
        more = np.random.default_rng([seed, draw, b, 1]).standard_normal((NOISE_BLOCK, extra), dtype=np.float32)
        return np.concatenate([face, more], 1)

    noise = np.concatenate([block(b) for b in blocks])
    offset = blocks.start * NOISE_BLOCK
    noise = noise[first - offset: stop - offset]
    return noise * temperature if draw == 0 and temperature is not None else noise


def seeds_noise(seeds: list[int], draw: int, first: int, stop: int, channels: int = NUM_BLENDSHAPES,
                temperature: np.ndarray | None = None) -> np.ndarray:
    """:func:`frame_noise` of one sample per seed: float32 [len(seeds), stop - first, channels]."""
    return np.stack([frame_noise(seed, draw, first, stop, channels, temperature) for seed in seeds])


def reverse(x0_fn: StepPredictor, x_T, coefficients: tuple[list[float], list[float], list[float]],
            noise_fn: Callable[[int], object] | None = None):
    """The reverse process: x_T -> x0 over every step T .. 1 of ``coefficients``
    (:meth:`NoiseSchedule.reverse_coefficients`); ``x0_fn(x_t, t)`` predicts x0 at step t,
    ``noise_fn(k)`` gives draw k (k = 1 .. T-1) for an ancestral sampler (None: deterministic).
    Works on torch tensors and numpy arrays alike; the last step returns its x0 prediction."""
    c_x0, c_xt, c_noise = coefficients
    steps = len(c_x0)
    x = x_T
    for k in range(steps):
        x0 = x0_fn(x, steps - k)
        if k == steps - 1:
            return x0
        x = c_x0[k] * x0 + c_xt[k] * x
        if noise_fn is not None:
            x += c_noise[k] * noise_fn(k + 1)
    raise ValueError("a reverse process needs at least one step")


@torch.inference_mode()
def sample(schedule: NoiseSchedule, x0_fn: X0Predictor, seeds: list[int], frames: int, *, method: str = "ddim",
           device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
           channels: int = NUM_BLENDSHAPES, temperature: np.ndarray | None = None) -> torch.Tensor:
    """Run the reverse process on torch for one sample per seed; returns x0 [len(seeds), frames,
    channels] in model space.

    ``ddim``: deterministic from the initial noise (distilled students; the seed sets the
    variation).  ``ddpm``: ancestral sampling with fresh noise each step.
    """
    coefficients = schedule.reverse_coefficients(method)

    def noise(draw: int) -> torch.Tensor:
        return torch.from_numpy(seeds_noise(seeds, draw, 0, frames, channels, temperature)).to(device, dtype)

    def x0(x: torch.Tensor, t: int) -> torch.Tensor:
        return x0_fn(x, torch.full((len(seeds),), t, dtype=torch.long, device=device))

    return reverse(x0, noise(0), coefficients, noise if method == "ddpm" else None)
