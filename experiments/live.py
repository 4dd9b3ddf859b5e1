"""``python -m experiments.live``: streamed against offline curves, and the stream's speed.

What it measures (the RESULTS.md section says it again next to the numbers):

* **Synthetic speech**: test-split sentences of the corpus spoken by library identities (their
  voice, rate and pitch, no augmentation) with the engine's own phone timings; the ground truth
  is the corpus's rule (:func:`core.data.visemes.lower_face`) with that identity's style, so the
  LBE is the corpus LBE of these clips. The identity is given (the true one) on both sides so
  that only the features differ; both sides draw the same noise (``Talker.generate`` on given features).
  Every look-ahead is measured on the same clips; long clips (several sentences, over 10 s)
  cross Whisper's window seams.
* **Real speech, validation part only** (``experiments.realspeech`` sources, ``split ==
  "validation"``, never the test part): the pooled AUC of the lip aperture (``jawOpen -
  mouthClose``) telling open-vowel frames from p/b/m frames, offline against streamed, with the
  identity matched offline on both sides.
* **Speed**: ``core.inference.streaming.replay`` of one clip per chunk size, variants interleaved, as
  fast as the machine allows (chunk latency, RTF) and at real-time pace.

Streamed features are computed with the streaming encoder itself (:class:`core.audio.stream_features.
WhisperStreamFeatures`), one plan per encoder hop covering every look-ahead at once; decoding
them with :func:`generated_curves` (``Talker.generate`` on those features) gives exactly what a
:class:`core.inference.streaming.Stream` returns for a causal decoder (tested), at a fraction of the cost
of one stream per look-ahead. A bidirectional decoder's stream also cuts each hop's window
(``WindowedDecoding``): ``measure_window`` replays real streams for that.
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np

from core.audio.decode import duration_frames
from core.evaluation.metrics import lbe
from core.rates import SAMPLE_RATE
from core.inference.streaming import DEFAULT_HOP, DEFAULT_LOOKAHEAD, frames_due, replay
from experiments.report import table

SECTION = "Live: streamed against offline curves, latency"
LOOKAHEADS = (0.0, 0.1, 0.2, 0.25, 0.3, 0.35, 0.5, 1.0)
SPEED_VARIANTS = ((20, DEFAULT_HOP), (100, DEFAULT_HOP), (20, 0.2))   # (chunk ms, encoder hop s)


def streamed_features(features, audio: np.ndarray, lookaheads, hop: float = DEFAULT_HOP,
                      batch: int = 8) -> dict[float, np.ndarray]:
    """The features a :class:`Stream` with each look-ahead decodes, from one pass of ``features``
    (a fresh :func:`core.audio.stream_features.stream_features` object) over ``audio``: at every encoder
    hop one plan covers the frames that any of the look-aheads makes due there. For a model with
    ``audio_lookahead`` k the stream also computes frame f + k's features when f is due, from that
    shorter prefix; here f + k has its own due time's, so the figures are a little optimistic."""
    hop_n, frames = int(round(hop * SAMPLE_RATE)), duration_frames(len(audio))
    ahead = [int(round(d * SAMPLE_RATE)) for d in lookaheads]
    out = [np.zeros((frames, features.dim), np.float32) for _ in lookaheads]
    pending = []

    def plan(previous: int, end: int) -> None:
        first = min(frames_due(previous, a) for a in ahead)
        stop = frames if end == len(audio) else max(frames_due(end, a) for a in ahead)
        if stop > first:
            pending.append((previous, end, first, stop, features.plan(first, stop)))

    def flush() -> None:
        for (previous, end, first, stop, _), feats in zip(pending, features.run([p[4] for p in pending])):
            for row, a in zip(out, ahead):
                lo = frames_due(previous, a)
                hi = frames if end == len(audio) else frames_due(end, a)
                row[lo:hi] = feats[lo - first: hi - first]
        pending.clear()

    previous = 0
    for end in [*range(hop_n, len(audio) + 1, hop_n), len(audio)]:
        if end == previous:
            continue
        features.push(audio[previous:end])
        plan(previous, end)
        previous = end
        if len(pending) >= batch:
            flush()
    flush()
    return dict(zip(lookaheads, out))


