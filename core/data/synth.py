"""Deterministic synthetic multi-speaker talking-face corpus.

Each identity is a TTS voice (engine, voice, variant, rate, pitch) plus a talking
:class:`~core.data.style.Style`. Each clip is: sentence(s) -> speech with phone timings ->
augmentation (tempo, pitch, padding, reverb, noise, level) -> ARKit-52 curves at 30 fps (lips
from the phones, upper face stochastic). Everything follows from ``(seed, size)``; the same
pair always writes the same index, audio and curves.

Splits: ``train``/``val``/``test`` hold seen identities with disjoint sentence sets (test
sentences are never spoken in train or val); ``test_unseen`` holds identities with voices and
variants that no seen identity uses, speaking test sentences.

    python -m core.data.synth --out /work/corpus/default --seed 0 --size default
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from core.arkit import ARKIT_NAMES
from core.cpu import limit_numpy_blas
from core.data import augment
from core.data.clip import SPLITS
from core.emotion import EMOTIONS
from core.rates import FPS, SAMPLE_RATE
from core.data.sentences import split_pool
from core.data.style import Style
from core.data.tts import synthesize
from core.data.voices import Voice
from core.data.upper_face import upper_face
from core.data import performance
from core.data.performance import PERFORMANCE_VERSION, head_style
from core.data.visemes import lower_face

GENERATOR_VERSION = "synth-4"
MAX_SECONDS = 10.0                     # clips are at most 300 frames
SENTENCE_POOL = {"train": 6000, "val": 300, "test": 600}

# espeak-ng accents: library voice name -> readable name used in identity names.
ESPEAK_ACCENTS = {"en-us": "en-us", "en": "en-gb", "en-gb-scotland": "en-scotland",
                  "en-gb-x-rp": "en-rp", "en-gb-x-gbclan": "en-lancaster",
                  "en-gb-x-gbcwmd": "en-midlands", "en-029": "en-caribbean", "en-us-nyc": "en-nyc"}
# espeak-ng variants that sound human enough; unseen identities only use the second list.
SEEN_VARIANTS = ("m1 m2 m3 m4 m5 m7 m8 f1 f2 f3 f5 klatt klatt2 klatt4 Andy Annie anika aunty "
                 "belinda david ed grandpa grandma john linda paul rob robert steph travis victor "
                 "Alicia Lee Mike Hugo Denis").split()
UNSEEN_VARIANTS = "m6 f4 klatt3 shelby Marco michel edward caleb".split()
# Recorded voices of the other engines (engine, voice); flite's kal16 is left out, it is kal's
# speaker again. festival's slt (HTS) and kal (diphones) are the same people as flite's slt and
# kal but another synthesis method, so their audio differs well beyond pitch.
OTHER_VOICES = (("flite", "awb"), ("flite", "rms"), ("flite", "slt"), ("flite", "kal"),
                ("festival", "ked_diphone"), ("festival", "cmu_us_slt_arctic_hts"),
                ("festival", "kal_diphone"), ("piper", "joe"))
OTHER_SHARE = 0.27
SHORT_VOICE_NAMES = {"ked_diphone": "ked", "kal_diphone": "kal", "cmu_us_slt_arctic_hts": "slt-hts"}


@dataclass(frozen=True)
class SizeConfig:
    seen: int                 # identities in train/val/test
    unseen: int               # identities only in test_unseen
    train_seconds: float      # audio per seen identity in train (clips are added until reached)
    val_clips: int
    test_clips: int
    unseen_clips: int
    max_sentences: int = 3    # sentences per clip (longer clips include pauses)
    augment_probability: float = 0.6   # share of clips with voice/channel/room/noise augmentation


SIZES = {
    "tiny": SizeConfig(seen=3, unseen=1, train_seconds=5.0, val_clips=1, test_clips=1,
                       unseen_clips=2, max_sentences=1),
    "small": SizeConfig(seen=8, unseen=2, train_seconds=40.0, val_clips=2, test_clips=2,
                        unseen_clips=4),
    "default": SizeConfig(seen=30, unseen=6, train_seconds=330.0, val_clips=4, test_clips=8,
                          unseen_clips=16),
}


@dataclass(frozen=True)
class Identity:
    index: int
    name: str
    voice: Voice
    pitch_shift: float        # semitones applied to the audio (flite has no pitch control)
    style: Style
    seen: bool

    @property
    def label(self) -> str:
        """Voice and style in words, for people: "flite awb · calm, wide jaw"."""
        voice = self.name.split("_", 2)[2].replace("_", " ")     # "en-rp belinda", "slt-hts"
        return f"{self.voice.engine} {voice} · {self.style.describe()}"

    def to_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "seen": self.seen, "engine": self.voice.engine,
                "voice": self.voice.name, "rate": round(self.voice.rate, 4),
                "pitch": round(self.voice.pitch, 4), "pitch_range": round(self.voice.pitch_range, 4),
                "pitch_shift": round(self.pitch_shift, 4), "style": self.style.to_dict()}


def _shuffled(rng: np.random.Generator, items) -> list[str]:
    items = list(items)
    return [items[i] for i in rng.permutation(len(items))]


def plan_identities(seed: int, seen: int, unseen: int) -> list[Identity]:
    """Seen identities first, then unseen espeak identities whose variants no seen identity uses.

    Every identity has its own base voice: the recorded voices of flite, festival and piper
    (:data:`OTHER_VOICES`, each used once, spread over the seen list) and espeak-ng
    accent+variant pairs that no other identity shares, so that no two identities differ only
    by a pitch change."""
    if not (0 <= unseen <= len(UNSEEN_VARIANTS) and 0 < seen <= len(SEEN_VARIANTS)):
        raise ValueError(f"need 1..{len(SEEN_VARIANTS)} seen and 0..{len(UNSEEN_VARIANTS)} "
                         f"unseen identities, got {seen} and {unseen}")
    rng = np.random.default_rng([seed, 0x1D])
    accents = _shuffled(rng, ESPEAK_ACCENTS)
    variants = {True: _shuffled(rng, SEEN_VARIANTS), False: _shuffled(rng, UNSEEN_VARIANTS)}
    others = [OTHER_VOICES[i] for i in rng.permutation(len(OTHER_VOICES))]
    # the non-espeak voices take about one seen slot in four, as many as there are of them
    count = min(len(others), round(OTHER_SHARE * seen))
    other_slots = dict(zip(sorted(rng.choice(seen, size=count, replace=False).tolist()), others))
    plan: list[tuple[str, str, bool]] = []
    for k in range(seen + unseen):
        is_seen = k < seen
        if k in other_slots:
            plan.append((*other_slots[k], True))
        else:
            plan.append(("espeak", f"{accents[k % len(accents)]}+{variants[is_seen].pop()}", is_seen))

    identities = []
    for k, (engine, voice_name, is_seen) in enumerate(plan):
        voice = Voice(engine, voice_name, rate=float(rng.uniform(0.8, 1.25)),
                      pitch=float(rng.uniform(-4, 4)) if engine == "espeak" else 0.0,
                      pitch_range=float(rng.uniform(0.6, 1.6)) if engine != "piper" else float(rng.uniform(0.7, 1.3)))
        shift = float(rng.uniform(-2, 2)) if engine != "espeak" else 0.0
        if engine == "espeak":
            accent, variant = voice_name.split("+")
            label = f"{ESPEAK_ACCENTS[accent]}_{variant}"
        else:
            label = SHORT_VOICE_NAMES.get(voice_name, voice_name)
        identities.append(Identity(k, f"id{k:02d}_{engine}_{label}", voice, shift,
                                   head_style(seed, k, Style.sample(rng)), is_seen))
    return identities


def fingerprint(seed: int, size: str, perform: bool = True) -> str:
    key = json.dumps({"version": GENERATOR_VERSION, "performance": PERFORMANCE_VERSION if perform else None,
                      "seed": seed, "size": size}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Job:
    seed: int
    identity: Identity
    config: SizeConfig
    pools: dict
    clip_dir: str
    perform: bool = True      # False: the neutral face and no head (core.data.corpus_upgrade adds them later)


def _speak(job: _Job, sentences: list[str], clip_rng: np.random.Generator):
    """Synthesise and augment; None if the clip would exceed MAX_SECONDS."""
    ident = job.identity
    voice = replace(ident.voice, rate=ident.voice.rate * float(clip_rng.uniform(0.92, 1.08)),
                    pitch=ident.voice.pitch + float(clip_rng.uniform(-0.5, 0.5)))
    aug = augment.Augmentation.sample(clip_rng, job.config.augment_probability, ident.pitch_shift)
    try:
        audio, phones = synthesize(" ".join(sentences), voice)
    except ValueError:             # e.g. the aligner could not place a word of the text
        return None
    estimate = len(audio) / SAMPLE_RATE / aug.tempo + aug.pad_before + aug.pad_after + 0.1
    if estimate > MAX_SECONDS:
        return None
    audio, phones = augment.apply(audio, phones, aug, clip_rng)
    if len(audio) > MAX_SECONDS * SAMPLE_RATE:
        return None
    return audio, phones, aug


def _build_identity(job: _Job) -> list[dict]:
    """Every clip of one identity (runs in a worker process); returns its index rows."""
    # Byte-identical output on any machine needs the same floating-point order: multi-threaded
    # OpenBLAS sums in a different order than single-threaded, so every builder uses one thread.
    limit_numpy_blas()
    ident, cfg = job.identity, job.config
    order_rng = np.random.default_rng([job.seed, ident.index, 1])
    if ident.seen:
        wanted = [("train", None, cfg.train_seconds), ("val", cfg.val_clips, None),
                  ("test", cfg.test_clips, None)]
    else:
        wanted = [("test_unseen", cfg.unseen_clips, None)]
    rows = []
    clip_no = 0
    for split, count, seconds in wanted:
        pool = job.pools["test" if split == "test_unseen" else split]
        order = [pool[i] for i in order_rng.permutation(len(pool))]
        made, spoken = 0, 0.0
        while (count is not None and made < count) or (seconds is not None and spoken < seconds):
            if not order:
                raise ValueError(f"{ident.name}: ran out of {split} sentences")
            clip_rng = np.random.default_rng([job.seed, ident.index, clip_no, 2])
            clip_no += 1
            n = int(clip_rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
            sentences = [order.pop(0) for _ in range(min(n, cfg.max_sentences, len(order)))]
            result = _speak(job, sentences, clip_rng)
            while result is None and len(sentences) > 1:
                order.append(sentences.pop())       # too long: give the last sentence back
                result = _speak(job, sentences, clip_rng)
            if result is None:
                continue                            # a single sentence over 10 s: drop it
            audio, phones, aug = result
            frames = augment.frames_for(audio)
            # the two halves write disjoint channel sets, so their sum is the whole face
            curves = (lower_face(phones, frames, ident.style)
                      + upper_face(phones, audio, frames, ident.style, clip_rng))
            clip_id = f"{ident.name}_{split}_{made:03d}"
            extras = _write_clip(Path(job.clip_dir), clip_id, audio, curves, phones, sentences, aug, ident)
            rows.append({"id": clip_id, "identity": ident.name, "split": split, "frames": frames,
                         "text": " ".join(sentences), "augment": aug.names()})
            if job.perform:
                # the performance starts from what was stored (16-bit audio, rounded phones), as an
                # upgrade of a neutral corpus does (core.data.corpus_upgrade)
                stem = Path(job.clip_dir) / clip_id
                performed = performance.perform(
                    curves, performance.stored_phones(extras["phones"]),
                    sf.read(stem.with_suffix(".wav"), dtype="float32")[0], ident.style,
                    performance.clip_rng(job.seed, clip_id))
                performance.write_performance(stem, performed)
                rows[-1].update(emotion=performed.emotion, intensity=performed.intensity)
            made += 1
            spoken += len(audio) / SAMPLE_RATE
    return rows


def _write_clip(clip_dir: Path, clip_id: str, audio, curves, phones, sentences, aug, ident):
    sf.write(clip_dir / f"{clip_id}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
    np.save(clip_dir / f"{clip_id}.npy", curves.astype(np.float32))
    extras = {"sentences": sentences, "voice": ident.to_dict(), "augmentation": aug.to_dict(),
              "phones": [[p.label, round(p.start, 4), round(p.end, 4)] for p in phones]}
    (clip_dir / f"{clip_id}.json").write_text(json.dumps(extras))
    return extras


def _run_jobs(jobs: list["_Job"], workers: int, progress) -> list[dict]:
    """Every identity's clips (index rows, sorted by id), built by ``workers`` processes;
    ``progress(identities done, clips so far)`` after each identity."""
    rows: list[dict] = []
    # Always in fresh worker processes, even for one worker: in a long-lived process that had
    # already done other work, a build came out with a few samples different in the last bit.
    pool = multiprocessing.get_context("spawn").Pool(workers)
    try:
        for done, part in enumerate(pool.imap_unordered(_build_identity, jobs), 1):
            rows.extend(part)
            progress(done, len(rows))
    finally:
        pool.close()
        pool.join()
    return sorted(rows, key=lambda r: r["id"])


def build_corpus(out: str | Path, seed: int = 0, size: str = "default", workers: int | None = None,
                 force: bool = False, log=print, perform: bool = True) -> dict:
    """Write a corpus to ``out`` (built in ``out.partial`` and renamed when complete).

    Returns the meta dict. ``force`` replaces an existing corpus folder (never other folders).
    ``perform=False`` writes the neutral face without head motion (the shipped models' first
    training stages read it; ``python -m core.data.corpus_upgrade`` performs it afterwards).
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {sorted(SIZES)}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    out = Path(out).resolve()
    if out.exists():
        if not force:
            raise ValueError(f"{out} exists (pass force=True / --force to replace it)")
        if not (out / "meta.json").is_file() and any(out.iterdir()):
            raise ValueError(f"{out} is not a corpus folder; refusing to replace it")
    cfg = SIZES[size]
    started = time.perf_counter()
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "clips").mkdir(parents=True)

    identities = plan_identities(seed, cfg.seen, cfg.unseen)
    pools = split_pool(seed, SENTENCE_POOL)
    jobs = [_Job(seed, ident, cfg, pools, str(partial / "clips"), perform) for ident in identities]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    rows = _run_jobs(jobs, workers, lambda done, rows: log(
        f"[synth] {done}/{len(jobs)} identities, {rows} clips, {time.perf_counter() - started:.0f} s"))
    with open(partial / "index.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    stats = {split: {"clips": sum(r["split"] == split for r in rows),
                     "seconds": round(sum(r["frames"] for r in rows if r["split"] == split) / FPS, 1)}
             for split in SPLITS}
    meta = {
        "name": f"synthetic-{size}", "generator": GENERATOR_VERSION, "seed": seed, "size": size,
        **({"performance": PERFORMANCE_VERSION, "emotions": list(EMOTIONS)} if perform else {}),
        "fingerprint": fingerprint(seed, size, perform), "fps": FPS, "sample_rate": SAMPLE_RATE,
        "blendshape_names": list(ARKIT_NAMES),
        "identities": [i.name for i in identities if i.seen],
        "unseen_identities": [i.name for i in identities if not i.seen],
        "identity_params": {i.name: i.to_dict() for i in identities},
        "splits": stats, "hours": round(sum(s["seconds"] for s in stats.values()) / 3600, 3),
        "phone_set": "ARPAbet (lower case) + pau; per-clip timings in clips/<id>.json",
        "build": {"seconds": round(time.perf_counter() - started, 1), "workers": workers},
    }
    (partial / "meta.json").write_text(json.dumps(meta, indent=1))
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    return meta


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="corpus folder to write (keep it outside git)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--force", action="store_true", help="replace an existing corpus folder")
    parser.add_argument("--neutral", action="store_true",
                        help="no emotions and no head motion (add them later: python -m core.data.corpus_upgrade)")
    args = parser.parse_args(argv)
    try:
        meta = build_corpus(args.out, args.seed, args.size, args.workers, args.force, perform=not args.neutral)
    except ValueError as err:
        parser.error(str(err))
    print(json.dumps({k: meta[k] for k in ("name", "fingerprint", "hours", "splits", "build")}, indent=1))
    print(f"{len(meta['identities'])} seen + {len(meta['unseen_identities'])} unseen identities")
    return 0


if __name__ == "__main__":
    sys.exit(main())
