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
        from core.render import render_video
        print("rendering video ...", file=sys.stderr)
        render_video(curves, load_audio(a.audio), out)
    else:
        from core.export import export_curves
        export_curves(curves, out, fps=result.fps)
    print(out)


def enroll(a: argparse.Namespace) -> None:
    from core.enroll import enroll_pairs
    files = [Path(f) for f in a.pairs]
    if not files or len(files) % 2:
        raise ValueError("give pairs of files: speech.wav capture.csv [speech2.wav capture2.csv ...]")
    names = enroll_pairs(a.checkpoints, a.name, list(zip(files[::2], files[1::2])), iterations=a.iterations,
                         min_frames=a.min_frames, progress=lambda line: print(line, file=sys.stderr))
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
