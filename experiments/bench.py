"""Inference-speed benchmark: ``python -m experiments.bench [--checkpoints checkpoints] [--audio speech.wav]``.

For a 10 s clip and every shipped step count: end-to-end ITF (decode + encoder + identity
match + sampling, from a wav path), decoder-only ITF (sampling), encoder time, and the cost of
K seeds as one batch; the decoder's FLOPs per frame and the achieved fraction of this
machine's measured matmul peak.  Then, at 8 steps, every acceleration that was tried, measured
against its alternative with the output difference (decoder backends, inference mode,
torch.compile, seeds as a batch, encoder precision and threads); the time profile of one
request; the renderer's frames per second; and the issue's targets beside the measurements.
Median and spread over repeats; written to docs/RESULTS.md (section "benchmark").
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

from core.model.diffusion import noise_temperature, sample
from core.model.network import DiffusionTalker
from core.inference.talker import Talker
from experiments.report import machine_description, table, update_section

PAPER_ITF = {256: 82.4e-4, 128: 41.4e-4, 64: 20.8e-4, 32: 10.9e-4, 16: 5.2e-4, 8: 7.1e-4}  # V100, paper Table 1
PAPER_TENSORRT_ITF = 3.9e-4
TARGETS = {"itf_e2e_8": 2.5e-4, "itf_decoder_8": 1.5e-4, "seeds_ratio": 2.0, "render_fps": 30.0,
           "itf_e2e_8_gpu": 1e-4}


def decoder_flops_per_frame(model: DiffusionTalker, folded: bool = False) -> float:
    """Multiply-adds x 2 of one denoising step per frame: GRU layers + output head.

    ``folded``: the ONNX decoder's first layer, whose identity and step inputs are folded into
    its bias (computed once per step), so only the audio and x_t columns cost per frame.
    """
    c = model.config
    dirs = 2 if c.bidirectional else 1
    flops = 0.0
    width = c.audio_proj_dim + c.channels + (0 if folded else c.identity_feat_dim + c.step_dim)
    for _ in range(c.layers):
        flops += dirs * 2 * 3 * (width * c.hidden + c.hidden * c.hidden)
        width = c.hidden * dirs
    return flops + 2 * width * c.channels


def conditioning_flops_per_frame(model: DiffusionTalker) -> float:
    c = model.config
    audio_in = c.audio_dim * (2 if c.audio_lookahead else 1)     # with look-ahead: a frame and a later one
    return 2 * (audio_in * c.audio_proj_dim + c.audio_proj_dim * c.audio_proj_dim)


def measured_peak_gflops(size: int = 1024, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _median_time(fn, repeats: int) -> float:
    fn()
    return statistics.median(_timed(fn) for _ in range(repeats))


def speech_clip(seconds: float = 10.0) -> Path:
    """A spoken clip of exactly ``seconds`` (espeak-ng, repeated as needed) written to a temp wav."""
    import soundfile as sf
    from experiments.robustness import speech
    out = Path(tempfile.mkdtemp()) / "bench.wav"
    sf.write(out, speech(seconds), 16000)
    return out


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run(talker: Talker, audio: Path, repeats: int, seeds: int) -> dict:
    """Per shipped step count: ITF end to end and decoder-only, encoder time, K seeds vs one, FLOPs."""
    rows = {}
    talker.generate(str(audio), steps=talker.steps_available[-1])  # warm-up: encoder load, allocations
    features, _ = talker.features(str(audio))
    for steps in talker.steps_available:
        model = talker.model(steps)
        e2e, dec, enc, batch, stages = [], [], [], [], []
        for _ in range(repeats):
            out = talker.generate(str(audio), steps=steps, seed=0)
            e2e.append(out.itf)
            dec.append(out.timings["sampling"] / out.frames)
            enc.append(out.timings["encoder"])
            stages.append(out.timings)
        # K seeds vs one in a separate loop: a K-seed request slowed the next request's encoder
        # (0.069 -> 0.083 s measured), which would otherwise leak into the end-to-end figures.
        for _ in range(repeats):
            one = talker.generate(None, steps=steps, seed=0, features=features)
            many = talker.generate(None, steps=steps, seed=0, num_samples=seeds, features=features)
            batch.append(many.timings["sampling"] / one.timings["sampling"])
        folded = out.decoder == "onnx"
        flops = decoder_flops_per_frame(model, folded) * steps + conditioning_flops_per_frame(model)
        rows[steps] = {"itf": spread(e2e), "itf_decoder": spread(dec), "encoder_s": spread(enc),
                       f"{seeds}_seeds_vs_1": spread(batch), "frames": out.frames, "decoder": out.decoder,
                       "decoder_gflops_per_frame": flops / 1e9,
                       "achieved_gflops": flops / statistics.median(dec) / 1e9,
                       "stages_s": {k: statistics.median(s[k] for s in stages) for k in stages[0]}}
    return rows


def interleaved_medians(variants: dict[str, callable], repeats: int) -> dict[str, float]:
    """Median seconds of each function, timed round-robin (A B C A B C ...) after one warm-up call
    each, so that a machine whose speed drifts (shared CPUs) favours none of them."""
    for fn in variants.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            times[name].append(_timed(fn))
    return {name: statistics.median(v) for name, v in times.items()}


def against(talker: Talker, others: dict[str, Talker], audio: Path, steps: int, repeats: int) -> dict:
    """End-to-end seconds of one ``steps`` request with the shipped talker and each of ``others``
    (e.g. earlier releases), timed interleaved so that they share the machine alike."""
    def request(t: Talker):
        return lambda: t.generate(str(audio), steps=steps, seed=0)
    medians = interleaved_medians({"shipped": request(talker), **{name: request(t) for name, t in others.items()}},
                                  repeats)
    return {"steps": steps, "repeats": repeats, "shipped_s": medians["shipped"],
            "others": [{"other": name, "other_s": medians[name], "ratio": medians["shipped"] / medians[name]}
                       for name in others]}


def decoder_variants(talker: Talker, audio: Path, steps: int, repeats: int, seeds: int,
                     compile_model: bool = True) -> list[dict]:
    """Decoder-only time at ``steps`` for each way of running it (timed interleaved), with the
    largest curve difference from the plain torch decoder (same seed and noise)."""
    from core.inference.onnx_decoder import OnnxDecoder
    model = talker.model(steps)
    features, _ = talker.features(str(audio))
    frames = len(features)
    method = model.config.sampler
    with torch.inference_mode():
        cond1 = model.condition(torch.from_numpy(features)[None], torch.zeros(1, dtype=torch.long))
    condk = (cond1[0].expand(seeds, -1, -1), cond1[1].expand(seeds, -1))
    onnx = OnnxDecoder(model)
    workers = min(torch.get_num_threads(), steps)

    def sampled(x0_fn, k=1):
        return sample(model.schedule, x0_fn, list(range(k)), frames, method=method, channels=model.config.channels,
                      temperature=noise_temperature(model.config))

    def torch_fn(cond):
        return lambda x, t: model.denoise(x, t, cond)

    def pipelined(cond, k=1):
        return onnx.sample(cond, list(range(k)), frames, method, rows_share_clip=True)

    x, t = torch.randn(1, frames, model.config.channels), torch.full((1,), steps, dtype=torch.long)

    def denoiser_calls(context):  # autograd bookkeeping, outside the sampler (always inference mode)
        def call():
            with context():
                for _ in range(steps):
                    model.denoise(x, t, cond1)
        return call

    # name -> (function, output to compare for seed 0 or None, note)
    variants = {
        "torch, autograd on (denoiser calls only)": (denoiser_calls(torch.enable_grad), None, ""),
        "torch, no_grad (denoiser calls only)": (denoiser_calls(torch.no_grad), None, ""),
        "torch, inference_mode (denoiser calls only)": (denoiser_calls(torch.inference_mode), None, ""),
        "torch GRU": (lambda: sampled(torch_fn(cond1)), sampled(torch_fn(cond1)), "")}
    if compile_model:
        try:
            began = time.perf_counter()
            compiled = torch.compile(torch_fn(cond1))
            out = sampled(compiled)
            variants["torch GRU + torch.compile"] = (lambda: sampled(compiled), out,
                                                     f"compile + first call {time.perf_counter() - began:.1f} s")
        except Exception as err:  # no C++ compiler, unsupported op...: report, do not fail
            variants["torch GRU + torch.compile"] = (None, None, f"failed: {str(err).splitlines()[0][:80]}")
    variants.update({
        "ONNX Runtime GRU, one step after another": (lambda: sampled(onnx.bind(cond1)), sampled(onnx.bind(cond1)),
                                                     f"{torch.get_num_threads()} threads per step"),
        "ONNX Runtime GRU, steps side by side in chunks (kept)": (lambda: pipelined(cond1), pipelined(cond1),
                                                                  f"{workers} single-threaded workers"),
        f"ONNX Runtime, {seeds} seeds one at a time": (lambda: [pipelined(cond1) for _ in range(seeds)], None,
                                                       f"{seeds} x frames of output"),
        f"ONNX Runtime, {seeds} seeds as one batch (kept)": (lambda: pipelined(condk, seeds),
                                                             pipelined(condk, seeds)[:1], f"{seeds} x frames of output"),
        f"torch GRU, {seeds} seeds as one batch": (lambda: sampled(torch_fn(condk), seeds), None,
                                                   f"{seeds} x frames of output")})
    reference = variants["torch GRU"][1]
    seconds = interleaved_medians({k: v[0] for k, v in variants.items() if v[0] is not None}, repeats)
    rows = []
    for name, (_, output, note) in variants.items():
        took = seconds.get(name, float("nan"))
        rows.append({"variant": name, "seconds": took, "itf": took / frames, "note": note,
                     "max_abs_diff_model_space": float((output - reference).abs().max()) if output is not None
                     else float("nan")})
    return rows


def encoder_blas_check(talker: Talker, audio: Path, repeats: int) -> dict:
    """Encoder time with numpy's OpenBLAS at its default thread count vs one thread (core.cpu)."""
    from threadpoolctl import ThreadpoolController
    from core.audio.decode import load_audio
    wave = load_audio(str(audio))
    encoder = talker.encoder()
    controller = ThreadpoolController().select(internal_api="openblas")
    limited = _median_time(lambda: encoder.encode(wave), repeats)
    import os
    with controller.limit(limits=os.cpu_count()):
        default = _median_time(lambda: encoder.encode(wave), repeats)
    return {"one_thread_s": limited, "default_threads_s": default, "threads": os.cpu_count()}


