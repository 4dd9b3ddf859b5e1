"""The one record every data source produces: audio + ARKit curves + identity + split.

On-disk corpus layout (written by ``core.data.synth``, readable by :func:`read_corpus`)::

    <root>/meta.json          {"name", "fps": 30, "sample_rate": 16000, "identities": [...],
                               "blendshape_names": ARKIT_NAMES, "fingerprint", ...}
    <root>/index.jsonl        one line per clip: {"id", "identity", "split", "frames", "text"}
    <root>/clips/<id>.wav     16 kHz mono
    <root>/clips/<id>.npy     float32 [frames, 52], canonical ARKit order, 30 fps
    <root>/clips/<id>.json    optional extras (phoneme timings, voice parameters)
    <root>/clips/<id>.head.npy  optional float32 [frames, 3] head yaw/pitch/roll in radians
                              (index rows then also carry "emotion" and "intensity": core.data.performance)

Splits: ``train``, ``val``, ``test`` (held-out sentences of seen identities) and
``test_unseen`` (identities never seen in training).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.arkit import NUM_BLENDSHAPES

SPLITS = ("train", "val", "test", "test_unseen")


@dataclass
class TalkingClip:
    id: str
    identity: str
    split: str
    wav_path: Path | None          # 16 kHz mono wav on disk (None when audio is in memory)
    blendshapes: np.ndarray        # float32 [frames, 52] canonical ARKit order at 30 fps
    audio: np.ndarray | None = None  # float32 16 kHz mono, when not read from wav_path
    extras: dict = field(default_factory=dict)
    head: np.ndarray | None = None   # float32 [frames, 3] head yaw/pitch/roll, radians (core/head_pose.py)

    @property
    def emotion(self) -> tuple[str, float]:
        """(emotion, intensity) the clip was performed with; neutral for data without the label."""
        return self.extras.get("emotion", "neutral"), float(self.extras.get("intensity", 0.0))

    @property
    def frames(self) -> int:
        return int(self.blendshapes.shape[0])

    def load_audio(self) -> np.ndarray:
        if self.audio is not None:
            return self.audio
        from core.audio.decode import load_audio
        return load_audio(self.wav_path)


def read_corpus(root: str | Path, splits: tuple[str, ...] | None = None) -> list[TalkingClip]:
    """Read a corpus folder in the layout above. Raises ValueError with a clear message."""
    root = Path(root)
    index = root / "index.jsonl"
    if not index.is_file():
        raise ValueError(f"{root} is not a corpus folder (no index.jsonl)")
    clips = []
    for line_no, line in enumerate(index.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{index}:{line_no}: not JSON ({err})") from None
        if splits is not None and row["split"] not in splits:
            continue
        curves = np.load(root / "clips" / f"{row['id']}.npy").astype(np.float32)
        if curves.ndim != 2 or curves.shape[1] != NUM_BLENDSHAPES:
            raise ValueError(f"clip {row['id']}: curves have shape {curves.shape}, want [frames, 52]")
        head_path = root / "clips" / f"{row['id']}.head.npy"
        head = np.load(head_path).astype(np.float32) if head_path.is_file() else None
        if head is not None and head.shape != (len(curves), 3):
            raise ValueError(f"clip {row['id']}: head has shape {head.shape}, want [{len(curves)}, 3]")
        clips.append(TalkingClip(id=row["id"], identity=row["identity"], split=row["split"],
                                 wav_path=root / "clips" / f"{row['id']}.wav", blendshapes=curves,
                                 extras={k: v for k, v in row.items() if k not in ("id", "identity", "split")},
                                 head=head))
    return clips


def read_meta(root: str | Path) -> dict:
    return json.loads((Path(root) / "meta.json").read_text())
