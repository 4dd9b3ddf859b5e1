"""Live Link Face captures: folders of ``<take>.csv`` + ``<take>.wav`` -> TalkingClip list.

The iPhone app records each take as a CSV of ARKit weights (30 or 60 fps) beside a video;
put the take's audio next to its CSV under the same name (``.wav``/``.flac``, or the app's
own ``.mov``/``.mp4``, whose sound track is decoded with ffmpeg). The CSV is read by
:func:`core.face.export.read_livelink_csv`; 60 fps takes are resampled to 30 fps, audio and
animation must last equally long (see :mod:`core.data.takes`), and each take is cut into
10-second clips. All clips of a folder share one identity: the name given, else the
folder's name - record one person per folder.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from core.audio.decode import load_audio
from core.data.clip import TalkingClip
from core.data.takes import CHUNK_FRAMES, MAX_OFFSET_S, MAX_TAKE_SECONDS, chunk_take
from core.face.export import read_livelink_csv

AUDIO_SUFFIXES = (".wav", ".flac", ".mov", ".mp4", ".m4a")   # first match wins


def load_livelink_folder(folder: str | Path, identity: str | None = None, split: str = "train", *,
                         min_frames: int = CHUNK_FRAMES,
                         max_offset_s: float = MAX_OFFSET_S) -> list[TalkingClip]:
    """Every take found under ``folder`` (recursively), cut into 10-second clips.

    CSVs without an audio file of the same name are skipped with a warning; a folder with
    no usable take at all raises ``ValueError``. ``min_frames`` keeps a shorter last chunk
    (e.g. 60 keeps tails of 2 s and more); by default only full 10-second chunks are kept.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"Live Link Face folder not found: {folder}")
    identity = identity or folder.resolve().name
    pairs, orphans = [], []
    for csv_path in sorted(folder.rglob("*.csv")):
        audio_path = find_audio(csv_path)
        if audio_path is None:
            orphans.append(csv_path.relative_to(folder).as_posix())
        else:
            pairs.append((csv_path, audio_path))
    if not pairs:
        found = f" (CSVs without audio: {', '.join(orphans[:5])})" if orphans else ""
        raise ValueError(f"{folder}: no Live Link Face take found; each <take>.csv needs a "
                         f"<take>.wav (or .mov) beside it{found}")
    if orphans:
        warnings.warn(f"{folder}: skipped {len(orphans)} CSV file(s) without audio: "
                      + ", ".join(orphans[:5]), stacklevel=2)
    clips = []
    for csv_path, audio_path in pairs:
        take = csv_path.relative_to(folder).with_suffix("").as_posix().replace("/", "_")
        clips += load_livelink_take(csv_path, audio_path, identity, split, take_id=f"{identity}_{take}",
                                    min_frames=min_frames, max_offset_s=max_offset_s)
    if not clips:
        raise ValueError(f"{folder}: every take is shorter than {min_frames} frames at 30 fps; "
                         "pass a smaller min_frames to keep short takes")
    return clips


def load_livelink_take(csv_path: str | Path, audio_path: str | Path, identity: str, split: str = "train", *,
                       take_id: str | None = None, min_frames: int = CHUNK_FRAMES,
                       max_offset_s: float = MAX_OFFSET_S) -> list[TalkingClip]:
    """One take (CSV + audio) as 30 fps clips with their audio in memory."""
    csv_path = Path(csv_path)
    curves, _, fps = read_livelink_csv(csv_path)     # the clips carry the face only
    audio = load_audio(audio_path, max_seconds=MAX_TAKE_SECONDS)
    return chunk_take(take_id or csv_path.stem, identity, curves, fps, audio, split=split,
                      extras={"source": "livelink", "capture_fps": fps},
                      min_frames=min_frames, max_offset_s=max_offset_s)


def find_audio(csv_path: Path) -> Path | None:
    """The take's audio: the first existing ``<stem><suffix>`` of :data:`AUDIO_SUFFIXES`."""
    for suffix in AUDIO_SUFFIXES:
        for candidate in (csv_path.with_suffix(suffix), csv_path.with_suffix(suffix.upper())):
            if candidate.is_file():
                return candidate
    return None
