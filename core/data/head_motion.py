"""Head motion while talking: a slow drift, nods on prominent syllables, turns at phrase
boundaries, and stillness in pauses; sampled anew for every draw, like the upper face.

What it is based on (public measurements of real talking heads, docs/DECISIONS.md "Head motion"):
- Hadar et al. (1983, "Head movement correlates of juncture and stress at sentence level"):
  speakers' heads move almost all the time while they talk and are far stiller while they pause
  or listen; quick movements cluster on stressed syllables, larger posture shifts at phrase and
  sentence boundaries.
- Graf et al. (2002, "Visual prosody: facial movements accompanying speech") and Busso et al.
  (2007, "Rigid head motion in expressive speech animation"): nods and turns of a few degrees
  line up with pitch accents; rotations stay within about +-10 degrees around a resting pose;
  emotional speech moves the head more (angry, happy) or less (sad) than neutral speech.
So: an Ornstein-Uhlenbeck drift of a few degrees (time constant ~2 s) whose pace drops to a
third in pauses; on prominent vowels a nod (pitch down then back, 2-6 degrees over ~0.4 s) or a
small turn; at pauses longer than 0.2 s a new resting yaw/pitch for the next phrase. The style's
``head_amplitude`` scales every angle and ``head_activity`` how often events happen; emotions
scale both (:data:`EMOTION_ACTIVITY`). No frame turns faster than ``core.head_pose.MAX_SPEED``.
"""
from __future__ import annotations

import math

import numpy as np

from core.data.phones import Phone
from core.data.style import Style
from core.data.upper_face import prominent_vowels
from core.head_pose import HEAD_CHANNELS, limit_speed
from core.rates import FPS

DEG = math.pi / 180.0
DRIFT_STD = np.array([3.0, 2.0, 1.5]) * DEG      # yaw, pitch, roll: stationary std of the drift
DRIFT_SECONDS = 2.0                               # its time constant
PAUSE_PACE = 0.3                                  # the drift's pace in pauses, x its pace in speech
NOD_DEGREES = (2.0, 6.0)
PHRASE_SHIFT_STD = np.array([4.0, 2.0, 1.5]) * DEG
EMOTION_ACTIVITY = {"neutral": 1.0, "happy": 1.25, "sad": 0.6, "angry": 1.35, "surprised": 1.2}


def _bump(t: np.ndarray, start: float, rise: float, fall: float) -> np.ndarray:
    """0 -> 1 -> 0: raised-cosine rise over ``rise`` s, then fall over ``fall`` s."""
    up = np.clip((t - start) / rise, 0.0, 1.0)
    down = np.clip((t - start - rise) / fall, 0.0, 1.0)
    return 0.5 * (1 - np.cos(np.pi * up)) * 0.5 * (1 + np.cos(np.pi * down))


def _speaking(phones: list[Phone], t: np.ndarray) -> np.ndarray:
    """1 inside speech, 0 in pauses, per frame."""
    out = np.zeros_like(t)
    for p in phones:
        if p.label != "pau":
            out[(t >= p.start) & (t < p.end)] = 1.0
    return out


def head_motion(phones: list[Phone], audio: np.ndarray, frames: int, style: Style,
                rng: np.random.Generator, emotion: str = "neutral", intensity: float = 0.0) -> np.ndarray:
    """Head yaw/pitch/roll in radians [frames, 3] at 30 fps (core/head_pose.py conventions)."""
    t = (np.arange(frames) + 0.5) / FPS
    scale = 1.0 + (EMOTION_ACTIVITY.get(emotion, 1.0) - 1.0) * intensity
    amplitude, activity = style.head_amplitude * scale, min(1.0, style.head_activity * scale)
    speaking = _speaking(phones, t)

    # drift: an OU process whose clock runs slower in pauses
    pace = PAUSE_PACE + (1 - PAUSE_PACE) * speaking
    decay = np.exp(-pace / (FPS * DRIFT_SECONDS))
    kicks = rng.standard_normal((frames, HEAD_CHANNELS)) * DRIFT_STD * amplitude
    angles = np.zeros((frames, HEAD_CHANNELS))
    state = rng.standard_normal(HEAD_CHANNELS) * DRIFT_STD * amplitude
    for f in range(frames):
        state = decay[f] * state + np.sqrt(1 - decay[f] ** 2) * kicks[f]
        angles[f] = state

    # a new resting pose for each phrase: the step eases in over 0.5 s after a pause begins
    rest = np.zeros(HEAD_CHANNELS)
    for p in phones:
        if p.label == "pau" and p.duration > 0.2 and 0.3 < p.start and rng.random() < 0.3 + 0.6 * activity:
            pose = rng.standard_normal(HEAD_CHANNELS) * PHRASE_SHIFT_STD * amplitude
            ease = np.clip((t - p.start) / 0.5, 0.0, 1.0)
            angles += (0.5 - 0.5 * np.cos(np.pi * ease))[:, None] * (pose - rest)
            rest = pose

    # nods (pitch) and small turns (yaw) on prominent vowels
    for vowel, prominence in prominent_vowels(phones, audio):
        if prominence < 0.6 or rng.random() > 0.15 + 0.6 * activity * prominence:
            continue
        size = rng.uniform(*NOD_DEGREES) * DEG * amplitude * (0.6 + 0.4 * prominence)
        bump = _bump(t, vowel.start - rng.uniform(0.02, 0.1), rng.uniform(0.12, 0.2), rng.uniform(0.2, 0.35))
        if rng.random() < 0.7:
            angles[:, 1] += size * bump                                   # nod: pitch down and back
        else:
            angles[:, 0] += rng.choice((-1.0, 1.0)) * size * bump        # a small turn
            angles[:, 2] += rng.uniform(-0.3, 0.3) * size * bump

    return limit_speed(angles).astype(np.float32)
