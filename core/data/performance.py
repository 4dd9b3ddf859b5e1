"""The whole performance of a corpus clip: an emotion at some intensity composed into the talking
face (core/data/emotion_face.py) and the head's motion (core/data/head_motion.py).

Both follow from the clip's phones, its audio as stored (16-bit wav), its speaker's style and a
random stream of the clip's own (seed, clip id), so a corpus built with them and an older corpus
upgraded to them (``python -m core.data.performance``) hold the same clips.

    python -m core.data.performance --corpus /work/corpus/default --out /work/corpus/performance
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
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


def upgrade(corpus: str | Path, out: str | Path, log=print) -> dict:
    """Write ``out``: ``corpus`` (a neutral corpus) with every clip performed. Audio and extras are
    hard-linked (copied across file systems); curves, heads, index and meta are new."""
    import soundfile as sf
    from core.data.synth import SIZES, fingerprint, plan_identities
    corpus, out = Path(corpus), Path(out)
    meta = json.loads((corpus / "meta.json").read_text())
    if meta.get("performance"):
        raise ValueError(f"{corpus} already has performances ({meta['performance']})")
    if out.exists():
        raise ValueError(f"{out} exists; choose a new folder")
    cfg = SIZES[meta["size"]]
    identities = {i.name: i for i in plan_identities(meta["seed"], cfg.seen, cfg.unseen)}   # styles with head
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "clips").mkdir(parents=True)
    rows = [json.loads(line) for line in (corpus / "index.jsonl").read_text().splitlines() if line.strip()]
    for n, row in enumerate(rows, 1):
        ident = identities[row["identity"]]
        src = corpus / "clips" / row["id"]
        extras = json.loads(src.with_suffix(".json").read_text())
        result = perform(np.load(src.with_suffix(".npy")), stored_phones(extras["phones"]),
                         sf.read(src.with_suffix(".wav"), dtype="float32")[0], ident.style, clip_rng(meta["seed"], row["id"]))
        dst = partial / "clips" / row["id"]
        for suffix in (".wav", ".json"):
            _link(src.with_suffix(suffix), dst.with_suffix(suffix))
        write_performance(dst, result)
        row.update(emotion=result.emotion, intensity=result.intensity)
        if n % 500 == 0:
            log(f"[performance] {n}/{len(rows)} clips")
    with open(partial / "index.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    meta.update(performance=PERFORMANCE_VERSION, emotions=list(EMOTIONS), fingerprint=fingerprint(meta["seed"], meta["size"]),
                identity_params={name: identities[name].to_dict() for name in meta["identity_params"]})
    (partial / "meta.json").write_text(json.dumps(meta, indent=1))
    partial.rename(out)
    return meta


def write_performance(clip_stem: Path, result: Performance) -> None:
    np.save(clip_stem.with_suffix(".npy"), result.face.astype(np.float32))
    np.save(clip_stem.parent / (clip_stem.name + HEAD_SUFFIX), result.head.astype(np.float32))


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, help="a corpus built without performances")
    parser.add_argument("--out", required=True, help="new folder for the performed corpus")
    args = parser.parse_args(argv)
    try:
        meta = upgrade(args.corpus, args.out)
    except ValueError as err:
        parser.error(str(err))
    print(json.dumps({k: meta[k] for k in ("name", "performance", "emotions")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
