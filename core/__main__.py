"""Command line: ``python -m core generate|enroll|remove ...``.

    python -m core generate speech.wav --steps 8 --seed 0 --identity auto --out out.csv|json|npy|glb|mp4
    python -m core enroll --name NAME take1.wav take1.csv [take2.wav take2.csv ...]
    python -m core remove NAME          # an enrolled identity, from every shipped model

Problems with the input or the environment (a missing folder, no write permission) end with
a one-line ``error:`` and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXPORT_SUFFIXES = (".csv", ".json", ".npy", ".glb", ".mp4")


def generate(a: argparse.Namespace) -> None:
    from core.pipeline import Talker
    out = Path(a.out)
    if out.suffix.lower() not in EXPORT_SUFFIXES:
        raise ValueError(f"--out must end in one of {', '.join(EXPORT_SUFFIXES)}")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"the folder {folder} does not exist (--out {a.out}); create it first")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write into {folder} (permission denied)")
    talker = Talker.from_pretrained(a.checkpoints)
    print(f"generating with the {a.steps}-step model ...", file=sys.stderr)
    result = talker.generate(a.audio, steps=a.steps, seed=a.seed, identity=a.identity, speech_check=True)
    if result.speech.warning():
        print(f"warning: {result.speech.warning()}", file=sys.stderr)
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
                         min_frames=a.min_frames, progress=lambda _, line: print(line, file=sys.stderr))
    print(f"library now holds {len(names)} identities, the last is {names[-1]!r}")


def remove(a: argparse.Namespace) -> None:
    from core.enroll import remove_identity
    names = remove_identity(a.checkpoints, a.name)
    print(f"removed {a.name!r}; the library holds {len(names)} identities: {', '.join(names)}")


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
    r = sub.add_parser("remove", help="remove an enrolled identity from every shipped model")
    r.add_argument("name")
    a = p.parse_args(argv)
    try:
        {"generate": generate, "enroll": enroll, "remove": remove}[a.command](a)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
