"""Command line: ``python -m core generate|stream|enroll|remove ...``.

    python -m core generate speech.wav --steps 8 --seed 0 --identity auto --out out.csv|json|npy|glb|mp4
        [--emotion happy --intensity 0.7 --upper-strength 1.2 --lower-strength 0.8 --no-head-motion]
    python -m core stream speech.wav --steps 8 [--realtime] [--json] [--livelink HOST:PORT]   # chunk by chunk
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

from core.inputs import AUTO_IDENTITY


def add_controls(parser: argparse.ArgumentParser) -> None:
    """The emotion, intensity, face strengths and head switch, as every interface offers them."""
    from core.emotion import EMOTIONS
    parser.add_argument("--emotion", default="neutral", help=f"one of {', '.join(EMOTIONS)} (neutral)")
    parser.add_argument("--intensity", default="1.0", help="how strongly the emotion shows, 0-1 (1)")
    parser.add_argument("--upper-strength", default="1.0", help="brows and eyes: 0 still, 1 as made, 2 twice (1)")
    parser.add_argument("--lower-strength", default="1.0", help="jaw, mouth, cheeks: 0 still, 1 as made, 2 twice (1)")
    parser.add_argument("--head-motion", action=argparse.BooleanOptionalAction, default=True,
                        help="--no-head-motion keeps the head still (when you drive it yourself)")


def controls(a: argparse.Namespace):
    """The arguments as :class:`Controls`, checked the one way every interface checks them (as
    typed: ``--intensity x`` gets the same message as the page's)."""
    from core.inference.controls import Controls
    return Controls.checked(a.emotion, a.intensity, a.head_motion, a.upper_strength, a.lower_strength)


def generate(a: argparse.Namespace) -> None:
    from core.face.export import SUFFIXES
    from core.inference.talker import Talker
    out = Path(a.out)
    if out.suffix.lower() not in SUFFIXES + (".mp4",):
        raise ValueError(f"--out must end in one of {', '.join(SUFFIXES + ('.mp4',))}")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"the folder {folder} does not exist (--out {a.out}); create it first")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write into {folder} (permission denied)")
    asked = controls(a)
    talker = Talker.from_pretrained(a.checkpoints)
    print(f"generating with the {a.steps}-step model ({asked.describe()}) ...", file=sys.stderr)
    result = talker.generate(a.audio, steps=a.steps, seed=a.seed, identity=a.identity, speech_check=True,
                             controls=asked)
    if result.speech.warning():
        print(f"warning: {result.speech.warning()}", file=sys.stderr)
    print(f"identity: {result.identity} (matched from voice: {result.matched_identity}, "
          f"similarity {result.scores[0][1]:.3f}); {result.frames} frames; ITF {result.itf:.2e} s/frame",
          file=sys.stderr)
    curves = result.blendshapes[0]
    if out.suffix.lower() == ".mp4":
        from core.audio.decode import load_audio
        from core.face.render import render_video
        print("rendering video ...", file=sys.stderr)
        render_video(curves, load_audio(a.audio), out, head=result.head[0])
    else:
        from core.face.export import export_curves
        export_curves(curves, out, fps=result.fps, head=result.head[0])
    print(out)