def targets(rows: dict, render: dict | None, device: str) -> list[list]:
    """Each of the issue's targets beside what was measured here."""
    out = []
    if 8 in rows:
        r = rows[8]
        e2e, dec = r["itf"]["median"], r["itf_decoder"]["median"]
        key = "itf_e2e_8_gpu" if device.startswith("cuda") else "itf_e2e_8"
        out += [["8-step end-to-end ITF (s/frame)", f"{e2e:.2e}", f"<= {TARGETS[key]:.1e}", e2e <= TARGETS[key]],
                ["8-step decoder-only ITF (s/frame)", f"{dec:.2e}", f"<= {TARGETS['itf_decoder_8']:.1e}",
                 dec <= TARGETS["itf_decoder_8"]]]
        ratio_key = next(k for k in r if k.endswith("_seeds_vs_1"))
        ratio = r[ratio_key]["median"]
        out.append([f"{ratio_key.split('_')[0]} seeds vs 1 seed", f"{ratio:.2f}x", "< 2x", ratio < TARGETS["seeds_ratio"]])
    steps = sorted(rows, reverse=True)
    if len(steps) > 1:   # decoder time divided by this much per halving of the steps, between neighbours
        factors = [(rows[hi]["itf_decoder"]["median"] / rows[lo]["itf_decoder"]["median"]) ** (1 / np.log2(hi / lo))
                   for hi, lo in zip(steps, steps[1:])]
        out.append([f"decoder ITF per halving of steps ({steps[0]} -> {steps[-1]})",
                    " ".join(f"{f:.2f}" for f in factors), "~2 each (proportional; >= 1.5 counted as met)",
                    min(factors) >= 1.5])
    if render and "render_fps" in render:
        out.append(["renderer at 512x512", f"{render['render_fps']:.1f} fps", ">= 30 fps",
                    render["render_fps"] >= TARGETS["render_fps"]])
    return out


