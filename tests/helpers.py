"""Small generated fixtures shared by the model, training and pipeline tests."""
from __future__ import annotations

import numpy as np

from core.arkit import INDEX, NUM_BLENDSHAPES
from core.audio import duration_frames
from core.data.clip import SAMPLE_RATE, TalkingClip


class ToyEncoder:
    """A cheap stand-in speech encoder: per-frame loudness and a pitch-dependent signature.

    Frame count follows the real encoders (duration_frames), so it exercises the same paths.
    """
    name = "toy-encoder"
    dim = 8

    def encode(self, audio: np.ndarray) -> np.ndarray:
        n = duration_frames(len(audio))
        hop = SAMPLE_RATE // 30
        frames = np.stack([audio[i * hop:(i + 1) * hop] if i * hop < len(audio) else np.zeros(hop, np.float32)
                           for i in range(n)])
        frames = np.pad(frames, ((0, 0), (0, hop - frames.shape[1]))) if frames.shape[1] < hop else frames
        loud = np.sqrt((frames ** 2).mean(1))
        spec = np.abs(np.fft.rfft(frames, axis=1))[:, 1:8]
        spec = spec / (spec.sum(1, keepdims=True) + 1e-6)
        return np.concatenate([loud[:, None] * 5, spec], 1).astype(np.float32)


def toy_clip(identity: int, seed: int, split: str = "train", seconds: float = 2.0) -> TalkingClip:
    """A tone whose loudness drives jawOpen; the identity sets pitch and lip amplitude."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (1.5 + rng.random()) * t + rng.random() * 6)
    pitch = [220.0, 700.0, 1500.0, 3000.0][identity % 4]
    audio = (0.3 * envelope * np.sin(2 * np.pi * pitch * t)).astype(np.float32)
    frames = duration_frames(n)
    env_frames = envelope[(np.arange(frames) * SAMPLE_RATE // 30).clip(max=n - 1)]
    curves = np.zeros((frames, NUM_BLENDSHAPES), np.float32)
    curves[:, INDEX["jawOpen"]] = env_frames * (0.4 + 0.15 * identity)
    curves[:, INDEX["mouthSmileLeft"]] = 0.1 * identity
    curves[:, INDEX["eyeBlinkLeft"]] = rng.random() * 0.2
    return TalkingClip(id=f"id{identity}-{seed}", identity=f"id{identity}", split=split, wav_path=None,
                       blendshapes=curves, audio=audio)
