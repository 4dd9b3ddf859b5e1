"""Inference-speed benchmark: ``python -m core.bench [--checkpoints checkpoints] [--audio speech.wav]``.

For a 10 s clip and every shipped step count: end-to-end ITF (decode + encoder + identity
match + sampling, from a wav path), decoder-only ITF (sampling), encoder time, and the cost of
K seeds as one batch; the decoder's FLOPs per frame and the achieved fraction of this
machine's measured matmul peak; the renderer's frames per second.  Median and spread over
repeats; written to docs/RESULTS.md (section "benchmark").
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from core.model import DiffusionTalker
from core.pipeline import Talker
from core.report import machine_description, table, update_section

PAPER_ITF = {256: 82.4e-4, 128: 41.4e-4, 64: 20.8e-4, 32: 10.9e-4, 16: 5.2e-4, 8: 7.1e-4}  # V100, paper Table 1


def decoder_flops_per_frame(model: DiffusionTalker) -> float:
    """Multiply-adds x 2 of one denoising step per frame: GRU layers + output head + step/identity (negligible)."""
    c = model.config
    dirs = 2 if c.bidirectional else 1
    flops, width = 0.0, c.audio_proj_dim + c.identity_feat_dim + c.step_dim + 52
    for _ in range(c.layers):
        flops += dirs * 2 * 3 * (width * c.hidden + c.hidden * c.hidden)
        width = c.hidden * dirs
    return flops + 2 * width * 52


def conditioning_flops_per_frame(model: DiffusionTalker) -> float:
    c = model.config
    return 2 * (c.audio_dim * c.audio_proj_dim + c.audio_proj_dim * c.audio_proj_dim)


def measured_peak_gflops(size: int = 1024, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def speech_clip(seconds: float = 10.0) -> Path:
    """A spoken clip of exactly ``seconds`` (espeak-ng, repeated as needed) written to a temp wav."""
    import soundfile as sf
    from core.robustness import speech
    out = Path(tempfile.mkdtemp()) / "bench.wav"
    sf.write(out, speech(seconds), 16000)
    return out


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run(talker: Talker, audio: Path, repeats: int, seeds: int) -> dict:
    rows = {}
    talker.generate(str(audio), steps=talker.steps_available[-1])  # warm-up: encoder load, allocations
    for steps in talker.steps_available:
        model = talker.model(steps)
        e2e, dec, enc, batch = [], [], [], []
        for _ in range(repeats):
            out = talker.generate(str(audio), steps=steps, seed=0)
            e2e.append(out.itf)
            dec.append(out.timings["sampling"] / out.frames)
            enc.append(out.timings["encoder"])
            many = talker.generate(str(audio), steps=steps, seed=0, num_samples=seeds)
            batch.append(many.timings["sampling"] / out.timings["sampling"])
        flops = decoder_flops_per_frame(model) * steps + conditioning_flops_per_frame(model)
        rows[steps] = {"itf": spread(e2e), "itf_decoder": spread(dec), "encoder_s": spread(enc),
                       f"{seeds}_seeds_vs_1": spread(batch), "frames": out.frames,
                       "decoder_gflops_per_frame": flops / 1e9,
                       "achieved_gflops": flops / statistics.median(dec) / 1e9}
    return rows


def chunk_check(talker: Talker, audio: Path, steps: int, options=((60, 30), (100, 30), (150, 30)),
                repeats: int = 5) -> list[dict]:
    """Chunked decoder recurrence vs one pass: decoder time and the largest curve difference."""
    saved = talker.chunk
    rows = []
    try:
        talker.chunk = None
        full = [talker.generate(str(audio), steps=steps, seed=0) for _ in range(repeats)]
        base = statistics.median(g.timings["sampling"] for g in full)
        for chunk in options:
            talker.chunk = chunk
            runs = [talker.generate(str(audio), steps=steps, seed=0) for _ in range(repeats)]
            rows.append({"chunk": chunk, "sampling_s": statistics.median(g.timings["sampling"] for g in runs),
                         "one_pass_s": base, "max_abs_diff": float(np.abs(runs[0].blendshapes - full[0].blendshapes).max())})
    finally:
        talker.chunk = saved
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description="Benchmark inference speed (ITF) for every step count.")
    p.add_argument("--checkpoints", default="checkpoints")
    p.add_argument("--audio", help="a speech file (default: a 10 s espeak-ng clip)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--render-frames", type=int, default=150)
    p.add_argument("--skip-encoders", action="store_true")
    p.add_argument("--json", default="docs/bench.json")
    p.add_argument("--results", default="docs/RESULTS.md")
    a = p.parse_args(argv)
    audio = Path(a.audio) if a.audio else speech_clip()
    talker = Talker.from_pretrained(a.checkpoints)
    peak = measured_peak_gflops()
    rows = run(talker, audio, a.repeats, a.seeds)
    chunks = chunk_check(talker, audio, 8 if 8 in talker.steps_available else talker.steps_available[-1])
    encoders = {}
    if not a.skip_encoders:
        from core.encoders import benchmark_encoder
        for name in ("whisper-tiny.en", "whisper-tiny.en-int8"):
            for threads in (1, 2):
                encoders[f"{name}, {threads} thread(s)"] = benchmark_encoder(name, 10.0, a.repeats, threads)
    render = None
    try:
        from demo.render import benchmark_render
        render = benchmark_render(n_frames=a.render_frames, size=512)
    except Exception as err:  # rendering needs EGL; report its absence instead of failing the benchmark
        render = {"error": str(err).splitlines()[0]}
    result = {"machine": machine_description(), "device": str(talker.device), "peak_gflops": peak,
              "audio": str(audio), "repeats": a.repeats, "models": rows, "render": render, "encoders": encoders,
              "chunks": chunks, "default_chunk": talker.chunk}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(result, indent=1))
    table_rows = [[s, r["itf"]["median"] * 1e4, f"{r['itf']['min'] * 1e4:.3g}-{r['itf']['max'] * 1e4:.3g}",
                   r["itf_decoder"]["median"] * 1e4, r["encoder_s"]["median"], r[f"{a.seeds}_seeds_vs_1"]["median"],
                   r["decoder_gflops_per_frame"], r["achieved_gflops"] / peak * 100,
                   PAPER_ITF.get(s, float("nan")) * 1e4]
                  for s, r in rows.items()]
    md = [f"## Inference speed\n\n`python -m core.bench` on {result['machine']} (device {result['device']}); "
          f"10 s clip, {a.repeats} repeats (median, min-max). ITF in 1e-4 s/frame. End-to-end = wav decode + "
          f"encoder + identity match + sampling. Measured matmul peak: {peak:.1f} GFLOP/s.\n",
          table(["steps", "ITF e2e", "e2e range", "ITF decoder", "encoder s", f"{a.seeds} seeds / 1 seed cost",
                 "GFLOP/frame", "% of peak", "paper ITF (V100)"], table_rows)]
    md += [f"\nDecoder recurrence in chunks (frames, warm-up) vs one pass, 8 steps, same seed "
           f"(the pipeline default is {talker.chunk}):\n",
           table(["chunk", "sampling s", "one pass s", "speed-up", "max |curve diff|"],
                 [[str(c["chunk"]), c["sampling_s"], c["one_pass_s"], c["one_pass_s"] / c["sampling_s"],
                   c["max_abs_diff"]] for c in chunks])]
    if encoders:
        md += ["\nSpeech encoder on a 10 s clip (CTranslate2; `core.encoders.benchmark_encoder`):\n",
               table(["encoder", "median s", "min s", "x real time"],
                     [[k, v["median_s"], v["min_s"], v["realtime_factor"]] for k, v in encoders.items()])]
    if render and "render_fps" in render:
        md.append(f"\nRenderer (`demo.render.benchmark_render`, 512x512, {a.render_frames} frames): "
                  f"{render['render_fps']:.1f} frames/s rendering, {render['video_fps']:.1f} frames/s "
                  f"rendered and encoded to mp4.")
    update_section("benchmark", "\n".join(md), a.results)
    print("\n".join(md))


if __name__ == "__main__":
    main()
