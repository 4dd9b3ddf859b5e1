"""Command line of :mod:`experiments.evaluate` (one subcommand per RESULTS.md section)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.evaluate import checks, performance, tables, upper_face, value_maps


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m experiments.evaluate",
                                description="Evaluate checkpoints and write docs/RESULTS.md.")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, data: bool = True) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help)
        q.add_argument("--checkpoints", default="checkpoints")
        q.add_argument("--results", default="docs/RESULTS.md")
        if data:
            q.add_argument("--data", required=True, help="corpus folder (its test splits are used)")
            q.add_argument("--max-clips", type=int, default=40, help="test clips per model (random, fixed seed)")
        return q

    t = command("tables", "every model of the manifest: paper Tables 1, 4 and 5")
    t.add_argument("--models", nargs="*", help="only these checkpoint names")
    t.add_argument("--json", default="docs/results.json")
    t.add_argument("--no-lve", action="store_true", help="skip the mesh-based lip vertex error")
    r = command("report", "rewrite the evaluation section from the JSON, no evaluation", data=False)
    r.add_argument("--json", default="docs/results.json")
    for name, what in (("fp16", "fp32 vs fp16-rounded weights"), ("encoder", "float32 vs int8 speech encoder"),
                       ("enrolment", "enrol every unseen identity of test_unseen, then score held-out clips")):
        command(name, f"one checkpoint: {what}").add_argument("model", help="checkpoint name, e.g. distilled-8")
    c = command("splits", "one checkpoint and earlier releases', on the new and the old test split")
    c.add_argument("model", help="checkpoint name, e.g. distilled-8")
    c.add_argument("--old-data", required=True, help="the previous corpus folder")
    c.add_argument("--previous", required=True, nargs="+", help="earlier releases' checkpoints folders")
    u = command("upper-face", "the upper face of every shipped model against the generator's truth draws")
    u.add_argument("--models", nargs="*", help="only these checkpoint names (default: every shipped model)")
    u.add_argument("--split", default="test", help="corpus split: val for decisions, test to report")
    u.add_argument("--samples", type=int, default=6, help="seeds per clip (and truth draws)")
    u.add_argument("--style-steps", type=int, nargs="*", default=[8],
                   help="step counts whose style labels (every identity forced) and real validation are measured")
    u.add_argument("--style-clips", type=int, default=3)
    u.add_argument("--style-samples", type=int, default=4)
    u.add_argument("--real", action="store_true", help="also the real validation recordings (fetched first)")
    u.add_argument("--json", default="", help="also write the figures here")
    u.add_argument("--no-write", dest="write", action="store_false", help="print only (validation runs)")
    u.add_argument("--offer", action="store_true",
                   help="with --split val: record in the manifest which step counts keep the seed (the page "
                        "offers only those; core.evaluation.upper_face.seed_verdict)")
    u.set_defaults(max_clips=24)
    v = command("value-maps", "set each student's noise temperature, fit its eyelid value maps and head gain on val clips "
                "no decision uses")
    v.add_argument("--models", nargs="*", help="only these checkpoint names (default: every shipped model)")
    v.add_argument("--samples", type=int, default=4, help="seeds per clip (and truth draws)")
    v.add_argument("--head-gain-only", action="store_true",
                   help="refit the head gain alone (the model sampled with its own temperature; temperature and maps kept)")
    v.set_defaults(max_clips=24)
    f = command("follow", "does x0-hat follow x_t in the upper face, per noise level and group (val clips)",
                data=True)
    f.add_argument("model", help="checkpoint folder")
    f.set_defaults(max_clips=8)
    h = command("performance", "head motion against the generator's truth, emotion recognition and intensity, "
                               "lips under emotion (every shipped model)")
    h.add_argument("--models", nargs="*", help="only these checkpoint names (default: every shipped model)")
    h.add_argument("--samples", type=int, default=4, help="seeds per clip (and truth draws) for the head")
    h.add_argument("--emotion-clips", type=int, default=10, help="test clips per emotion and intensity")
    h.add_argument("--previous", default="", help="the previous release's checkpoints (neutral against it)")
    h.add_argument("--real", action="store_true", help="also lips under emotion on the real validation recordings")
    h.add_argument("--lips-steps", type=int, default=8)
    h.add_argument("--json", default="", help="also write the figures here")
    h.add_argument("--report-only", action="store_true", help="rewrite the section from --json, no evaluation")
    h.set_defaults(max_clips=12)
    a = p.parse_args(argv)
    a.command_line = "python -m experiments.evaluate " + " ".join(argv)
    a.checkpoints, a.results = Path(a.checkpoints), Path(a.results)
    {"tables": tables.run, "report": tables.rewrite, "fp16": checks.fp16,
     "encoder": checks.encoder, "enrolment": checks.enrolment, "splits": checks.splits,
     "upper-face": upper_face.run, "value-maps": value_maps.run, "follow": upper_face.run_follow, "performance": performance.run}[a.command](a)


if __name__ == "__main__":
    main()
