"""One dataset interface for training and evaluation, whatever the source.

``load_clips(source)`` reads the synthetic corpus, a BEAT release or a Live Link Face capture
folder into :class:`~core.data.clip.TalkingClip` records; :class:`FeatureDataset` pairs each
clip with cached speech-encoder features at 30 fps and serves random fixed-length crops.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from core.data.clip import TalkingClip, read_corpus
from core.emotion import AXES, emotion_vector
from core.head_pose import to_channels

MAX_FRAME_MISMATCH = 3  # audio vs curves length tolerance (frames) before a clip is rejected


def detect_format(source: Path) -> str:
    if (source / "index.jsonl").is_file():
        return "corpus"
    if any(source.rglob("*.json")):   # BEAT first: a BEAT tree may also hold CSV side files
        return "beat"
    if any(source.rglob("*.csv")):
        return "livelink"
    raise ValueError(f"{source}: no corpus index.jsonl, BEAT JSON or Live Link Face CSV found")


def load_clips(source: str | Path, splits: tuple[str, ...] | None = None, fmt: str = "auto") -> list[TalkingClip]:
    source = Path(source)
    if not source.is_dir():
        raise ValueError(f"dataset folder {source} does not exist")
    fmt = detect_format(source) if fmt == "auto" else fmt
    if fmt == "corpus":
        clips = read_corpus(source, splits)
    elif fmt == "beat":
        from core.data.beat import load_beat
        clips = [c for c in load_beat(source) if splits is None or c.split in splits]
    elif fmt == "livelink":
        from core.data.livelink import load_livelink_folder
        clips = [c for c in load_livelink_folder(source) if splits is None or c.split in splits]
    else:
        raise ValueError(f"unknown dataset format {fmt!r} (corpus, beat, livelink)")
    if not clips:
        raise ValueError(f"{source}: no clips for splits {splits}")
    return clips


def data_fingerprint(clips: list[TalkingClip]) -> str:
    h = hashlib.sha1()
    for c in sorted(clips, key=lambda c: c.id):
        h.update(f"{c.id}:{c.identity}:{c.split}:{c.frames}".encode())
    return h.hexdigest()[:16]


@dataclass
class FeatureClip:
    clip: TalkingClip
    features: np.ndarray  # float16 [F, A]
    curves: np.ndarray    # float32 [F, C]: the 52 curves, then the head's channels when every clip has them
    identity: int         # index into the model's library (-1 if not in it)
    emotion: np.ndarray   # float32 [len(AXES)]: the clip's emotion x intensity (core/emotion.py)


class Batch(NamedTuple):
    """Random crops of a few clips (training, validation, enrolment)."""
    audio: torch.Tensor      # [B, L, A] encoder features
    curves: torch.Tensor     # [B, L, C] in [0, 1]
    mask: torch.Tensor       # [B, L] 1 on real frames
    identity: torch.Tensor   # [B] long
    emotion: torch.Tensor    # [B, len(AXES)]


class FeatureDataset:
    """Clips with encoder features aligned to their curves; features come from the disk cache."""

    def __init__(self, clips: list[TalkingClip], encoder, identity_names: list[str], progress: bool = True):
        from core.audio.feature_cache import cached_encode
        self.identity_names = list(identity_names)
        index = {n: i for i, n in enumerate(self.identity_names)}
        self.items: list[FeatureClip] = []
        self.has_head = all(clip.head is not None for clip in clips)    # all or none: one channel count
        for clip in tqdm(clips, desc=f"features ({encoder.name})", disable=not progress, leave=False):
            feats = cached_encode(encoder, clip.load_audio())
            n = min(len(feats), clip.frames)
            if abs(len(feats) - clip.frames) > MAX_FRAME_MISMATCH:
                raise ValueError(f"clip {clip.id}: audio gives {len(feats)} frames, curves have {clip.frames}")
            curves = clip.blendshapes[:n]
            if self.has_head:
                curves = np.concatenate([curves, to_channels(clip.head[:n])], 1)
            self.items.append(FeatureClip(clip, feats[:n].astype(np.float16), curves,
                                          index.get(clip.identity, -1), emotion_vector(*clip.emotion)))
        if not self.items:
            raise ValueError("empty dataset")
        self.feature_dim = self.items[0].features.shape[1]

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, indices, crop_frames: int, rng: np.random.Generator) -> Batch:
        """Random crops of ``crop_frames`` (shorter clips padded and masked)."""
        items = [self.items[i] for i in indices]
        length = min(crop_frames, max(len(it.curves) for it in items))
        b = len(items)
        audio = np.zeros((b, length, self.feature_dim), np.float32)
        curves = np.zeros((b, length, items[0].curves.shape[1]), np.float32)
        mask = np.zeros((b, length), np.float32)
        for row, it in enumerate(items):
            n = len(it.curves)
            start = int(rng.integers(0, n - length + 1)) if n > length else 0
            m = min(length, n)
            audio[row, :m] = it.features[start:start + m]
            curves[row, :m] = it.curves[start:start + m]
            mask[row, :m] = 1.0
        ident = torch.tensor([it.identity for it in items], dtype=torch.long)
        emotion = torch.from_numpy(np.stack([it.emotion for it in items]))
        return Batch(torch.from_numpy(audio), torch.from_numpy(curves), torch.from_numpy(mask), ident, emotion)
