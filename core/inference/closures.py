"""The lips' closures win over the emotion: an emotional face's lower half gives way to the plain
face wherever the plain face shuts its lips for a moment (a p, b or m).

The corpus draws an emotional face as the neutral talking face plus the emotion's prototype, whose
jaw, mouth, cheek and nose part is taken away wherever the lips close for a p/b/m
(:func:`core.data.emotion_face.with_emotion`). The models learned most of that but not under the
emotions that open the jaw: on the real validation recordings distilled-8 closed 0.817 of the
p/b/m with a neutral face and 0.654 when surprised (docs/DECISIONS.md "Closures under emotion").
So the rule is applied as the data has it, with the closures taken from the model's own neutral
face (same audio, identity, seed and step count; it has no phones): every run of frames where its
lip aperture (jawOpen - mouthClose) is at most :data:`SHUT` and which lasts at most
:data:`LONGEST` seconds is a closure (longer runs are the mouth resting shut, where the emotion
stays), and the frame on each side of it is half one. The price is a second decoding for
an emotional request.
"""
from __future__ import annotations

import numpy as np

from core.arkit import INDEX
from core.inference.controls import LOWER
from core.rates import FPS

SHUT = 0.1         # lip aperture at most this: shut (the closure metric's own level, core.evaluation.lipsync)
LONGEST = 0.35     # seconds: a shut run longer than this is a mouth at rest, not a p/b/m


def closure_gate(plain: np.ndarray) -> np.ndarray:
    """[F] in [0, 1] from the plain face's curves [F, >= 52]: 1 on its brief closures, 0.5 on the
    frame either side, else 0."""
    aperture = plain[:, INDEX["jawOpen"]] - plain[:, INDEX["mouthClose"]]
    shut = np.r_[False, aperture <= SHUT, False]
    edges = np.flatnonzero(np.diff(shut.astype(np.int8)))
    gate = np.zeros(len(aperture), np.float32)
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start <= LONGEST * FPS:
            gate[start:stop] = 1.0
    beside = 0.5 * np.maximum(np.r_[gate[1:], 0.0], np.r_[0.0, gate[:-1]])
    return np.maximum(gate, beside)


def frames_after() -> int:
    """Frames after a frame that :func:`closure_gate` looks at to decide it: the rest of a run
    up to :data:`LONGEST`, and the frame beside (a stream's frame waits for them: Stream.due)."""
    return int(LONGEST * FPS) + 1


def applies(controls, config) -> bool:
    """Whether a request gets the rule: an emotion asked of a bidirectional model. A causal
    model's stream decodes each frame before the frames after it are heard, so it could not know
    where a closure ends; it keeps the model's own face, offline and live alike."""
    return bool(config.bidirectional and np.any(controls.emotion_vector))


def give_way(emotional: np.ndarray, plain: np.ndarray) -> np.ndarray:
    """The emotional channels [..., F, C] with their lower face moved to the plain face's (same
    shape) by :func:`closure_gate` of the plain face; the upper face and the head as they were."""
    if emotional.ndim > 2:
        return np.stack([give_way(e, p) for e, p in zip(emotional, plain)])
    gate = closure_gate(plain)[:, None]
    out = emotional.copy()
    lower = list(LOWER)
    out[:, lower] += gate * (plain[:, lower] - emotional[:, lower])
    return out
