"""The whole performance of a corpus clip: an emotion at some intensity composed into the talking
face (core/data/emotion_face.py) and the head's motion (core/data/head_motion.py).

Both follow from the clip's phones, its audio as stored (16-bit wav), its speaker's style and a
random stream of the clip's own (seed, clip id), so a corpus built with them and a neutral corpus
upgraded to them (:mod:`core.data.corpus_upgrade`) hold the same clips.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data.emotion_face import with_emotion
from core.data.head_motion import head_motion
from core.data.phones import Phone
from core.data.style import Style
from core.emotion import EMOTIONS, NEUTRAL

PERFORMANCE_VERSION = "performance-1"
NEUTRAL_SHARE = 0.4               # the rest is shared evenly by the other emotions
INTENSITY_RANGE = (0.2, 1.0)
HEAD_SUFFIX = ".head.npy"         # <clip id>.head.npy: float32 [frames, 3] radians


@dataclass(frozen=True)
class Performance:
    face: np.ndarray            # float32 [F, 52], the emotion composed in
    head: np.ndarray            # float32 [F, 3] radians
    emotion: str
    intensity: float


def clip_rng(seed: int, clip_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(clip_id.encode()), 5])


def head_style(seed: int, identity_index: int, style: Style) -> Style:
    """The identity's style with its head-motion parameters (their own random stream)."""
    return style.with_head(np.random.default_rng([seed, 0x4EAD, identity_index]))


def perform(face: np.ndarray, phones: list[Phone], audio: np.ndarray, style: Style,
            rng: np.random.Generator) -> Performance:
    """Draw the clip's emotion and intensity, compose it into ``face``, draw the head's motion."""
    if rng.random() < NEUTRAL_SHARE:
        emotion, intensity = NEUTRAL, 0.0
    else:
        emotion = EMOTIONS[1 + int(rng.integers(len(EMOTIONS) - 1))]
        intensity = round(float(rng.uniform(*INTENSITY_RANGE)), 3)
    head = head_motion(phones, audio, len(face), style, rng, emotion, intensity)
    return Performance(with_emotion(face, phones, emotion, intensity), head, emotion, intensity)


def stored_phones(rows: list) -> list[Phone]:
    """Phones as a clip's JSON stores them ([label, start, end], 4 decimals)."""
    return [Phone(label, float(start), float(end)) for label, start, end in rows]


def write_performance(clip_stem: Path, result: Performance) -> None:
    np.save(clip_stem.with_suffix(".npy"), result.face.astype(np.float32))
    np.save(clip_stem.parent / (clip_stem.name + HEAD_SUFFIX), result.head.astype(np.float32))
