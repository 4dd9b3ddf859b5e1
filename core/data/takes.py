"""From one recorded take (curves at any rate + its audio) to 10-second training clips.

Captured datasets (BEAT, Live Link Face) share this step, so it lives here once:
resample the curves to 30 fps, check that audio and animation last equally long, and cut
both into 300-frame chunks, FaceDiffuser-style (a shorter tail is dropped unless
``min_frames`` allows it). Chunks keep their audio in memory (64 kB per second).
"""
from __future__ import annotations

import numpy as np

from core.data.clip import TalkingClip
from core.rates import FPS, SAMPLE_RATE

CHUNK_FRAMES = 300          # 10 s at 30 fps
MAX_OFFSET_S = 0.5          # tolerated audio/animation length difference per take
MAX_TAKE_SECONDS = 3600.0   # audio length limit passed to core.audio.decode.load_audio


def resample_curves(curves: np.ndarray, src_fps: float, dst_fps: float = FPS) -> np.ndarray:
    """Linear resampling of ``[T, C]`` curves on a grid starting at the first frame.

    An integer ratio keeps exactly every n-th frame (60 -> 30 fps is ``curves[::2]``).
    """
    curves = np.asarray(curves, dtype=np.float32)
    if src_fps <= 0 or dst_fps <= 0:
        raise ValueError(f"frame rates must be positive, got {src_fps} -> {dst_fps}")
    if src_fps == dst_fps or len(curves) < 2:
        return curves
    ratio = src_fps / dst_fps                                   # source frames per output frame
    if float(ratio).is_integer():
        return curves[::int(ratio)].copy()
    count = int(np.floor((len(curves) - 1) / ratio + 1e-9)) + 1
    positions = np.arange(count) * ratio
    return np.stack([np.interp(positions, np.arange(len(curves)), c) for c in curves.T],
                    axis=1).astype(np.float32)


def chunk_take(take_id: str, identity: str, curves: np.ndarray, fps: float, audio: np.ndarray, *,
               split: str = "train", extras: dict | None = None, min_frames: int = CHUNK_FRAMES,
               max_offset_s: float = MAX_OFFSET_S) -> list[TalkingClip]:
    """Cut one take into clips ``<take_id>_000``, ``_001`` ... of at most 300 frames at 30 fps.

    ``audio`` is float32 16 kHz mono covering the whole take from its first frame. A length
    difference above ``max_offset_s`` means the wrong file or a cut recording and raises
    ``ValueError``; a smaller one is absorbed (the audio is trimmed or padded with silence).
    """
    curves = resample_curves(curves, fps)
    anim_s, audio_s = len(curves) / FPS, len(audio) / SAMPLE_RATE
    if abs(anim_s - audio_s) > max_offset_s:
        raise ValueError(f"take {take_id}: the audio lasts {audio_s:.2f} s but the animation "
                         f"{anim_s:.2f} s (more than {max_offset_s:g} s apart); check that the "
                         "audio file belongs to this take")
    if min_frames < 1 or min_frames > CHUNK_FRAMES:
        raise ValueError(f"min_frames must be between 1 and {CHUNK_FRAMES}, got {min_frames}")
    clips = []
    for k, start in enumerate(range(0, len(curves), CHUNK_FRAMES)):
        stop = min(start + CHUNK_FRAMES, len(curves))
        if stop - start < min_frames:
            break
        a, b = _sample_index(start), _sample_index(stop)
        chunk_audio = np.zeros(b - a, dtype=np.float32)
        piece = audio[a:b]
        chunk_audio[:len(piece)] = piece
        clips.append(TalkingClip(
            id=f"{take_id}_{k:03d}", identity=identity, split=split, wav_path=None,
            blendshapes=curves[start:stop].copy(), audio=chunk_audio,
            extras={**(extras or {}), "take": take_id, "start_frame": start}))
    return clips


def _sample_index(frame: int) -> int:
    """First audio sample of an animation frame (exact integer arithmetic)."""
    return (frame * SAMPLE_RATE + FPS // 2) // FPS
