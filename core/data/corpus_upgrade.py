"""Give a neutral corpus (``core.data.synth --neutral``, or one built before performances existed)
its performances: every clip's emotion composed into its face and its head motion
(:mod:`core.data.performance`), written to a new folder; audio and extras are hard-linked.

    python -m core.data.corpus_upgrade --corpus corpus/default --out corpus/performance
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from core.data.performance import PERFORMANCE_VERSION, clip_rng, perform, stored_phones, write_performance
from core.data.synth import SIZES, fingerprint, plan_identities
from core.emotion import EMOTIONS


def upgrade(corpus: str | Path, out: str | Path, log=print) -> dict:
    """Write ``out``: ``corpus`` (a neutral corpus) with every clip performed. Audio and extras are
    hard-linked (copied across file systems); curves, heads, index and meta are new."""
    corpus, out = Path(corpus), Path(out)
    meta = json.loads((corpus / "meta.json").read_text())
    if meta.get("performance"):
        raise ValueError(f"{corpus} already has performances ({meta['performance']})")
    if out.exists():
        raise ValueError(f"{out} exists; choose a new folder")
    cfg = SIZES[meta["size"]]
    identities = {i.name: i for i in plan_identities(meta["seed"], cfg.seen, cfg.unseen)}   # styles with head
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "clips").mkdir(parents=True)
    rows = [json.loads(line) for line in (corpus / "index.jsonl").read_text().splitlines() if line.strip()]
    for n, row in enumerate(rows, 1):
        ident = identities[row["identity"]]
        src = corpus / "clips" / row["id"]
        extras = json.loads(src.with_suffix(".json").read_text())
        result = perform(np.load(src.with_suffix(".npy")), stored_phones(extras["phones"]),
                         sf.read(src.with_suffix(".wav"), dtype="float32")[0], ident.style, clip_rng(meta["seed"], row["id"]))
        dst = partial / "clips" / row["id"]
        for suffix in (".wav", ".json"):
            _link(src.with_suffix(suffix), dst.with_suffix(suffix))
        write_performance(dst, result)
        row.update(emotion=result.emotion, intensity=result.intensity)
        if n % 500 == 0:
            log(f"[performance] {n}/{len(rows)} clips")
    with open(partial / "index.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    meta.update(performance=PERFORMANCE_VERSION, emotions=list(EMOTIONS), fingerprint=fingerprint(meta["seed"], meta["size"]),
                identity_params={name: identities[name].to_dict() for name in meta["identity_params"]})
    (partial / "meta.json").write_text(json.dumps(meta, indent=1))
    partial.rename(out)
    return meta


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, help="a corpus built without performances")
    parser.add_argument("--out", required=True, help="new folder for the performed corpus")
    args = parser.parse_args(argv)
    try:
        meta = upgrade(args.corpus, args.out)
    except ValueError as err:
        parser.error(str(err))
    print(json.dumps({k: meta[k] for k in ("name", "performance", "emotions")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