def seeds_bound(rows: dict, seeds: int, peak: float) -> str:
    """What K seeds < 2x one seed would demand of the machine: K times the FLOPs in twice the time."""
    if 8 not in rows:
        return ""
    r = rows[8]
    single = r["achieved_gflops"]
    needed = seeds * single / 2
    return (f"The single-seed 8-step decoder already runs at {single:.0f} GFLOP/s ({single / peak:.0%} of the "
            f"measured peak); {seeds} seeds cost {seeds}x the FLOPs, so finishing them in under twice the time "
            f"needs {needed:.0f} GFLOP/s, {needed / peak:.0%} of the peak, for products of only "
            f"{seeds} rows x 256 by 256 x 768 inside a recurrence.")


def roofline(row: dict, steps: int, peak: float) -> str:
    """How close the request is to this machine's limit: encoder and decoder FLOPs at the measured peak."""
    from core.audio.encoder_bench import whisper_encoder_flops
    frames, stages = row["frames"], row["stages_s"]
    encoder = whisper_encoder_flops()
    decoder = row["decoder_gflops_per_frame"] * 1e9 * frames
    floor = (encoder + decoder) / (peak * 1e9) / frames
    return (f"Roofline of one {steps}-step request ({frames} frames): the Whisper tiny encoder does "
            f"{encoder / 1e9:.1f} GFLOP per 10 s window, {encoder / stages['encoder'] / 1e9:.0f} GFLOP/s here "
            f"({encoder / stages['encoder'] / 1e9 / peak:.0%} of peak); the decoder {decoder / 1e9:.1f} GFLOP, "
            f"{decoder / stages['sampling'] / 1e9:.0f} GFLOP/s ({decoder / stages['sampling'] / 1e9 / peak:.0%}). "
            f"At 100 % of the measured peak the request would still take {floor:.2e} s/frame.")


