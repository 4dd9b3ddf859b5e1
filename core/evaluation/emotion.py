"""Which emotion does a face show? A small classifier trained on the corpus generator's labels.

Features of a clip are the mean and the standard deviation over time of each of the 52 curves
(an emotion shifts the resting face; speech moves it): float32 [104]. The classifier is a
multinomial logistic regression on standardised features, fitted by full-batch gradient descent
(a few hundred clips, a second on a CPU). It learns the generator's emotions from the generator's
curves, so it recognises a generated clip's emotion only when the model shows it as the data does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.emotion import EMOTIONS


def clip_features(curves: np.ndarray) -> np.ndarray:
    """[104] from curves [F, 52]."""
    curves = np.asarray(curves, np.float32)
    return np.concatenate([curves.mean(0), curves.std(0)])


@dataclass
class EmotionClassifier:
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray      # [104 + 1, len(EMOTIONS)]

    @classmethod
    def fit(cls, features: np.ndarray, labels: list[str], steps: int = 500, lr: float = 0.5,
            l2: float = 1e-3) -> "EmotionClassifier":
        x = np.asarray(features, np.float64)
        mean, scale = x.mean(0), x.std(0) + 1e-6
        x = np.concatenate([(x - mean) / scale, np.ones((len(x), 1))], 1)
        y = np.eye(len(EMOTIONS))[[EMOTIONS.index(label) for label in labels]]
        w = np.zeros((x.shape[1], len(EMOTIONS)))
        for _ in range(steps):
            p = _softmax(x @ w)
            w -= lr * (x.T @ (p - y) / len(x) + l2 * w)
        return cls(mean, scale, w)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """[N, len(EMOTIONS)] class probabilities of features [N, 104]."""
        x = (np.atleast_2d(features) - self.mean) / self.scale
        return _softmax(np.concatenate([x, np.ones((len(x), 1))], 1) @ self.weights)

    def predict(self, features: np.ndarray) -> list[str]:
        return [EMOTIONS[i] for i in self.probabilities(features).argmax(1)]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)
