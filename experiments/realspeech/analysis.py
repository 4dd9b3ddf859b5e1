"""The model on each recording: curves, per-frame scores, identity match; pooled per group."""
from __future__ import annotations

import numpy as np

from core.data.align import align_phones
from core.data.tts import Phone
from core.lipsync import auc, frame_labels, frame_loudness, mouth_scores, open_vs_bilabial, pearson, separation
from core.rates import SAMPLE_RATE
from experiments.realspeech.sources import ALIGNED, Recording


def analyse(talker, recording: Recording, audio: np.ndarray, phones: list[Phone] | None = None,
            steps: int = 8, seed: int = 0) -> dict:
    """Phones (aligned unless given), curves, scores and identity match of 16 kHz ``audio``."""
    from core.data.visemes import lower_face

    phones = phones or align_phones(audio, recording.transcript)
    gen = talker.generate(audio, steps=steps, seed=seed)
    curves = gen.blendshapes[0]
    frames = len(curves)
    scores = mouth_scores(curves)
    scores["loudness (no model)"] = frame_loudness(audio, frames)
    reference = mouth_scores(lower_face(phones, frames))   # the corpus's own rules for these phones
    for name in ("jawOpen", "lip aperture"):                # their AUC is the ceiling at this labelling
        scores[f"rules: {name}"] = reference[name]
    return {"recording": recording, "audio": audio, "phones": phones, "labels": frame_labels(phones, frames),
            "curves": curves, "scores": scores, "seconds": len(audio) / SAMPLE_RATE,
            "r_jaw": pearson(scores["jawOpen"], reference["jawOpen"]),
            "r_aperture": pearson(scores["lip aperture"], reference["lip aperture"]),
            "identity": gen.matched_identity, "scores_identity": gen.scores}


TTS_VOICE = "en-us"
TTS_GROUP = f"TTS control (espeak-ng {TTS_VOICE}, same texts)"


def tts_control(recordings) -> list[tuple[Recording, np.ndarray]]:
    """The transcribed recordings' texts spoken by espeak-ng: the same check on the kind of
    voice the model was trained on, so that a drop on real voices can be told from a weak model.
    Its phones come from the same forced alignment as the real recordings' (not from the engine),
    so both sides are labelled alike."""
    from core.data.tts import Voice, synthesize

    out = []
    for rec in recordings:
        if rec.transcript and rec.group == ALIGNED:
            audio, _ = synthesize(rec.transcript, Voice("espeak", TTS_VOICE))
            out.append((Recording(f"tts-{rec.name}", f"espeak-ng {TTS_VOICE}", "espeak-ng", "",
                                  rec.transcript, TTS_GROUP), audio))
    return out


SCORE_NAMES = ("jawOpen", "lip aperture", "lips pressed (-)", "loudness (no model)", "rules: jawOpen",
               "rules: lip aperture")


def summarise(rows: list[dict]) -> list[dict]:
    """One result per group and one for all recordings together."""
    groups = {}
    for row in rows:
        groups.setdefault(row["recording"].group, []).append(row)
    real = [r for r in rows if r["recording"].group != TTS_GROUP]
    if len({r["recording"].group for r in real}) > 1:
        groups["all real recordings"] = real
    out = []
    for name, members in groups.items():
        masks = [open_vs_bilabial(r["labels"]) for r in members]
        n_open = sum(int(m[1].sum()) for m in masks)
        n_bilabial = sum(int((m[0] & ~m[1]).sum()) for m in masks)
        is_open = np.concatenate([m[1] for m in masks])
        is_bilabial = np.concatenate([m[0] & ~m[1] for m in masks])

        def class_means(name, sign=1.0):
            values = sign * np.concatenate([r["scores"][name] for r in members])
            return tuple(float(values[mask].mean()) if mask.any() else np.nan for mask in (is_open, is_bilabial))
        result = {"group": name, "recordings": len(members),
                  "speakers": len({r["recording"].speaker for r in members}),
                  "seconds": sum(r["seconds"] for r in members), "open": n_open, "bilabial": n_bilabial,
                  "mean_jaw": class_means("jawOpen"), "mean_pressed": class_means("lips pressed (-)", -1.0),
                  "r_jaw": float(np.nanmean([r["r_jaw"] for r in members])),
                  "r_aperture": float(np.nanmean([r["r_aperture"] for r in members]))}
        if n_open and n_bilabial:
            result["auc"] = separation(members, SCORE_NAMES)
        out.append(result)
    return out


def auc_or_nan(row: dict, name: str) -> float:
    keep, is_open = open_vs_bilabial(row["labels"])
    try:
        return auc(row["scores"][name][keep], is_open[keep])
    except ValueError:
        return float("nan")


