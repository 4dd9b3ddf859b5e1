"""What a user sets besides the audio, the identity, the steps and the seed: the emotion and its
intensity, whether the head moves, and how strongly the upper and lower face move.

One :class:`Controls` travels from every interface (page, HTTP API, CLI, Live) to
:meth:`core.inference.talker.Talker.generate`; its checks give the same messages everywhere.
The strengths scale the curves after sampling, as Audio2Face's upper/lower face strength does:
1 is the model's face, 0 a still face, 2 twice the motion (clipped at the ARKit range).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.arkit import ARKIT_NAMES
from core.emotion import NEUTRAL, check_emotion, check_fraction, emotion_vector

MAX_STRENGTH = 2.0
# Upper face: brows and eyes. Lower face: jaw, mouth, cheeks, nose and tongue.
UPPER = tuple(i for i, n in enumerate(ARKIT_NAMES) if n.startswith(("brow", "eye")))
LOWER = tuple(i for i, n in enumerate(ARKIT_NAMES) if not n.startswith(("brow", "eye")))


@dataclass(frozen=True)
class Controls:
    emotion: str = NEUTRAL
    intensity: float = 1.0          # 0..1; ignored for neutral
    head_motion: bool = True        # False: the head stays still (for users who drive it themselves)
    upper_strength: float = 1.0     # 0..2
    lower_strength: float = 1.0     # 0..2

    @classmethod
    def checked(cls, emotion=NEUTRAL, intensity=1.0, head_motion=True, upper_strength=1.0,
                lower_strength=1.0) -> "Controls":
        """Controls from untrusted values (forms, JSON, argv), or a ValueError that says which is wrong."""
        if not isinstance(head_motion, (bool, np.bool_)):
            raise ValueError(f"Head motion must be true or false, not {head_motion!r:.40}.")
        return cls(check_emotion(emotion), check_fraction(intensity, "the intensity"), bool(head_motion),
                   check_fraction(upper_strength, "the upper-face strength", 0.0, MAX_STRENGTH),
                   check_fraction(lower_strength, "the lower-face strength", 0.0, MAX_STRENGTH))

    @property
    def emotion_vector(self) -> np.ndarray:
        return emotion_vector(self.emotion, self.intensity)

    def describe(self) -> str:
        """For labels: "happy 0.7", "neutral", "sad 1.0, upper x1.5, head still"."""
        parts = [self.emotion if self.emotion == NEUTRAL else f"{self.emotion} {self.intensity:.1f}"]
        if self.upper_strength != 1.0:
            parts.append(f"upper x{self.upper_strength:g}")
        if self.lower_strength != 1.0:
            parts.append(f"lower x{self.lower_strength:g}")
        if not self.head_motion:
            parts.append("head still")
        return ", ".join(parts)

    def shape(self, blendshapes: np.ndarray, head: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply the strengths and the head switch to sampled curves [..., 52] and head [..., 3]."""
        if self.upper_strength != 1.0 or self.lower_strength != 1.0:
            blendshapes = blendshapes.copy()
            blendshapes[..., UPPER] *= self.upper_strength
            blendshapes[..., LOWER] *= self.lower_strength
            np.clip(blendshapes, 0.0, 1.0, out=blendshapes)
        if not self.head_motion:
            head = np.zeros_like(head)
        return blendshapes, head


def limits(config) -> dict[str, str]:
    """What a model with ``config`` (:class:`core.model.network.TalkerConfig`) cannot do, by the
    :class:`Controls` field that asks for it, each with why in a few words: a page disables those
    controls and says why instead of failing on first use."""
    why = {}
    if not config.emotions:
        why["emotion"] = "trained without emotions"
    if not config.head_channels:
        why["head_motion"] = "trained without head motion"
    return why


def check_honoured(controls: Controls, config, model: str = "This model") -> None:
    """Refuse, before any work, what ``model`` cannot do: an emotion of a model trained without
    emotions (its face would silently be neutral). A head switch on a model without head motion
    asks for nothing it lacks: the head is still either way."""
    if controls.emotion != NEUTRAL and "emotion" in limits(config):
        raise ValueError(f"{model} was {limits(config)['emotion']}; choose neutral.")


def clip_controls(emotion: tuple[str, float], emotions_known: bool) -> Controls:
    """The controls that reproduce a corpus clip's performance (its (emotion, intensity),
    ``TalkingClip.emotion``) for a model that reads emotions (``emotions_known``); the plain face else."""
    return Controls(*emotion) if emotions_known else Controls()
