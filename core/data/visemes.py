"""Lower face from phone timings: phone -> viseme -> ARKit targets, blended by coarticulation.

Coarticulation follows the dominance model of Cohen & Massaro (1993): every phone pulls the face
towards its viseme target with a dominance that is full inside its span and falls off as a
Gaussian of the distance outside it; the face at time t is the dominance-weighted mean of all targets.
Dominance is given separately for the jaw and the lips, so that a /t/ sets the jaw but lets the
lips take the shape of the neighbouring vowel ("too" is puckered during the /t/), while /p b m/
dominate the lips and close them whatever the context. A speaker's coarticulation speed scales
the decay time constant.

Lip closure is modelled as its own internal channel and converted to ARKit's ``mouthClose``,
which means "lips together *despite* an open jaw": ``mouthClose = closure² * jawOpen``.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from core.arkit import ARKIT_NAMES, INDEX, NUM_BLENDSHAPES
from core.rates import FPS
from core.data.style import Style
from core.data.phones import Phone

# Viseme targets. "mouthSmile" etc. without a side mean both sides. "closure" is internal.
VISEMES: dict[str, dict[str, float]] = {
    "rest": {"closure": 1.0},
    "PP": {"jawOpen": 0.10, "closure": 1.0, "mouthPress": 0.45, "mouthRollLower": 0.20,
           "mouthRollUpper": 0.15, "cheekPuff": 0.04},
    "FF": {"jawOpen": 0.10, "mouthRollLower": 0.55, "mouthUpperUp": 0.25,
           "mouthShrugUpper": 0.10},
    "TH": {"jawOpen": 0.18, "tongueOut": 0.35, "mouthLowerDown": 0.10, "mouthUpperUp": 0.10},
    "DD": {"jawOpen": 0.16, "mouthLowerDown": 0.08},
    "SS": {"jawOpen": 0.07, "mouthStretch": 0.25, "mouthSmile": 0.10, "mouthUpperUp": 0.10},
    "SH": {"jawOpen": 0.12, "mouthFunnel": 0.45, "mouthPucker": 0.30, "mouthShrugUpper": 0.25,
           "mouthUpperUp": 0.15, "mouthLowerDown": 0.15},
    "KK": {"jawOpen": 0.22},
    "Y": {"jawOpen": 0.12, "mouthStretch": 0.30, "mouthSmile": 0.25},
    "RR": {"jawOpen": 0.15, "mouthPucker": 0.35, "mouthFunnel": 0.20},
    "WW": {"jawOpen": 0.10, "mouthPucker": 0.75, "mouthFunnel": 0.30},
    "HH": {"jawOpen": 0.20},
    "AA": {"jawOpen": 0.62, "mouthLowerDown": 0.35, "mouthUpperUp": 0.10, "mouthStretch": 0.08},
    "AE": {"jawOpen": 0.50, "mouthLowerDown": 0.30, "mouthUpperUp": 0.12, "mouthStretch": 0.28},
    "AH": {"jawOpen": 0.42, "mouthLowerDown": 0.22},
    "AX": {"jawOpen": 0.28, "mouthLowerDown": 0.12},
    "AO": {"jawOpen": 0.50, "mouthFunnel": 0.45, "mouthPucker": 0.15, "mouthLowerDown": 0.15},
    "EH": {"jawOpen": 0.36, "mouthStretch": 0.25, "mouthLowerDown": 0.20, "mouthSmile": 0.10},
    "ER": {"jawOpen": 0.25, "mouthFunnel": 0.30, "mouthPucker": 0.30, "mouthShrugUpper": 0.10},
    "IH": {"jawOpen": 0.22, "mouthStretch": 0.30, "mouthSmile": 0.15},
    "IY": {"jawOpen": 0.14, "mouthStretch": 0.45, "mouthSmile": 0.30, "mouthUpperUp": 0.10},
    "OW": {"jawOpen": 0.40, "mouthFunnel": 0.55, "mouthPucker": 0.35},
    "UH": {"jawOpen": 0.22, "mouthPucker": 0.45, "mouthFunnel": 0.30},
    "UW": {"jawOpen": 0.14, "mouthPucker": 0.80, "mouthFunnel": 0.35},
}

# (jaw dominance, lip dominance) per viseme.
DOMINANCE: dict[str, tuple[float, float]] = {
    "rest": (1.0, 1.0), "PP": (4.0, 5.0), "FF": (3.0, 4.0), "TH": (1.5, 0.8), "DD": (1.0, 0.3),
    "SS": (1.5, 0.8), "SH": (1.2, 2.5), "KK": (0.8, 0.2), "Y": (0.8, 0.8), "RR": (0.8, 1.2),
    "WW": (1.0, 3.0), "HH": (0.2, 0.2), "AX": (0.6, 0.6),
}
VOWEL_DOMINANCE = (1.0, 1.0)

# ARPAbet -> viseme sequence; diphthongs glide between two visemes (fractions of the span).
PHONE_VISEMES: dict[str, tuple[tuple[str, float], ...]] = {
    "pau": (("rest", 1.0),),
    "p": (("PP", 1.0),), "b": (("PP", 1.0),), "m": (("PP", 1.0),),
    "f": (("FF", 1.0),), "v": (("FF", 1.0),), "th": (("TH", 1.0),), "dh": (("TH", 1.0),),
    "t": (("DD", 1.0),), "d": (("DD", 1.0),), "n": (("DD", 1.0),), "l": (("DD", 1.0),),
    "s": (("SS", 1.0),), "z": (("SS", 1.0),),
    "sh": (("SH", 1.0),), "zh": (("SH", 1.0),), "ch": (("SH", 1.0),), "jh": (("SH", 1.0),),
    "k": (("KK", 1.0),), "g": (("KK", 1.0),), "ng": (("KK", 1.0),),
    "y": (("Y", 1.0),), "r": (("RR", 1.0),), "w": (("WW", 1.0),), "hh": (("HH", 1.0),),
    "aa": (("AA", 1.0),), "ae": (("AE", 1.0),), "ah": (("AH", 1.0),), "ax": (("AX", 1.0),),
    "ao": (("AO", 1.0),), "eh": (("EH", 1.0),), "er": (("ER", 1.0),), "ih": (("IH", 1.0),),
    "iy": (("IY", 1.0),), "uh": (("UH", 1.0),), "uw": (("UW", 1.0),),
    "aw": (("AA", 0.55), ("UH", 0.45)), "ay": (("AA", 0.55), ("IH", 0.45)),
    "ey": (("EH", 0.5), ("IY", 0.5)), "ow": (("OW", 0.6), ("UW", 0.4)),
    "oy": (("AO", 0.5), ("IY", 0.5)),
}

# Internal channel layout: the 52 ARKit channels + "closure".
_CLOSURE = NUM_BLENDSHAPES
_JAW_CHANNELS = ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight", "tongueOut")
_JAW_MASK = np.zeros(NUM_BLENDSHAPES + 1, bool)
_JAW_MASK[[INDEX[n] for n in _JAW_CHANNELS]] = True

OVERSAMPLE = 4           # evaluate at 120 Hz, average down to 30 fps
BASE_DECAY = 0.03        # seconds: Gaussian fall-off of dominance outside a phone's span
SMOOTH_SECONDS = 0.015   # light Gaussian smoothing removes the kinks at span edges


def _target_vector(weights: dict[str, float]) -> np.ndarray:
    vec = np.zeros(NUM_BLENDSHAPES + 1, np.float32)
    for name, value in weights.items():
        if name == "closure":
            vec[_CLOSURE] = value
        elif name in INDEX:
            vec[INDEX[name]] = value
        else:
            vec[INDEX[name + "Left"]] = vec[INDEX[name + "Right"]] = value
    return vec


_TARGETS = {name: _target_vector(w) for name, w in VISEMES.items()}


def viseme_segments(phones: list[Phone]) -> list[tuple[str, float, float]]:
    """Split phones into viseme spans (diphthongs become two)."""
    segments = []
    for phone in phones:
        if phone.label not in PHONE_VISEMES:
            raise ValueError(f"unknown phone {phone.label!r} (expected ARPAbet or 'pau')")
        start = phone.start
        for viseme, fraction in PHONE_VISEMES[phone.label]:
            end = start + fraction * phone.duration
            segments.append((viseme, start, end))
            start = end
    return segments


def _dominance(viseme: str, duration: float) -> tuple[float, float]:
    if viseme == "rest":   # a short pause between words barely closes the mouth, a long one does
        strength = 0.3 + 0.9 * min(1.0, duration / 0.3)
        return strength, strength
    return DOMINANCE.get(viseme, VOWEL_DOMINANCE)


def lower_face(phones: list[Phone], frames: int, style: Style = Style()) -> np.ndarray:
    """ARKit jaw/mouth/cheek/tongue curves [frames, 52] at 30 fps (upper face left at 0)."""
    if frames <= 0:
        raise ValueError(f"frames must be positive, got {frames}")
    if not phones:
        raise ValueError("no phones")
    segments = viseme_segments(phones)
    t = (np.arange(frames * OVERSAMPLE) + 0.5) / (FPS * OVERSAMPLE)
    starts = np.array([s for _, s, _ in segments]) - style.lead
    ends = np.array([e for _, _, e in segments]) - style.lead
    dist = np.maximum(0.0, np.maximum(starts[:, None] - t, t - ends[:, None]))   # [S, T]
    decay = np.exp(-(dist / (BASE_DECAY / style.coarticulation)) ** 2)
    dom = np.array([_dominance(v, e - s) for v, s, e in segments])              # [S, 2]
    targets = np.stack([_TARGETS[v] for v, _, _ in segments])                     # [S, C]
    out = np.empty((len(t), NUM_BLENDSHAPES + 1), np.float64)
    for group, mask in enumerate((_JAW_MASK, ~_JAW_MASK)):
        weight = decay * dom[:, group:group + 1] + 1e-9
        out[:, mask] = (weight.T @ targets[:, mask]) / weight.sum(axis=0)[:, None]
    out = gaussian_filter1d(out, SMOOTH_SECONDS * FPS * OVERSAMPLE, axis=0, mode="nearest")
    out = out.reshape(frames, OVERSAMPLE, -1).mean(axis=1)
    return _apply_style(out, style)


def _apply_style(raw: np.ndarray, style: Style) -> np.ndarray:
    """Speaker gains, smile bias and left/right asymmetry; closure -> mouthClose."""
    face = raw[:, :NUM_BLENDSHAPES] * np.where(_JAW_MASK[:NUM_BLENDSHAPES], style.jaw_gain,
                                                style.lip_gain)
    for side in ("Left", "Right"):
        face[:, INDEX["mouthSmile" + side]] += style.smile_bias
        face[:, INDEX["cheekSquint" + side]] += 0.4 * style.smile_bias
    face = apply_asymmetry(face, style.asymmetry, prefixes=("mouth", "cheek"))
    side = "mouthLeft" if style.asymmetry > 0 else "mouthRight"
    face[:, INDEX[side]] += 0.3 * abs(style.asymmetry) * np.clip(raw[:, INDEX["jawOpen"]], 0, 1)
    # lips touch only near full closure, so partial closure counts quadratically
    face[:, INDEX["mouthClose"]] = np.clip(raw[:, _CLOSURE], 0, 1) ** 2 * face[:, INDEX["jawOpen"]]
    return np.clip(face, 0.0, 1.0).astype(np.float32)


_PAIRS = [(INDEX[n], INDEX[n[:-4] + "Right"]) for n in ARKIT_NAMES if n.endswith("Left")
          and n[:-4] + "Right" in INDEX]


def apply_asymmetry(face: np.ndarray, asymmetry: float, prefixes: tuple[str, ...]) -> np.ndarray:
    """Scale Left channels by (1 + a) and Right channels by (1 - a) for the given prefixes."""
    for left, right in _PAIRS:
        if ARKIT_NAMES[left].startswith(prefixes):
            face[:, left] *= 1.0 + asymmetry
            face[:, right] *= 1.0 - asymmetry
    return face
