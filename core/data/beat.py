"""BEAT (Liu et al. 2022) facial data -> TalkingClip list, prepared as FaceDiffuser did.

Release layout: ``beat_english_v0.2.1/<speaker_id>/<speaker_id>_<name>_<type>_<a>_<b>.{json,wav,...}``.
Each facial ``.json`` holds ``"names"`` (51 ARKit names, no tongueOut) and ``"frames"``, a
list of ``{"time", "weights"}`` at 60 fps; the take's speech is the ``.wav`` of the same
name. Following FaceDiffuser's ``beat_split.py``:

* only ``type == 0`` takes (English read speech; 1 is conversation, higher types other
  languages) are used;
* 60 fps -> 30 fps by keeping every second frame, then 10 s (300-frame) chunks, the
  shorter tail dropped; no normalisation;
* the emotion of a take comes from its sequence number ``a`` (BEAT's recording plan:
  1-64 neutral, then happiness, anger, sadness, contempt, surprise, fear, disgust; the
  ranges are taken inclusive here, where FaceDiffuser's half-open test drops each range's
  last take into neutral).

Splits (deterministic, documented here because FaceDiffuser's sklearn split cannot be
reproduced without the whole dataset): within each (speaker, emotion) group, chunks are
ordered by a hash of their id; the first 10 % go to ``test``, the next 10 % to ``val``,
the rest to ``train`` - the same 80/10/10 stratification FaceDiffuser uses, stable when
takes are added. Speakers named in ``unseen_speakers`` go entirely to ``test_unseen``.
"""
from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from core.audio.decode import load_audio
from core.data.clip import TalkingClip
from core.data.takes import CHUNK_FRAMES, MAX_OFFSET_S, MAX_TAKE_SECONDS, chunk_take
from core.face.export import read_json

BEAT_FPS = 60
ENGLISH_SPEECH = 0
EMOTIONS = (  # (last sequence number, emotion), BEAT's per-speaker recording plan
    (64, "neutral"), (72, "happiness"), (80, "anger"), (86, "sadness"),
    (94, "contempt"), (102, "surprise"), (110, "fear"), (118, "disgust"),
)
TEST_FRACTION = VAL_FRACTION = 0.1

_TAKE_NAME = re.compile(r"^(\d+)_([^_]+)_(\d+)_(\d+)_(\d+)$")


@dataclass(frozen=True)
class BeatTake:
    """What a BEAT file name says about its take."""

    speaker_id: int
    name: str
    type: int
    sequence: int

    @property
    def identity(self) -> str:
        return f"{self.speaker_id}_{self.name}"

    @property
    def emotion(self) -> str:
        for last, emotion in EMOTIONS:
            if 1 <= self.sequence <= last:
                return emotion
        return "unknown"


def parse_take_name(stem: str) -> BeatTake | None:
    """``'2_scott_0_65_65'`` -> BeatTake(2, 'scott', 0, 65); None for other names."""
    match = _TAKE_NAME.match(stem)
    if match is None:
        return None
    speaker_id, name, kind, sequence, _ = match.groups()
    return BeatTake(int(speaker_id), name, int(kind), int(sequence))


def load_beat(root: str | Path, *, speakers: Iterable[str | int] | None = None,
              unseen_speakers: Iterable[str | int] = (), min_frames: int = CHUNK_FRAMES,
              max_offset_s: float = MAX_OFFSET_S) -> list[TalkingClip]:
    """English read-speech takes under ``root`` as 30 fps, 10 s clips with splits assigned.

    ``speakers`` keeps only the named speakers (id ``2``, name ``'scott'`` or ``'2_scott'``)
    - useful because clips hold their audio in memory. A take without its ``.wav``, a
    facial file that is not BEAT's JSON, or audio and animation of different lengths raise
    ``ValueError``; so does a folder without any English speech take.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"BEAT folder not found: {root}")
    wanted = _speaker_filter(speakers)
    clips = []
    for json_path in sorted(root.rglob("*.json")):
        take = parse_take_name(json_path.stem)
        if take is None or take.type != ENGLISH_SPEECH or not wanted(take.identity):
            continue
        wav_path = json_path.with_suffix(".wav")
        if not wav_path.is_file():
            raise ValueError(f"BEAT take {json_path.name} has no audio file {wav_path.name}")
        curves, _, fps = read_json(json_path, assume_fps=BEAT_FPS)   # BEAT facial JSON has no head
        audio = load_audio(wav_path, max_seconds=MAX_TAKE_SECONDS)
        clips += chunk_take(f"beat_{json_path.stem}", take.identity, curves, fps, audio,
                            extras={"source": "beat", "emotion": take.emotion, "speaker_id": take.speaker_id},
                            min_frames=min_frames, max_offset_s=max_offset_s)
    if not clips:
        chosen = " for the chosen speakers" if speakers is not None else ""
        raise ValueError(f"{root}: no English BEAT speech take (<id>_<name>_0_<n>_<n>.json with a .wav) "
                         f"of at least {min_frames} frames{chosen}")
    assign_splits(clips, unseen_speakers)
    return clips


def assign_splits(clips: list[TalkingClip], unseen_speakers: Iterable[str | int] = ()) -> None:
    """Set ``clip.split`` in place by the rule in the module docstring."""
    unseen = _speaker_filter(unseen_speakers)
    groups: dict[tuple[str, str], list[TalkingClip]] = defaultdict(list)
    for clip in clips:
        if unseen(clip.identity):
            clip.split = "test_unseen"
        else:
            groups[clip.identity, clip.extras.get("emotion", "")].append(clip)
    for group in groups.values():
        group.sort(key=lambda c: hashlib.sha1(c.id.encode()).hexdigest())
        n_test, n_val = round(TEST_FRACTION * len(group)), round(VAL_FRACTION * len(group))
        for i, clip in enumerate(group):
            clip.split = "test" if i < n_test else "val" if i < n_test + n_val else "train"


def _speaker_filter(speakers: Iterable[str | int] | None):
    """Predicate on a BEAT identity (``'2_scott'``) matching its id, name or both; None: all."""
    if speakers is None:
        return lambda identity: True
    keys = {str(s).lower() for s in speakers}
    return lambda identity: bool(keys & {identity.lower(), *identity.lower().split("_", 1)})
