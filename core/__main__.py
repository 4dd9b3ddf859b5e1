"""Command line: ``python -m core generate ...`` and ``python -m core enroll ...``.

    python -m core generate speech.wav --steps 8 --seed 0 --identity auto --out out.csv|json|npy|glb|mp4
    python -m core enroll --name NAME take1.wav take1.csv [take2.wav take2.csv ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXPORT_SUFFIXES = (".csv", ".json", ".npy", ".glb", ".mp4")


def generate(a: argparse.Namespace) -> None:
    from core.pipeline import Talker
    out = Path(a.out)
    if out.suffix.lower() not in EXPORT_SUFFIXES:
        raise ValueError(f"--out must end in one of {', '.join(EXPORT_SUFFIXES)}")
    talker = Talker.from_pretrained(a.checkpoints)
    print(f"generating with the {a.steps}-step model ...", file=sys.stderr)
    result = talker.generate(a.audio, steps=a.steps, seed=a.seed, identity=a.identity)
    print(f"identity: {result.identity} (matched from voice: {result.matched_identity}, "
          f"similarity {result.scores[0][1]:.3f}); {result.frames} frames; ITF {result.itf:.2e} s/frame",
          file=sys.stderr)
    curves = result.blendshapes[0]
    if out.suffix.lower() == ".mp4":
        from core.audio import load_audio
        from demo.render import render_video
        print("rendering video ...", file=sys.stderr)
        render_video(curves, load_audio(a.audio), out)
    else:
        from core.export import export_curves
        export_curves(curves, out, fps=result.fps)
    print(out)


def enroll(a: argparse.Namespace) -> None:
    from core.data.livelink import load_livelink_take
    from core.enroll import enroll as enroll_identity
    from core.manifest import read_manifest, verify
    files = [Path(f) for f in a.pairs]
    if not files or len(files) % 2:
        raise ValueError("give pairs of files: speech.wav capture.csv [speech2.wav capture2.csv ...]")
    pairs = list(zip(files[::2], files[1::2]))
    for wav, csv in pairs:
        if csv.suffix.lower() != ".csv":
            raise ValueError(f"{csv} should be the Live Link Face CSV recorded with {wav}")
    clips = [clip for wav, csv in pairs
             for clip in load_livelink_take(csv, wav, a.name, min_frames=a.min_frames)]
    root = Path(a.checkpoints)
    for entry in read_manifest(root)["models"]:
        if entry.get("role", "shipped") != "shipped":
            continue
        verify(root, entry)
        print(f"enrolling {a.name!r} into {entry['name']} ...", file=sys.stderr)
        names = enroll_identity(root / entry["path"], a.name, clips, iterations=a.iterations)
    print(f"library now holds {len(names)} identities, the last is {names[-1]!r}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m core", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoints", default="checkpoints")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="speech file -> blendshape curves or a rendered video")
    g.add_argument("audio")
    g.add_argument("--steps", type=int, default=8)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--identity", default="auto", help="'auto' (matched from the voice) or a library identity")
    g.add_argument("--out", required=True, help="out.csv (Live Link Face) | .json | .npy | .glb | .mp4")
    e = sub.add_parser("enroll", help="add a talking identity from recordings + Live Link Face CSVs")
    e.add_argument("--name", required=True)
    e.add_argument("--iterations", type=int, default=150)
    e.add_argument("--min-frames", type=int, default=60, help="shortest take chunk to use (frames)")
    e.add_argument("pairs", nargs="+", help="speech.wav capture.csv pairs")
    a = p.parse_args(argv)
    try:
        {"generate": generate, "enroll": enroll}[a.command](a)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