def main(argv=None):
    p = argparse.ArgumentParser(description="Benchmark inference speed (ITF) for every step count.")
    p.add_argument("--checkpoints", default="checkpoints")
    p.add_argument("--audio", help="a speech file (default: a 10 s espeak-ng clip)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--render-frames", type=int, default=150)
    p.add_argument("--skip-encoders", action="store_true")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurement (~20 s)")
    p.add_argument("--json", default="docs/bench.json")
    p.add_argument("--results", default="docs/RESULTS.md")
    p.add_argument("--compare-with", nargs="*", default=[],
                   help="other checkpoints folders (e.g. earlier releases): their 8-step end-to-end time, "
                        "interleaved with the shipped one's")
    p.add_argument("--compare-repeats", type=int, help="requests per model in that comparison (default 3 x --repeats)")
    a = p.parse_args(argv)
    audio = Path(a.audio) if a.audio else speech_clip()
    talker = Talker.from_pretrained(a.checkpoints)
    peak = measured_peak_gflops()
    rows = run(talker, audio, a.repeats, a.seeds)
    ref_steps = 8 if 8 in talker.steps_available else talker.steps_available[-1]
    variants = decoder_variants(talker, audio, ref_steps, a.repeats, a.seeds, not a.no_compile)
    encoders, blas = {}, None
    if not a.skip_encoders:
        from core.audio.encoder_bench import benchmark_encoder
        for name in ("whisper-tiny.en", "whisper-tiny.en-int8"):
            for threads in (1, 2):
                encoders[f"{name}, {threads} thread(s)"] = benchmark_encoder(name, 10.0, a.repeats, threads)
        blas = encoder_blas_check(talker, audio, a.repeats)
    try:
        from core.face.render import benchmark_render
        render = benchmark_render(n_frames=a.render_frames, size=512)
    except Exception as err:  # rendering needs EGL; report its absence instead of failing the benchmark
        render = {"error": str(err).splitlines()[0]}
    compared = None
    if a.compare_with:
        compared = against(talker, {path: Talker.from_pretrained(path) for path in a.compare_with}, audio,
                           ref_steps, a.compare_repeats or 3 * a.repeats)
    peak = max(peak, measured_peak_gflops())   # the machine's speed drifts: the better of two measurements
    device = str(talker.device)
    result = {"machine": machine_description(), "device": device, "peak_gflops": peak, "audio": str(audio),
              "repeats": a.repeats, "models": rows, "decoder_variants": variants, "render": render,
              "encoders": encoders, "encoder_numpy_blas": blas, "targets": targets(rows, render, device),
              "compared": compared}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(result, indent=1, default=str))
    update_section("benchmark", report(result, a.seeds, ref_steps, a.render_frames), a.results)
    print(report(result, a.seeds, ref_steps, a.render_frames))


