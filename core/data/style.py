"""A synthetic speaker's talking style: how the same phones become a face for this identity.

The lower-face parameters (amplitude, jaw-vs-lip emphasis, smile bias, asymmetry,
coarticulation speed, lead) make identities distinguishable from their motion, which is what
the identity embedding and the personalisation adapter learn. The upper-face parameters set the
rates and sizes of the stochastic events (blinks, brow raises, gaze shifts).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Style:
    amplitude: float = 1.0       # overall gain of mouth and jaw motion
    jaw_emphasis: float = 0.0    # -1: all lips, +1: all jaw (trades jaw gain against lip gain)
    smile_bias: float = 0.0      # constant mouthSmile added to the whole clip
    asymmetry: float = 0.0       # >0: left side moves more than the right (and vice versa)
    coarticulation: float = 1.0  # speed: higher = sharper transitions, less blending of phones
    lead: float = 0.03           # seconds the mouth anticipates the sound
    brow_activity: float = 0.5   # 0..1, how often and how high brows rise on prominent syllables
    blink_rate: float = 15.0     # blinks per minute
    gaze_activity: float = 0.5   # 0..1, how far and how often the eyes wander
    squint: float = 0.05         # resting eyeSquint
    head_amplitude: float = 1.0  # x every head angle (core/data/head_motion.py)
    head_activity: float = 0.5   # 0..1, how often the head nods and shifts

    def __post_init__(self):
        checks = {"amplitude": (0.2, 2.0), "jaw_emphasis": (-1, 1), "smile_bias": (0, 0.6),
                  "asymmetry": (-0.5, 0.5), "coarticulation": (0.3, 3.0), "lead": (0.0, 0.15),
                  "brow_activity": (0, 1), "blink_rate": (0, 60), "gaze_activity": (0, 1),
                  "squint": (0, 0.5), "head_amplitude": (0.2, 2.0), "head_activity": (0, 1)}
        for name, (lo, hi) in checks.items():
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise ValueError(f"style {name}={value} outside [{lo}, {hi}]")

    @property
    def jaw_gain(self) -> float:
        return self.amplitude * (1.0 + 0.35 * self.jaw_emphasis)

    @property
    def lip_gain(self) -> float:
        return self.amplitude * (1.0 - 0.35 * self.jaw_emphasis)

    def to_dict(self) -> dict:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}

    def describe(self) -> str:
        """The style in a few words for people: "calm, wide jaw", "lively, lip-led, smiling".

        Thresholds split :meth:`sample`'s ranges into thirds (amplitude, jaw emphasis) or mark
        the top of a range (smile, brows, blinks, asymmetry)."""
        words = ["calm" if self.amplitude < 0.93 else "expressive" if self.amplitude > 1.12 else "lively"]
        if self.jaw_emphasis > 0.27:
            words.append("wide jaw")
        elif self.jaw_emphasis < -0.27:
            words.append("lip-led")
        if self.smile_bias > 0.17:
            words.append("smiling")
        if abs(self.asymmetry) > 0.13:
            words.append("lopsided")
        if self.brow_activity > 0.75:
            words.append("busy brows")
        if self.blink_rate > 21:
            words.append("blinks often")
        if self.head_activity > 0.8 and self.head_amplitude > 1.1:
            words.append("animated head")
        return ", ".join(words)

    def with_head(self, rng: np.random.Generator) -> "Style":
        """This style with a head-motion style drawn from ``rng``: a stream of its own, so the
        styles of corpora built before head motion existed keep every other value."""
        return replace(self, head_amplitude=float(rng.uniform(0.6, 1.4)), head_activity=float(rng.uniform(0.2, 1.0)))

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Style":
        """A random but plausible style; the ranges span calm to very expressive speakers."""
        u = rng.uniform
        return cls(amplitude=u(0.75, 1.3), jaw_emphasis=u(-0.8, 0.8), smile_bias=u(0.0, 0.25),
                   asymmetry=u(-0.2, 0.2), coarticulation=u(0.8, 1.4), lead=u(0.0, 0.05),
                   brow_activity=u(0.15, 1.0), blink_rate=u(8.0, 26.0),
                   gaze_activity=u(0.2, 1.0), squint=u(0.0, 0.12))
