"""The model on each recording: curves, per-frame scores, closures, identity match; pooled per
part of the split, per group and per speaker."""
from __future__ import annotations

from collections import Counter

import numpy as np

from core.data.align import align_phones
from core.data.phones import Phone
from core.evaluation.lipsync import (auc, bilabial_segments, closure_chance, closure_rate, closures, frame_labels,
                          frame_loudness, mouth_scores, open_vs_bilabial, pearson, separation)
from core.rates import SAMPLE_RATE
from experiments.realspeech.sources import ALIGNED, TEST, VALIDATION, Recording

LOUDNESS = "loudness (no model)"
SCORE_NAMES = ("jawOpen", "lip aperture", "lips pressed (-)", LOUDNESS, "rules: jawOpen", "rules: lip aperture")
CLOSURE_SCORES = ("lip aperture", "rules: lip aperture")   # closure is about the lips: the aperture
RESAMPLES = 2000


def analyse(talker, recording: Recording, audio: np.ndarray, phones: list[Phone] | None = None,
            steps: int = 8, seed: int = 0, controls=None) -> dict:
    """Phones (aligned unless given), curves, scores, closures and identity match of 16 kHz ``audio``
    (``controls``: an emotion etc., core.inference.controls; None: the plain face)."""
    from core.data.visemes import lower_face

    phones = phones or align_phones(audio, recording.transcript)
    gen = talker.generate(audio, steps=steps, seed=seed, controls=controls)
    curves = gen.blendshapes[0]
    frames = len(curves)
    scores = mouth_scores(curves)
    scores[LOUDNESS] = frame_loudness(audio, frames)
    reference = mouth_scores(lower_face(phones, frames))   # the corpus's own rules for these phones
    for name in ("jawOpen", "lip aperture"):                # their AUC is the ceiling at this labelling
        scores[f"rules: {name}"] = reference[name]
    segments = bilabial_segments(phones)
    return {"recording": recording, "audio": audio, "phones": phones, "labels": frame_labels(phones, frames),
            "curves": curves, "scores": scores, "seconds": len(audio) / SAMPLE_RATE, "steps": steps,
            "segments": len(segments),
            "closure": {n: (closures(scores[n], segments), closure_chance(scores[n], segments))
                        for n in CLOSURE_SCORES},
            "r_jaw": pearson(scores["jawOpen"], reference["jawOpen"]),
            "r_aperture": pearson(scores["lip aperture"], reference["lip aperture"]),
            "identity": gen.matched_identity, "scores_identity": gen.scores}


TTS_VOICE = "en-us"
TTS_GROUP = f"TTS control (espeak-ng {TTS_VOICE}, same texts)"


def tts_control(recordings) -> list[tuple[Recording, np.ndarray]]:
    """The transcribed recordings' texts spoken by espeak-ng: the same check on the kind of
    voice the model was trained on, so that a drop on real voices can be told from a weak model.
    Its phones come from the same forced alignment as the real recordings' (not from the engine),
    so both sides are labelled alike. Each stays in its text's part of the split."""
    from core.data.tts import synthesize
    from core.data.voices import Voice

    out = []
    for rec in recordings:
        if rec.transcript and rec.group == ALIGNED:
            audio, _ = synthesize(rec.transcript, Voice("espeak", TTS_VOICE))
            out.append((Recording(f"tts-{rec.name}", f"espeak-ng {TTS_VOICE}", "espeak-ng", "",
                                  rec.transcript, TTS_GROUP, rec.split), audio))
    return out


def pooled(members: list[dict], resamples: int = RESAMPLES) -> dict:
    """AUCs (and their differences to loudness) and closure rates of ``members`` pooled, with
    bootstrap intervals over recordings resampled within each speaker (``resamples=0``: none)."""
    masks = [open_vs_bilabial(r["labels"]) for r in members]
    strata = [r["recording"].speaker for r in members]
    result = {"recordings": len(members), "speakers": len(set(strata)),
              "seconds": sum(r["seconds"] for r in members),
              "open": sum(int(m[1].sum()) for m in masks), "bilabial": sum(int((m[0] & ~m[1]).sum()) for m in masks),
              "segments": sum(r["segments"] for r in members),
              "r_jaw": float(np.nanmean([r["r_jaw"] for r in members])),
              "r_aperture": float(np.nanmean([r["r_aperture"] for r in members]))}
    if result["open"] and result["bilabial"]:
        result["auc"] = separation(members, SCORE_NAMES, LOUDNESS, strata, resamples)
    if result["segments"]:
        result["closure"] = {n: closure_rate(members, n, strata, resamples) for n in CLOSURE_SCORES}
    return result


def summarise(rows: list[dict]) -> list[dict]:
    """Test part first, then validation: all real recordings, each group when a part has more
    than one, and the TTS control of the part's texts."""
    out = []
    for split in (TEST, VALIDATION):
        real = [r for r in rows if r["recording"].split == split and r["recording"].group != TTS_GROUP]
        groups = {f"{split}: all real recordings": real}
        if len({r["recording"].group for r in real}) > 1:
            for r in real:
                groups.setdefault(f"{split}: {r['recording'].group}", []).append(r)
        groups[f"{split}: {TTS_GROUP}"] = [r for r in rows if r["recording"].split == split
                                           and r["recording"].group == TTS_GROUP]
        out += [{"split": split, "group": name, **pooled(members)} for name, members in groups.items() if members]
    return out


def by_speaker(rows: list[dict]) -> list[dict]:
    """One line per real speaker: pooled scores (no intervals) and the identity most often matched."""
    speakers = {}
    for r in rows:
        if r["recording"].group != TTS_GROUP:
            speakers.setdefault((r["recording"].split, r["recording"].speaker), []).append(r)
    out = []
    for (split, speaker), members in sorted(speakers.items(), key=lambda kv: (kv[0][0] != TEST, kv[0][1])):
        matches = Counter(r["identity"] for r in members).most_common(1)[0]
        out.append({"split": split, "speaker": speaker, "identity": matches, **pooled(members, resamples=0)})
    return out


def auc_or_nan(row: dict, name: str) -> float:
    keep, is_open = open_vs_bilabial(row["labels"])
    try:
        return auc(row["scores"][name][keep], is_open[keep])
    except ValueError:
        return float("nan")