def synthetic_clips(count: int, long_count: int, seed: int = 0):
    """(name, identity name, audio, ground truth [F, 52]): test-split sentences spoken by the
    first ``count`` seen identities of the corpus plan (1-2 sentences), and ``long_count`` clips of
    six sentences (over 10 s, so they cross Whisper's window seams)."""
    from core.data.sentences import split_pool
    from core.data.synth import SENTENCE_POOL, SIZES, plan_identities
    from core.data.tts import synthesize
    from core.data.visemes import lower_face

    size = SIZES["default"]
    identities = [i for i in plan_identities(seed, size.seen, size.unseen) if i.seen]
    sentences = split_pool(seed, SENTENCE_POOL)["test"]
    out, at = [], 0
    for k in range(count + long_count):
        ident = identities[k % len(identities)]
        n = 6 if k >= count else 1 + k % 2
        text, at = " ".join(sentences[at: at + n]), at + n
        audio, phones = synthesize(text, ident.voice)
        truth = lower_face(phones, duration_frames(len(audio)), ident.style)
        out.append((f"{'long' if k >= count else 'clip'}-{k:02d}", ident.name, audio, truth))
    return out


def generated_curves(talker, features: np.ndarray, steps: int, seed: int, identity: str | None = None):
    """(curves [F, 52], identity) of ``Talker.generate`` on given features: what a stream returns
    for the same seed wherever its features equal these."""
    result = talker.generate(None, steps=steps, seed=seed, identity=identity, features=features)
    return result.blendshapes[0], result.identity


def _drift(streamed: np.ndarray, offline: np.ndarray) -> float:
    """Mean over frames of |streamed - offline| / mean |offline| (L2 norms per frame)."""
    return float(np.linalg.norm(streamed - offline, axis=1).mean() / np.linalg.norm(offline, axis=1).mean())


def measure_synthetic(talker, steps: int, seed: int, clips, lookaheads) -> dict:
    from core.audio.stream_features import stream_features
    encoder = talker.encoder()
    rows = []
    for name, identity, audio, truth in clips:
        offline_feats = encoder.encode(audio)
        offline, _ = generated_curves(talker, offline_feats, steps, seed, identity)
        row = {"clip": name, "seconds": len(audio) / SAMPLE_RATE, "offline": lbe(offline, truth),
               "streamed": {}, "drift": {}, "max_diff": {}}
        for d, feats in streamed_features(stream_features(encoder), audio, lookaheads).items():
            curves, _ = generated_curves(talker, feats, steps, seed, identity)
            row["streamed"][d], row["drift"][d] = lbe(curves, truth), _drift(feats, offline_feats)
            row["max_diff"][d] = float(np.abs(curves - offline).max())
        rows.append(row)
        print(f"{name} {row['seconds']:5.1f} s  LBE offline {row['offline']:.4f}  " + "  ".join(
            f"{d:g}s {row['streamed'][d]:.4f}" for d in lookaheads), flush=True)
    return {"rows": rows}


