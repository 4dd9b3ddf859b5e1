"""``python -m experiments.realspeech.lag [--checkpoints C]``: is the mouth early or late on real voices?

The pooled lip-aperture AUC of the real-speech *validation* part (and its TTS control) with the
model's curves shifted by -3..+3 frames against the aligned phones: a peak away from 0 says the
mouth moves before (peak at +k: the curves would do better k frames later) or after the phones.
The rules drawn from the same phones and the loudness baseline are shifted alike, as references.
A diagnostic for decisions, so it reads the validation part only and writes nothing.
"""
from __future__ import annotations

import argparse

import numpy as np

from core.evaluation.lipsync import auc, open_vs_bilabial
from experiments.realspeech.__main__ import aligned_recordings
from experiments.realspeech.analysis import LOUDNESS, TTS_GROUP, analyse
from experiments.realspeech.sources import DEFAULT_AUDIO_DIR

SHIFTS = range(-3, 4)
SCORES = ("lip aperture", "rules: lip aperture", LOUDNESS)


def shifted_auc(rows: list[dict], name: str, shift: int) -> float:
    """Pooled AUC of score ``name`` delayed by ``shift`` frames (edges repeat the first/last value)."""
    scores, positive = [], []
    for row in rows:
        s = row["scores"][name]
        s = np.concatenate([np.full(shift, s[0]), s[:len(s) - shift]]) if shift > 0 else \
            np.concatenate([s[-shift:], np.full(-shift, s[-1])]) if shift < 0 else s
        counted, is_open = open_vs_bilabial(row["labels"])
        scores.append(s[counted])
        positive.append(is_open[counted])
    return auc(np.concatenate(scores), np.concatenate(positive))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m experiments.realspeech.lag", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoints", default="checkpoints")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--audio-dir", default=str(DEFAULT_AUDIO_DIR))
    a = p.parse_args(argv)
    from core.inference.talker import Talker
    talker = Talker.from_pretrained(a.checkpoints)
    aligned, _, _ = aligned_recordings(a.audio_dir, validation_only=True)
    rows = [analyse(talker, rec, audio, phones, a.steps) for rec, audio, phones in aligned]
    print("shift (frames, + = curves later): " + " ".join(f"{k:+6d}" for k in SHIFTS))
    for group, members in (("real", [r for r in rows if r["recording"].group != TTS_GROUP]),
                           ("TTS control", [r for r in rows if r["recording"].group == TTS_GROUP])):
        for name in SCORES:
            print(f"{group:12s} {name:22s} " + " ".join(f"{shifted_auc(members, name, k):6.3f}" for k in SHIFTS))


if __name__ == "__main__":
    main()
