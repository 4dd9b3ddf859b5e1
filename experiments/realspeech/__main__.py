"""``python -m experiments.realspeech [--fetch]``: the check on every recording found."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from core.audio.decode import load_audio
from core.data.align import align_phones
from experiments.realspeech import __doc__ as DOC
from experiments.realspeech.analysis import LOUDNESS, analyse, auc_or_nan, by_speaker, summarise
from experiments.realspeech.analysis import tts_control as tts_control_inputs
from experiments.realspeech.plot import plot
from experiments.realspeech.report import SECTION, markdown
from experiments.realspeech.sources import DEFAULT_AUDIO_DIR, EXAMPLES_DIR, RECORDINGS, VALIDATION, fetch, find_audio


def part_figures(results: dict[int, dict], part: str = VALIDATION) -> dict:
    """{steps: {auc, auc_minus_loudness, closure, closure_minus_chance}} of one part of the split:
    the validation part (decisions) unless ``part`` says the test part (to report)."""
    out = {}
    for steps, res in results.items():
        real = next(r for r in res["summary"] if r["group"] == f"{part}: all real recordings")
        auc, closure = real["auc"], real["closure"]["lip aperture"]
        out[steps] = {"auc": round(auc["lip aperture"][0], 4),
                      "auc_minus_loudness": round(auc[f"lip aperture - {LOUDNESS}"][0], 4),
                      "closure": round(closure["closure"][0], 4),
                      "closure_minus_chance": round(closure["closure - chance"][0], 4)}
    return out


def aligned_recordings(audio_dir, validation_only: bool = False, tts_control: bool = True):
    """([(recording, audio, phones)], names not found, names that could not be aligned); only the
    validation part with ``validation_only``, plus the TTS control of their texts with ``tts_control``."""
    recordings = [r for r in RECORDINGS if r.split == VALIDATION or not validation_only]
    found = [(r, find_audio(r, audio_dir)) for r in recordings]
    not_found, unaligned = [r.name for r, path in found if path is None], []
    found = [(r, path) for r, path in found if path is not None]
    if not found:
        sys.exit(f"No recordings found in {audio_dir} or {EXAMPLES_DIR}; run with --fetch.")
    inputs = [(rec, load_audio(path)) for rec, path in found]
    if tts_control:
        inputs += tts_control_inputs([rec for rec, _ in found])
    aligned = []
    for rec, audio in inputs:
        try:
            aligned.append((rec, audio, align_phones(audio, rec.transcript)))
        except ValueError as err:             # text and audio cannot be aligned
            print(f"{rec.name}: left out ({err})")
            unaligned.append(rec.name)
    return aligned, not_found, unaligned


def measure(talker, aligned, steps_list, seed: int = 0, verbose: bool = True, controls=None) -> dict[int, dict]:
    """{steps: {rows, summary, speakers}} of ``talker`` on the aligned recordings."""
    results = {}
    for steps in steps_list:
        rows = [analyse(talker, rec, audio, phones, steps, seed, controls) for rec, audio, phones in aligned]
        results[steps] = {"rows": rows, "summary": summarise(rows), "speakers": by_speaker(rows)}
        if not verbose:
            continue
        for row in rows:
            print(f"{steps:3d} steps {row['recording'].name:28s} {row['recording'].split:10s} {row['seconds']:5.1f} s  "
                  f"AUC aperture {auc_or_nan(row, 'lip aperture'):.2f}  loudness {auc_or_nan(row, LOUDNESS):.2f}  "
                  f"closed {int(row['closure']['lip aperture'][0].sum())}/{row['segments']}  -> {row['identity']}")
        for res in results[steps]["summary"]:
            a, c = res.get("auc", {}), res.get("closure", {}).get("lip aperture", {})
            print(f"{steps:3d} steps {res['group']}: " + "  ".join(
                f"{k} {v[0]:.3f} [{v[1]:.2f}, {v[2]:.2f}]" for k, v in (
                    *((n, a[n]) for n in ("lip aperture", LOUDNESS, f"lip aperture - {LOUDNESS}") if n in a),
                    *((n, c[n]) for n in ("closure", "chance", "closure - chance") if n in c))))
    return results


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m experiments.realspeech", description=DOC.split("\n\n")[0])
    p.add_argument("--checkpoints", default="checkpoints", help="manifest folder or one checkpoint folder")
    p.add_argument("--steps", type=int, nargs="+", default=[8], help="step counts to measure (the first one is plotted)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--audio-dir", default=str(DEFAULT_AUDIO_DIR), help="where --fetch stores the clips")
    p.add_argument("--fetch", action="store_true", help="download the recordings first (pip, apt-get)")
    p.add_argument("--out", default="docs/real_speech.png", help="plot (PNG)")
    p.add_argument("--results", default="docs/RESULTS.md")
    p.add_argument("--plot", nargs="*", default=["librivox-0870", "harvard-f"], help="recordings to plot")
    p.add_argument("--no-tts-control", action="store_true", help="skip the espeak-ng control group")
    p.add_argument("--validation-only", action="store_true",
                   help="score the validation part alone (for decisions), print one JSON line, write nothing")
    args = p.parse_args(argv)

    if args.fetch:
        print(f"fetched {len(fetch(args.audio_dir))} recordings into {args.audio_dir}")
    aligned, not_found, unaligned = aligned_recordings(args.audio_dir, args.validation_only, not args.no_tts_control)

    from core.inference.talker import Talker
    talker = Talker.from_pretrained(args.checkpoints)
    missing = [s for s in args.steps if s not in talker.steps_available]
    if missing:
        sys.exit(f"{args.checkpoints} has no {missing}-step model; it has {talker.steps_available}.")
    results = measure(talker, aligned, args.steps, args.seed)
    models = {steps: talker.entries[steps].get("name", args.checkpoints) for steps in args.steps}
    if args.validation_only:
        print(json.dumps({"checkpoints": args.checkpoints, **part_figures(results)}))
        return
    rows = results[args.steps[0]]["rows"]
    chosen = [r for r in rows if r["recording"].name in args.plot] or rows[:1]
    title = f"Real human speech through the model trained on TTS only ({models[args.steps[0]]}, {args.steps[0]} steps)"
    out = plot(chosen, args.out, title=title)
    print(f"plot: {out} ({os.path.getsize(out) // 1024} KB)")
    from experiments.report import update_section
    rel = Path(os.path.relpath(out, Path(args.results).parent))
    md = markdown(results, models, rel, not_found, unaligned)
    print(f"results: {update_section(SECTION, md, args.results)}")


if __name__ == "__main__":
    main()