def measure_window(talker, steps: int, seed: int, clips, lookahead: float) -> dict | None:
    """A bidirectional model's real stream (:class:`Stream` replays, so the window's cut is in the
    figures) against ``Talker.generate`` on the same audio and seed: the LBE, and whether the
    live upper face is the offline one (mean |difference| beside the one another seed makes) with
    its blinks. None for a causal model, whose stream equals its streamed features' decoding."""
    from core.evaluation.upper_face import UPPER_CHANNELS, blinks
    from core.inference.streaming import Stream
    if not talker.model(steps).config.bidirectional:
        return None
    rows = []
    for name, identity, audio, truth in clips:
        offline = talker.generate(audio, steps=steps, seed=seed, identity=identity).blendshapes[0]
        other = talker.generate(audio, steps=steps, seed=seed + 1, identity=identity).blendshapes[0]
        live = replay(Stream(talker, steps, seed=seed, identity=identity, lookahead=lookahead), audio, chunk=0.1).curves
        upper = list(UPPER_CHANNELS)
        rows.append({"clip": name, "seconds": len(audio) / SAMPLE_RATE, "lbe_live": lbe(live, truth),
                     "lbe_offline": lbe(offline, truth),
                     "upper_diff": float(np.abs(live[:, upper] - offline[:, upper]).mean()),
                     "upper_other_seed": float(np.abs(other[:, upper] - offline[:, upper]).mean()),
                     "blinks_live": len(blinks(live)), "blinks_offline": len(blinks(offline))})
        print(name, {k: v for k, v in rows[-1].items() if k != "clip"}, flush=True)
    return {"lookahead": lookahead, "rows": rows}


def measure_realspeech(talker, steps: int, seed: int, lookaheads, audio_dir=None) -> dict:
    """Pooled lip-aperture AUC (open vowels vs p/b/m) on the validation recordings only."""
    from core.audio.decode import load_audio
    from core.data.align import align_phones
    from core.evaluation.lipsync import auc, frame_labels, mouth_scores, open_vs_bilabial
    from core.audio.stream_features import stream_features
    from experiments.realspeech.sources import DEFAULT_AUDIO_DIR, RECORDINGS, VALIDATION, find_audio

    encoder = talker.encoder()
    scores = {"offline": [], **{d: [] for d in lookaheads}}
    positives, used, seconds = [], 0, 0.0
    for rec in (r for r in RECORDINGS if r.split == VALIDATION):
        path = find_audio(rec, audio_dir or DEFAULT_AUDIO_DIR)
        if path is None:
            continue
        audio = load_audio(path)
        try:
            phones = align_phones(audio, rec.transcript)
        except ValueError as err:
            print(f"{rec.name}: left out ({err})")
            continue
        offline_feats = encoder.encode(audio)
        offline, identity = generated_curves(talker, offline_feats, steps, seed)
        keep, is_open = open_vs_bilabial(frame_labels(phones, len(offline)))
        positives.append(is_open[keep])
        scores["offline"].append(mouth_scores(offline)["lip aperture"][keep])
        for d, feats in streamed_features(stream_features(encoder), audio, lookaheads).items():
            scores[d].append(mouth_scores(generated_curves(talker, feats, steps, seed, identity)[0])["lip aperture"][keep])
        used, seconds = used + 1, seconds + len(audio) / SAMPLE_RATE
        print(f"{rec.name}: {len(audio) / SAMPLE_RATE:.1f} s", flush=True)
    if not used:
        return {"recordings": 0}
    positive = np.concatenate(positives)
    return {"recordings": used, "seconds": seconds, "open": int(positive.sum()), "bilabial": int((~positive).sum()),
            "auc": {k: auc(np.concatenate(v), positive) for k, v in scores.items()}}


def measure_speed(talker, steps: int, seconds: float, rounds: int, lookahead: float) -> dict:
    """Chunk latency and RTF of :func:`replay` per (chunk, encoder hop), variants interleaved, then
    one run at real-time pace; the encoder's 10 s window time beside them (the machine may be shared)."""
    from core.audio.encoder_bench import benchmark_encoder
    from core.inference.streaming import Stream
    from experiments.robustness import speech

    audio = speech(seconds)
    Stream(talker, steps, lookahead=lookahead).feed(audio[:SAMPLE_RATE])   # warm up
    runs = {variant: [] for variant in SPEED_VARIANTS}
    encoder = []
    for _ in range(rounds):
        encoder.append(benchmark_encoder(talker.encoder().name, repeats=3)["median_s"])
        for ms, hop in SPEED_VARIANTS:
            runs[ms, hop].append(replay(Stream(talker, steps, lookahead=lookahead, hop=hop, close_pauses=True),
                                        audio, ms / 1000))
    ms, hop = SPEED_VARIANTS[0]
    paced = replay(Stream(talker, steps, lookahead=lookahead, hop=hop, close_pauses=True), audio, ms / 1000,
                   realtime=True)
    out = {"seconds": seconds, "rounds": rounds, "encoder_10s_median_s": statistics.median(encoder),
           "variants": {}, "realtime": {"chunk_ms": ms, "hop": hop, **paced.summary()}}
    for variant, results in runs.items():
        lat = np.concatenate([np.asarray(r.latencies) for r in results]) * 1000
        out["variants"][variant] = {"latency_ms_p50": float(np.percentile(lat, 50)),
                                    "latency_ms_p95": float(np.percentile(lat, 95)),
                                    "rtf": statistics.median(r.rtf for r in results)}
    return out