def stream(a: argparse.Namespace) -> None:
    """Feed a file through :class:`core.inference.streaming.Stream` in chunks; per-chunk latency, then a summary."""
    import json

    from core.audio.decode import load_audio
    from core.face.export import CURVE_SUFFIXES
    from core.inference.talker import Talker
    from core.inference.streaming import DEFAULT_HOP, DEFAULT_LOOKAHEAD, Stream, replay
    lookahead = DEFAULT_LOOKAHEAD if a.lookahead_ms is None else a.lookahead_ms / 1000
    hop = DEFAULT_HOP if a.hop_ms is None else a.hop_ms / 1000
    out = Path(a.out) if a.out else None
    if out is not None and out.suffix.lower() not in CURVE_SUFFIXES:
        raise ValueError(f"--out must end in one of {', '.join(CURVE_SUFFIXES)}")
    if not 10 <= a.chunk_ms <= 1000:
        raise ValueError(f"--chunk-ms must be between 10 and 1000, not {a.chunk_ms}")
    asked = controls(a)
    audio = load_audio(a.audio)
    talker = Talker.from_pretrained(a.checkpoints)
    # lips closed in pauses, as `generate` does (speech_check=True)
    live = Stream(talker, a.steps, seed=a.seed, identity=a.identity, lookahead=lookahead, hop=hop, close_pauses=True,
                  controls=asked)
    sender = None
    if a.livelink:
        from core.inference.livelink_udp import LiveLinkSender, parse_address
        sender = LiveLinkSender(*parse_address(a.livelink))
    talker.warm_up(live.steps)
    try:
        result = replay(live, audio, a.chunk_ms / 1000, realtime=a.realtime,
                        on_frames=(lambda out: sender.send(out.curves, out.first, out.head))
                        if sender else None)
    finally:
        if sender:
            sender.close()
    for row in result.log:
        latency = "-" if row["latency_ms"] is None else f"{row['latency_ms']:.1f} ms"
        print(f"chunk ending {row['end_s']:8.3f} s: {row['frames_out']:3d} frames out, latency {latency}")
    summary = result.summary()
    print(f"{summary['frames']} frames, identity {result.identity}; latency p50 {summary['latency_ms_p50']} ms, "
          f"p95 {summary['latency_ms_p95']} ms; RTF {summary['rtf']} (look-ahead {lookahead * 1000:.0f} ms on top)",
          file=sys.stderr)
    if out is not None:
        from core.face.export import export_curves
        export_curves(result.curves, out, head=result.head if live.model.config.head_channels else None)
        print(out, file=sys.stderr)
    if sender:
        print(f"sent {sender.sent} Live Link Face frames to {a.livelink}", file=sys.stderr)
    if a.json:
        print(json.dumps(summary))


def enroll(a: argparse.Namespace) -> None:
    from core.identities.enrolment import enroll_pairs
    files = [Path(f) for f in a.pairs]
    if not files or len(files) % 2:
        raise ValueError("give pairs of files: speech.wav capture.csv [speech2.wav capture2.csv ...]")
    names = enroll_pairs(a.checkpoints, a.name, list(zip(files[::2], files[1::2])), iterations=a.iterations,
                         min_frames=a.min_frames, progress=lambda _, line: print(line, file=sys.stderr))
    print(f"library now holds {len(names)} identities, the last is {names[-1]!r}")


def remove(a: argparse.Namespace) -> None:
    from core.identities.enrolment import remove_identity
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
    g.add_argument("--identity", default=AUTO_IDENTITY, help="'auto' (matched from the voice) or a library identity")
    g.add_argument("--out", required=True, help="out.csv (Live Link Face) | .json | .npy | .glb | .mp4")
    add_controls(g)
    s = sub.add_parser("stream", help="feed a speech file through the streaming API; chunk latency and RTF")
    s.add_argument("audio")
    s.add_argument("--steps", type=int, default=8)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--identity", default=AUTO_IDENTITY, help="'auto' (matched from the voice) or a library identity")
    s.add_argument("--chunk-ms", type=float, default=20.0, help="audio per chunk handed over")
    s.add_argument("--lookahead-ms", type=float, help="audio heard after a frame before it is decoded (default: core.inference.streaming.DEFAULT_LOOKAHEAD)")
    s.add_argument("--hop-ms", type=float, help="audio between speech-encoder runs (100)")
    s.add_argument("--realtime", action="store_true", help="hand chunks over at the pace of the audio")
    s.add_argument("--json", action="store_true", help="end with one JSON line: latency p50/p95, RTF, frames")
    s.add_argument("--out", help="also write the curves: out.csv (Live Link Face) | .json | .npy")
    s.add_argument("--livelink", metavar="HOST[:PORT]",
                   help="also send every frame as it comes out in the Live Link Face network format (UDP, port 11111)")
    add_controls(s)
    e = sub.add_parser("enroll", help="add a talking identity from recordings + Live Link Face CSVs")
    e.add_argument("--name", required=True)
    e.add_argument("--iterations", type=int, default=150)
    e.add_argument("--min-frames", type=int, default=60, help="shortest take chunk to use (frames)")
    e.add_argument("pairs", nargs="+", help="speech.wav capture.csv pairs")
    r = sub.add_parser("remove", help="remove an enrolled identity from every shipped model")
    r.add_argument("name")
    a = p.parse_args(argv)
    try:
        {"generate": generate, "stream": stream, "enroll": enroll, "remove": remove}[a.command](a)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
