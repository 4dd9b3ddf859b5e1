"""Emotions on a talking face: FACS action units as ARKit prototypes, composed with the visemes.

Each emotion is the prototype of its action units (Ekman & Friesen's FACS; the EMFACS
prototypes of the basic emotions), written as ARKit channels at full intensity:

- happy: AU6 cheek raiser + AU12 lip-corner puller -> cheekSquint, eyeSquint, mouthSmile (+ dimple);
- sad: AU1 inner-brow raiser + AU4 brow lowerer + AU15 lip-corner depressor (+ AU17 chin raiser)
  -> browInnerUp, browDown, mouthFrown, mouthShrugLower, a slightly lowered gaze;
- angry: AU4 + AU5 upper-lid raiser + AU7 lid tightener + AU23/24 lip tightener/presser (+ AU9)
  -> browDown, eyeWide, eyeSquint, mouthPress, noseSneer;
- surprised: AU1 + AU2 outer-brow raiser + AU5 + AU26 jaw drop -> browInnerUp, browOuterUp,
  eyeWide, jawOpen.

Composition (:func:`with_emotion`): the prototype times the intensity is added to the neutral
talking face. In the lower face (jaw, mouth, cheeks, nose) the emotion gives way wherever the
lips close for p/b/m, so a happy "b" still closes; the upper face takes it whole.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from core.arkit import INDEX, NUM_BLENDSHAPES
from core.data.phones import Phone
from core.emotion import EMOTIONS, NEUTRAL
from core.rates import FPS

_BILABIALS = frozenset({"p", "b", "m"})
CLOSURE_SMOOTH = 0.03      # seconds: the gate eases in and out around each closure

PROTOTYPES: dict[str, dict[str, float]] = {
    NEUTRAL: {},
    "happy": {"cheekSquint": 0.55, "eyeSquint": 0.35, "mouthSmile": 0.65, "mouthDimple": 0.2},
    "sad": {"browInnerUp": 0.6, "browDown": 0.25, "mouthFrown": 0.55, "mouthShrugLower": 0.3,
            "eyeLookDown": 0.1, "eyeSquint": 0.1},
    "angry": {"browDown": 0.7, "eyeWide": 0.2, "eyeSquint": 0.4, "mouthPress": 0.4, "noseSneer": 0.35,
              "mouthFrown": 0.2},
    "surprised": {"browInnerUp": 0.7, "browOuterUp": 0.7, "eyeWide": 0.6, "jawOpen": 0.2},
}
assert set(PROTOTYPES) == set(EMOTIONS)


def prototype(emotion: str) -> np.ndarray:
    """The emotion at full intensity as ARKit weights [52] (a name without a side means both)."""
    out = np.zeros(NUM_BLENDSHAPES, np.float32)
    for name, value in PROTOTYPES[emotion].items():
        for full in (name,) if name in INDEX else (name + "Left", name + "Right"):
            out[INDEX[full]] = value
    return out


_LOWER = np.array([not n.startswith(("brow", "eye")) for n in INDEX], bool)


def closure_gate(phones: list[Phone], frames: int) -> np.ndarray:
    """Per frame, 1 where the lips close for a p/b/m (eased at the edges), else 0."""
    t = (np.arange(frames) + 0.5) / FPS
    gate = np.zeros(frames)
    for p in phones:
        if p.label in _BILABIALS:
            gate[(t >= p.start - 0.02) & (t < p.end)] = 1.0
    return np.clip(gaussian_filter1d(gate, CLOSURE_SMOOTH * FPS, mode="nearest") * 1.5, 0.0, 1.0)


def with_emotion(face: np.ndarray, phones: list[Phone], emotion: str, intensity: float) -> np.ndarray:
    """A neutral talking face [F, 52] with ``emotion`` at ``intensity`` composed in (clipped to [0, 1])."""
    if emotion == NEUTRAL or intensity <= 0:
        return face.astype(np.float32)
    add = intensity * np.repeat(prototype(emotion)[None], len(face), 0)
    add[:, _LOWER] *= 1.0 - closure_gate(phones, len(face))[:, None]
    return np.clip(face + add, 0.0, 1.0).astype(np.float32)
