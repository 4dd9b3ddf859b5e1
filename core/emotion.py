"""Emotions a user can ask for, and the condition vector the model reads.

Neutral is no emotion: its vector is all zeros, whatever the intensity, so a neutral request is
the model's plain face. Every other emotion is one axis of the vector, scaled by the intensity
in [0, 1]. The model also knows "unspecified" (the condition dropped in training, for guidance:
:meth:`core.model.network.DiffusionTalker.condition`), which no user picks.
"""
from __future__ import annotations

import numpy as np

from core.inputs import shown

NEUTRAL = "neutral"
EMOTIONS: tuple[str, ...] = (NEUTRAL, "happy", "sad", "angry", "surprised")
AXES: tuple[str, ...] = EMOTIONS[1:]          # the condition vector's axes


def check_emotion(emotion) -> str:
    """``emotion`` as one of :data:`EMOTIONS` (case and spaces forgiven), or a plain ValueError."""
    name = emotion.strip().lower() if isinstance(emotion, str) else emotion
    if name in (None, ""):
        return NEUTRAL
    if name not in EMOTIONS:
        raise ValueError(f"Unknown emotion {shown(emotion)}: choose one of {', '.join(EMOTIONS)}.")
    return name


def check_fraction(value, what: str, low: float = 0.0, high: float = 1.0) -> float:
    """A number in [low, high] from a form, the API or Python, or a ValueError naming ``what``."""
    refused = ValueError(f"{what[:1].upper() + what[1:]} must be a number from {low:g} to {high:g}, "
                         f"not {shown(value)}.")
    if isinstance(value, bool) or value is None:
        raise refused
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise refused from None
    if not (low <= number <= high):          # also refuses NaN
        raise refused
    return number


def emotion_vector(emotion: str, intensity: float) -> np.ndarray:
    """float32 [len(AXES)]: ``intensity`` on the emotion's axis, zeros for neutral."""
    vector = np.zeros(len(AXES), np.float32)
    emotion = check_emotion(emotion)
    if emotion != NEUTRAL:
        vector[AXES.index(emotion)] = check_fraction(intensity, "the intensity")
    return vector