def report(result: dict, seeds: int, ref_steps: int, render_frames: int) -> str:
    rows, peak = result["models"], result["peak_gflops"]
    table_rows = [[s, r["decoder"], r["itf"]["median"] * 1e4, f"{r['itf']['min'] * 1e4:.3g}-{r['itf']['max'] * 1e4:.3g}",
                   r["itf_decoder"]["median"] * 1e4, r["encoder_s"]["median"], r[f"{seeds}_seeds_vs_1"]["median"],
                   r["decoder_gflops_per_frame"], r["achieved_gflops"] / peak * 100,
                   PAPER_ITF.get(s, float("nan")) * 1e4]
                  for s, r in rows.items()]
    md = [f"## Inference speed\n\n`python -m experiments.bench` on {result['machine']} (device {result['device']}); "
          f"10 s clip, {result['repeats']} repeats (median, min-max). ITF in 1e-4 s/frame. End-to-end = wav decode + "
          f"encoder + identity match + sampling. Measured matmul peak (1024x1024 float32, best of the start and end of the run): {peak:.1f} GFLOP/s. The paper's ITF is on "
          f"a V100 ({PAPER_TENSORRT_ITF * 1e4:.1f} with TensorRT at 8 steps).\n",
          table(["steps", "decoder", "ITF e2e", "e2e range", "ITF decoder", "encoder s", f"{seeds} seeds / 1 seed cost",
                 "GFLOP/frame", "% of peak", "paper ITF (V100)"], table_rows)]
    if result.get("compared"):
        c = result["compared"]
        md += [f"\nAgainst other checkpoints in the same run ({c['steps']} steps, end to end, {c['repeats']} requests "
               f"each, interleaved): shipped {c['shipped_s']:.3f} s; "
               + "; ".join(f"`{o['other']}` {o['other_s']:.3f} s (shipped / it {o['ratio']:.3f})" for o in c["others"])
               + "."]
    if ref_steps in rows:
        stages = rows[ref_steps]["stages_s"]
        total = stages["total"]
        md += [f"\nWhere one {ref_steps}-step request's time goes (median seconds, {rows[ref_steps]['frames']} frames):\n",
               table(["stage", "seconds", "share"],
                     [[k, v, f"{v / total:.0%}"] for k, v in stages.items() if k != "total"] + [["total", total, "100%"]])]
    md += [f"\nAccelerations tried at {ref_steps} steps (decoder only; difference against the plain torch decoder "
           "with the same noise, model space [-1, 1]; 'kept' = what `Talker.generate` uses):\n",
           table(["variant", "seconds", "ITF", "max |diff|", "note"],
                 [[v["variant"], v["seconds"], f"{v['itf']:.2e}", v["max_abs_diff_model_space"], v["note"]]
                  for v in result["decoder_variants"]])]
    bound = seeds_bound(rows, seeds, peak)
    if bound:
        md.append("\n" + bound)
    if ref_steps in rows:
        md.append("\n" + roofline(rows[ref_steps], ref_steps, peak))
    encoders = result["encoders"]
    if encoders:
        md += ["\nSpeech encoder on a 10 s clip (CTranslate2; `core.audio.encoder_bench.benchmark_encoder`). The int8 encoder is "
               "faster but changes the curves (section 'int8 speech encoder'), so float32 stays the default:\n",
               table(["encoder", "median s", "min s", "x real time"],
                     [[k, v["median_s"], v["min_s"], v["realtime_factor"]] for k, v in encoders.items()])]
    blas = result.get("encoder_numpy_blas")
    if blas:
        md.append(f"\nnumpy's OpenBLAS spins its idle workers after each call, taking a core from the encoder: "
                  f"encoder {blas['default_threads_s']:.3f} s with numpy BLAS at {blas['threads']} threads, "
                  f"{blas['one_thread_s']:.3f} s at one thread (what inference uses, `core/cpu.py`).")
    render = result["render"]
    if render and "render_fps" in render:
        md.append(f"\nRenderer (`core.face.render.benchmark_render`, 512x512, {render_frames} frames): "
                  f"{render['render_fps']:.1f} frames/s rendering, {render['video_fps']:.1f} frames/s "
                  f"rendered and encoded to mp4.")
    md += ["\nTargets (issue 'Speed'; the app's time to curves is in the section 'Time to curves in the app'):\n",
           table(["target", "measured", "asked", "met"], [[*t[:3], "yes" if t[3] else "no"] for t in result["targets"]])]
    return "\n".join(md)


if __name__ == "__main__":
    main()
