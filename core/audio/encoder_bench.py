"""What the speech encoder costs: its FLOP count per window and a timing of ``encode``
(``python -m experiments.bench``)."""
from __future__ import annotations

import statistics
import time

import numpy as np

from core.audio.encoders import DEFAULT_ENCODER, MEL_HOP, WHISPER_WINDOW, get_encoder
from core.rates import SAMPLE_RATE

# Whisper tiny(.en) encoder dimensions, for its FLOP count (experiments.bench).
WHISPER_TINY_DIMS = {"mels": 80, "width": 384, "layers": 4, "ffn": 1536}


def whisper_encoder_flops(mel_frames: int = WHISPER_WINDOW // MEL_HOP, dims: dict = WHISPER_TINY_DIMS) -> float:
    """Multiply-adds x 2 of one Whisper encoder pass over ``mel_frames`` log-mel frames: two
    width-3 convolutions (the second with stride 2), then per layer the q/k/v/output projections,
    attention scores and weighted sum, and the feed-forward block."""
    d, n = dims["width"], mel_frames // 2
    convs = 3 * dims["mels"] * d * mel_frames + 3 * d * d * n
    layer = 4 * n * d * d + 2 * n * n * d + 2 * n * d * dims["ffn"]
    return 2.0 * (convs + dims["layers"] * layer)


def benchmark_encoder(name: str = DEFAULT_ENCODER, seconds: float = 10.0, repeats: int = 5,
                      threads: int | None = None) -> dict:
    """Time ``encode`` on a synthetic clip (cost does not depend on content).

    Returns the median and minimum over ``repeats`` runs after one warm-up run (which also
    loads the model, timed separately as ``first_call_s``).
    """
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 4 * t))
             + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    encoder = get_encoder(name, threads)
    start = time.perf_counter()
    encoder.encode(audio)
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        encoder.encode(audio)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"encoder": encoder.name, "seconds": seconds,
            "threads": getattr(encoder, "threads", None), "repeats": repeats,
            "first_call_s": round(first, 4), "median_s": round(median, 4),
            "min_s": round(min(times), 4), "realtime_factor": round(seconds / median, 1)}
