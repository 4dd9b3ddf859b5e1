"""On-disk cache of encoder features, so each clip is encoded once across training runs.

Layout: ``<cache>/v<CACHE_VERSION>/<encoder name>/<sha1 of the samples>.npy``. The key is
the audio *content* (float32 samples), not a file path, so a moved or renamed file still
hits and an edited file never returns stale features. The cache folder is
``$DIFFUSIONTALKER_CACHE`` or ``~/.cache/diffusiontalker/features``. Writes go to a
temporary file renamed into place, so a crash or two concurrent writers never leave a
half-written entry; an unreadable or mis-shaped entry is simply recomputed.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from core.audio.decode import duration_frames
from core.audio.encoders import SpeechEncoder

CACHE_ENV = "DIFFUSIONTALKER_CACHE"
CACHE_VERSION = 1  # bump whenever an encoder's output for the same name changes


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "diffusiontalker" / "features")


def audio_key(audio: np.ndarray) -> str:
    """SHA-1 of the samples as little-endian float32 (independent of the input dtype)."""
    return hashlib.sha1(np.ascontiguousarray(audio, dtype="<f4").tobytes()).hexdigest()


def cache_path(encoder_name: str, audio: np.ndarray, cache_dir: str | Path | None = None) -> Path:
    """Where the features of ``audio`` under ``encoder_name`` are (or would be) stored."""
    folder = re.sub(r"[^\w.-]+", "_", encoder_name)
    if folder != encoder_name:  # e.g. "hubert:/models/x": keep distinct names distinct
        folder += "-" + hashlib.sha1(encoder_name.encode()).hexdigest()[:8]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / f"v{CACHE_VERSION}" / folder / f"{audio_key(audio)}.npy"


def cached_encode(encoder: SpeechEncoder, audio: np.ndarray,
                  cache_dir: str | Path | None = None) -> np.ndarray:
    """``encoder.encode(audio)`` as float32, read from / written to the feature cache.

    Any object with ``name``, ``dim`` and ``encode`` works (it need not subclass
    :class:`SpeechEncoder`)."""
    path = cache_path(encoder.name, audio, cache_dir)
    expected = (duration_frames(len(audio)), encoder.dim)
    try:
        features = np.load(path)
        if features.shape == expected and features.dtype == np.float32:
            return features
    except (OSError, ValueError):
        pass  # missing or damaged entry: recompute below
    features = np.asarray(encoder.encode(audio), dtype=np.float32)
    _atomic_save(path, features)
    return features


def _atomic_save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        try:
            np.save(tmp, array)
        except BaseException:
            tmp.close()
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, path)
