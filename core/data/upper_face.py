"""Upper face (eyes and brows): stochastic events loosely tied to the speech.

The lips are a function of the audio; the upper face is not. Blinks come from a Poisson process
(more likely at the start of long pauses), brows rise on some prominent syllables (long and loud
vowels, a stand-in for pitch accents), and the gaze jumps between fixations. The same audio
therefore has many valid upper faces, which is the uncertainty a diffusion model should learn to
sample rather than average away.
"""
from __future__ import annotations

import numpy as np

from core.arkit import INDEX, NUM_BLENDSHAPES
from core.rates import FPS, SAMPLE_RATE
from core.data.style import Style
from core.data.phones import VOWELS, Phone
from core.data.visemes import apply_asymmetry

BLINK_CLOSE, BLINK_HOLD, BLINK_OPEN = (0.06, 0.08), (0.02, 0.05), (0.10, 0.15)  # seconds
MIN_BLINK_GAP = 0.6
SACCADE_SECONDS = 0.045


def _envelope(t: np.ndarray, start: float, rise: float, hold: float, fall: float) -> np.ndarray:
    """0 -> 1 -> 0 with cosine ramps: rise for ``rise`` s, stay ``hold`` s, fall for ``fall`` s."""
    up = np.clip((t - start) / rise, 0.0, 1.0)
    down = np.clip((t - start - rise - hold) / fall, 0.0, 1.0)
    return 0.5 * (1 - np.cos(np.pi * up)) * 0.5 * (1 + np.cos(np.pi * down))


def blink_times(duration: float, phones: list[Phone], style: Style,
                rng: np.random.Generator) -> list[float]:
    """Poisson blinks at the style's rate, plus a chance of one as each long pause begins."""
    times = []
    t = rng.exponential(60.0 / max(style.blink_rate, 1e-3)) * rng.uniform(0.2, 1.0)
    while t < duration:
        times.append(t)
        t += MIN_BLINK_GAP + rng.exponential(60.0 / max(style.blink_rate, 1e-3))
    for p in phones:
        if p.label == "pau" and p.duration > 0.25 and p.start > 0.3 and rng.random() < 0.35:
            times.append(p.start + rng.uniform(0.0, 0.1))
    times.sort()
    kept: list[float] = []
    for t in times:
        if not kept or t - kept[-1] >= MIN_BLINK_GAP:
            kept.append(t)
    return kept


def _rms(audio: np.ndarray, phone: Phone) -> float:
    start = int(phone.start * SAMPLE_RATE)
    segment = audio[start:max(int(phone.end * SAMPLE_RATE), start + 1)]
    return float(np.sqrt(np.mean(segment ** 2))) if segment.size else 0.0


def prominent_vowels(phones: list[Phone], audio: np.ndarray) -> list[tuple[Phone, float]]:
    """Vowels ranked by duration and loudness; returns (phone, prominence in [0, 1])."""
    vowels = [p for p in phones if p.label in VOWELS and p.duration > 0]
    if not vowels:
        return []
    rms = np.array([_rms(audio, p) for p in vowels])
    dur = np.array([p.duration for p in vowels])
    score = np.log(dur) / 2 + np.log(rms + 1e-6)
    ranks = score.argsort().argsort() / max(len(vowels) - 1, 1)
    return list(zip(vowels, ranks.tolist()))


def upper_face(phones: list[Phone], audio: np.ndarray, frames: int, style: Style,
               rng: np.random.Generator) -> np.ndarray:
    """Eye and brow curves [frames, 52] at 30 fps (other channels 0)."""
    t = (np.arange(frames) + 0.5) / FPS
    face = np.zeros((frames, NUM_BLENDSHAPES), np.float64)
    duration = frames / FPS

    blink = np.zeros(frames)
    for start in blink_times(duration, phones, style, rng):
        env = _envelope(t, start, rng.uniform(*BLINK_CLOSE), rng.uniform(*BLINK_HOLD),
                        rng.uniform(*BLINK_OPEN))
        blink = np.maximum(blink, rng.uniform(0.8, 1.0) * env)
    for side in ("Left", "Right"):
        face[:, INDEX["eyeBlink" + side]] = blink
        face[:, INDEX["eyeSquint" + side]] = style.squint + 0.1 * blink

    inner, outer, down = np.zeros(frames), np.zeros(frames), np.zeros(frames)
    for vowel, prominence in prominent_vowels(phones, audio):
        if prominence < 0.7 or rng.random() > 0.1 + 0.4 * style.brow_activity * prominence:
            continue
        size = style.brow_activity * rng.uniform(0.3, 0.8) * (0.5 + 0.5 * prominence)
        env = _envelope(t, vowel.start - rng.uniform(0.05, 0.15), rng.uniform(0.08, 0.16),
                        vowel.duration + rng.uniform(0.0, 0.3), rng.uniform(0.25, 0.5))
        inner = np.maximum(inner, size * rng.uniform(0.6, 1.0) * env)
        outer = np.maximum(outer, size * rng.uniform(0.4, 1.0) * env)
    for _ in range(rng.poisson(0.08 * duration * (1.0 - 0.5 * style.brow_activity))):
        env = _envelope(t, rng.uniform(0, duration), 0.2, rng.uniform(0.2, 1.0), 0.4)
        down = np.maximum(down, rng.uniform(0.1, 0.35) * env)
    face[:, INDEX["browInnerUp"]] = inner
    for side in ("Left", "Right"):
        face[:, INDEX["browOuterUp" + side]] = outer
        face[:, INDEX["browDown" + side]] = down
        face[:, INDEX["eyeWide" + side]] = 0.3 * inner

    horizontal, vertical = gaze_path(t, style, rng)
    look = {"OutRight": horizontal, "InLeft": horizontal, "OutLeft": -horizontal,
            "InRight": -horizontal, "UpLeft": vertical, "UpRight": vertical,
            "DownLeft": -vertical + 0.15 * blink, "DownRight": -vertical + 0.15 * blink}
    for name, value in look.items():
        face[:, INDEX["eyeLook" + name]] = value

    face = apply_asymmetry(face, 0.5 * style.asymmetry, prefixes=("brow", "eyeBlink", "eyeSquint"))
    return np.clip(face, 0.0, 1.0).astype(np.float32)


def gaze_path(t: np.ndarray, style: Style, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Fixations joined by quick saccades; returns horizontal (+ = right) and vertical (+ = up)."""
    horizontal, vertical = np.zeros_like(t), np.zeros_like(t)
    h = v = 0.0
    start = 0.0
    while start < t[-1] + 1.0 / FPS:
        h_new = rng.normal(0.0, 0.05 + 0.15 * style.gaze_activity)
        v_new = rng.normal(0.0, 0.03 + 0.08 * style.gaze_activity)
        step = np.clip((t - start) / SACCADE_SECONDS, 0.0, 1.0)
        horizontal = np.where(t >= start, h + (h_new - h) * step, horizontal)
        vertical = np.where(t >= start, v + (v_new - v) * step, vertical)
        h, v = h_new, v_new
        start += rng.exponential(0.6 + 1.4 * (1.0 - style.gaze_activity)) + 0.2
    return horizontal, vertical