def measure_sessions(talker, steps: int, seconds: float, counts, lookahead: float) -> list[dict]:
    """``n`` streams at once, each fed at real-time pace from its own thread: does each keep up?
    A stream keeps up when its chunk latency stays bounded (p95 under a second) and its processing
    fits in real time."""
    import threading
    from core.inference.streaming import Stream
    from experiments.robustness import speech

    audio = speech(seconds)
    out = []
    for n in counts:
        results = [None] * n

        def run(i):
            results[i] = replay(Stream(talker, steps, seed=i, lookahead=lookahead, close_pauses=True), audio, 0.1,
                                realtime=True)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        lat = np.concatenate([np.asarray(r.latencies) for r in results]) * 1000
        out.append({"sessions": n, "latency_ms_p50": float(np.percentile(lat, 50)),
                    "latency_ms_p95": float(np.percentile(lat, 95)), "rtf_max": max(r.rtf for r in results),
                    "keeps_up": bool(np.percentile(lat, 95) < 1000 and max(r.rtf for r in results) < 1.0)})
        print(f"{n} sessions: p95 {out[-1]['latency_ms_p95']:.0f} ms, RTF max {out[-1]['rtf_max']:.2f}", flush=True)
    return out


def measure_sustained(talker, steps: int, seconds: float, lookahead: float) -> dict:
    """One long stream as fast as possible: latency in its first and last tenth (drift) and the
    process's resident memory before and after."""
    import resource
    from core.inference.streaming import Stream
    from experiments.robustness import speech

    audio = speech(seconds)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stream = Stream(talker, steps, lookahead=lookahead, close_pauses=True)
    result = replay(stream, audio, 0.1)
    rows = [r for r in result.log if r["latency_ms"] is not None]
    tenth = max(1, len(rows) // 10)
    return {"seconds": seconds, "rtf": result.rtf,
            "first_p50_ms": float(np.median([r["latency_ms"] for r in rows[:tenth]])),
            "last_p50_ms": float(np.median([r["latency_ms"] for r in rows[-tenth:]])),
            "peak_rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
            "buffered_audio_s": len(getattr(stream.features, "_audio", [])) / SAMPLE_RATE}


def window_markdown(window: dict) -> list[str]:
    rows = window["rows"]
    minutes = sum(r["seconds"] for r in rows) / 60
    mean = lambda key: statistics.mean(r[key] for r in rows)     # noqa: E731
    return [f"**The bidirectional decoder's window, live** (the shipped model sees the frames after each frame, so a "
            f"stream decodes each hop in a window: `core.inference.streaming.WindowedDecoding`; the table above decodes "
            f"the streamed features over the whole clip, which leaves the window out). Real `Stream` replays of the "
            f"first {len(rows)} clips above, look-ahead {window['lookahead']} s, 100 ms chunks, against "
            "`Talker.generate` on the same audio with the same seed:", "",
            table(["LBE live", "LBE offline", "upper face: mean abs diff live - offline",
                   "the same, offline seed s+1 - seed s", "blinks/min live", "blinks/min offline"],
                  [[round(mean("lbe_live"), 4), round(mean("lbe_offline"), 4), round(mean("upper_diff"), 4),
                    round(mean("upper_other_seed"), 4), round(sum(r["blinks_live"] for r in rows) / minutes, 1),
                    round(sum(r["blinks_offline"] for r in rows) / minutes, 1)]]), ""]


def markdown(args, synthetic: dict, real: dict, speed: dict | None, model: str, window: dict | None = None) -> str:
    from experiments.report import machine_description
    rows = synthetic["rows"]
    base = statistics.mean(r["offline"] for r in rows)
    lines = [f"Written by `python -m experiments.live` ({model}, seed {args.seed}, encoder hop {args.hop} s); "
             f"{machine_description()}.", "",
             f"**Synthetic speech.** {len(rows)} clips ({sum(r['seconds'] for r in rows):.0f} s; "
             f"{sum(r['clip'].startswith('long') for r in rows)} of them over 10 s): test-split sentences of the corpus "
             "spoken by its seen identities (voice, rate, pitch; no augmentation), ground truth the corpus rule "
             "`core.data.visemes.lower_face` with that identity's style on the engine's phone timings. The true "
             "identity and the same noise on both sides (every decoder draws it per frame from the seed), so only the "
             f"features differ. Offline LBE {base:.4f}.", ""]
    table_rows = []
    for d in args.lookaheads:
        streamed = statistics.mean(r["streamed"][d] for r in rows)
        long = [r for r in rows if r["clip"].startswith("long")]
        table_rows.append([f"{d:g} s", round(streamed, 4), round(streamed / base, 3),
                           round(statistics.mean(r["drift"][d] for r in rows), 3),
                           round(max(r["max_diff"][d] for r in rows), 3),
                           round(statistics.mean(r["streamed"][d] / r["offline"] for r in long), 3) if long else "-"])
    lines += [table(["look-ahead", "LBE streamed", "x offline (target <= 1.10)", "feature drift (rel. L2)",
                     "max abs curve diff", "x offline, clips > 10 s"], table_rows), ""]
    if window:
        lines += window_markdown(window)
    if real.get("recordings"):
        a = real["auc"]
        lines += [f"**Real speech, validation part only** ({real['recordings']} recordings, {real['seconds']:.0f} s, "
                  f"{real['open']} open-vowel and {real['bilabial']} p/b/m frames; identity matched offline, used on both "
                  "sides): pooled AUC of the lip aperture.", "",
                  table(["", "AUC", "streamed - offline (target within 0.02)"],
                        [["offline", round(a["offline"], 4), "-"]]
                        + [[f"streamed, look-ahead {d:g} s", round(a[d], 4), round(a[d] - a["offline"], 4)]
                           for d in args.lookaheads]), ""]
    else:
        lines += ["**Real speech**: no validation recordings found (run `python -m experiments.realspeech --fetch`).", ""]
    if speed:
        lines += [f"**Speed** (`core.inference.streaming.replay` of {speed['seconds']:.0f} s of espeak-ng speech, lips closed in pauses as in the app, look-ahead "
                  f"{args.speed_lookahead} s, {speed['rounds']} rounds with the chunk sizes interleaved, as fast as "
                  "possible; latency = from a chunk's last sample handed over until the last frame it completed is "
                  "out, which includes waiting for the next encoder hop when chunks are shorter; the look-ahead "
                  "comes on top of it). The speech encoder's 10 s window took "
                  f"{speed['encoder_10s_median_s'] * 1000:.0f} ms (median) meanwhile; each hop runs it once "
                  "(twice in the 2 s overlaps).", "",
                  table(["chunk", "encoder hop", "latency p50 (ms)", "latency p95 (ms)", "RTF"],
                        [[f"{ms} ms", f"{hop} s", round(v["latency_ms_p50"], 1), round(v["latency_ms_p95"], 1),
                          round(v["rtf"], 3)] for (ms, hop), v in speed["variants"].items()]
                        + [[f"{speed['realtime']['chunk_ms']} ms at real-time pace", f"{speed['realtime']['hop']} s",
                            speed["realtime"]["latency_ms_p50"], speed["realtime"]["latency_ms_p95"],
                            speed["realtime"]["rtf"]]]), ""]
        sessions = speed.get("sessions") or []
        if sessions:
            lines += [f"**Simultaneous live sessions** (each a thread fed {speed['session_seconds']:.0f} s at real-time "
                      "pace in 100 ms chunks; it keeps up when its p95 latency stays under 1 s and its processing "
                      "fits in real time):", "",
                      table(["sessions", "latency p50 (ms)", "latency p95 (ms)", "max RTF", "all keep up"],
                            [[r["sessions"], round(r["latency_ms_p50"], 1), round(r["latency_ms_p95"], 1),
                              round(r["rtf_max"], 3), "yes" if r["keeps_up"] else "no"] for r in sessions]), ""]
        sustained = speed.get("sustained")
        if sustained:
            lines += [f"**Sustained**: one stream of {sustained['seconds']:.0f} s fed as fast as possible: RTF "
                      f"{sustained['rtf']:.3f}; median chunk latency {sustained['first_p50_ms']:.0f} ms in its first "
                      f"tenth and {sustained['last_p50_ms']:.0f} ms in its last; peak resident memory grew by "
                      f"{sustained['peak_rss_growth_mb']:.0f} MB over the run; the stream held "
                      f"{sustained['buffered_audio_s']:.1f} s of audio at the end.", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m experiments.live", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoints", default="checkpoints")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lookaheads", type=float, nargs="+", default=list(LOOKAHEADS))
    p.add_argument("--hop", type=float, default=DEFAULT_HOP)
    p.add_argument("--clips", type=int, default=16, help="short synthetic clips")
    p.add_argument("--long-clips", type=int, default=4, help="synthetic clips over 10 s")
    p.add_argument("--speed-seconds", type=float, default=20.0)
    p.add_argument("--speed-rounds", type=int, default=3)
    p.add_argument("--speed-lookahead", type=float, default=DEFAULT_LOOKAHEAD)
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 3], help="simultaneous live sessions to try")
    p.add_argument("--session-seconds", type=float, default=10.0)
    p.add_argument("--sustained-seconds", type=float, default=300.0)
    p.add_argument("--window-clips", type=int, default=8, help="clips replayed through a real stream (bidirectional model)")
    p.add_argument("--no-realspeech", action="store_true")
    p.add_argument("--no-speed", action="store_true")
    p.add_argument("--results", default="docs/RESULTS.md")
    args = p.parse_args(argv)

    from core.inference.talker import Talker
    talker = Talker.from_pretrained(args.checkpoints)
    model = talker.entries[talker.check_steps(args.steps)].get("name", args.checkpoints)
    clips = synthetic_clips(args.clips, args.long_clips)
    synthetic = measure_synthetic(talker, args.steps, args.seed, clips, args.lookaheads)
    window = measure_window(talker, args.steps, args.seed, clips[:args.window_clips], args.speed_lookahead)
    real = {} if args.no_realspeech else measure_realspeech(talker, args.steps, args.seed, args.lookaheads)
    speed = None if args.no_speed else measure_speed(talker, args.steps, args.speed_seconds, args.speed_rounds,
                                                     args.speed_lookahead)
    if speed is not None:
        speed["session_seconds"] = args.session_seconds
        speed["sessions"] = measure_sessions(talker, args.steps, args.session_seconds, args.sessions,
                                             args.speed_lookahead)
        speed["sustained"] = measure_sustained(talker, args.steps, args.sustained_seconds, args.speed_lookahead)
    md = markdown(args, synthetic, real, speed, model, window)
    print(md)
    from experiments.report import update_section
    print(f"results: {update_section(SECTION, md, args.results)}")


if __name__ == "__main__":
    main()
