"""Live mode without Gradio: microphone chunks from the page -> a :class:`core.inference.streaming.Stream`
-> new frames for the 3D viewer and a latency readout.

The page sends what the browser records (any rate, int16 or float, mono or stereo) every
:data:`CHUNK_SECONDS`; :class:`LiveSession` turns it into 16 kHz mono with a resampler that
keeps its state across chunks (cutting the audio into chunks changes nothing but a delay of
:data:`core.audio.resample.RESAMPLER_MARGIN` input samples), feeds the stream and times each chunk from its arrival
to its frames. The viewer gets the frames as a ``live`` value (:func:`live_value`) that it
appends to what it is showing, rather than a whole take.
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np

from core.audio.decode import MAX_RATE, MIN_RATE
from core.audio.resample import StreamingResampler
from core.rates import FPS, SAMPLE_RATE
from demo import viewer

CHUNK_SECONDS = 0.1            # how often the page sends microphone audio (gr.Audio stream_every)
# The speech encoder runs every LIVE_HOP s of audio: 0.2 s halves its cost against the library's 0.1 s
# (RTF 0.52 vs 1.09 on the shared 2-core machine, RESULTS.md, Live) for about 0.1 s more delay, so
# that a busy server still keeps up (Gradio drops the chunks a busy handler misses).
LIVE_HOP = 0.2
MAX_LIVE_SECONDS = 600         # one live session at most (then start again)
MAX_LIVE_SESSIONS = max(1, (os.cpu_count() or 2) // 2)   # at once (2 cores hold one in real time: experiments.live)
STALE_SECONDS = 5.0            # a session without chunks for this long gives its slot up
SKIP_NOTICE = 0.5              # seconds of skipped audio from which the readout says so
LATENCY_WINDOW = 50            # chunks the readout's percentiles cover


def to_mono_float(samples) -> np.ndarray:
    """A browser chunk (int16 or float, [n] or [n, channels]) as float32 mono in [-1, 1]."""
    data = np.asarray(samples)
    if np.issubdtype(data.dtype, np.integer):
        data = data / float(np.iinfo(data.dtype).max + 1)
    if data.ndim == 2:
        data = data.mean(axis=1) if data.shape[1] <= 8 else data.mean(axis=0)
    if data.ndim != 1:
        raise ValueError(f"the microphone sent audio of shape {data.shape}; expected one or two channels")
    data = data.astype(np.float32)
    if not np.all(np.isfinite(data)):
        raise ValueError("the microphone sent samples that are not numbers")
    return data


class LiveSession:
    """One browser's live stream: audio chunks in, viewer frames and a latency readout out."""

    def __init__(self, talker, steps: int, identity: str | None = None):
        from core.inference.streaming import Stream
        self.stream = Stream(talker, steps, seed=0, identity=identity, hop=LIVE_HOP, close_pauses=True)
        self.rate: int | None = None
        self.resampler: StreamingResampler | None = None
        self.heard = 0.0                     # seconds of 16 kHz audio fed
        self.latencies: list[float] = []     # seconds per chunk that gave frames, the latest last
        self.first_chunk: tuple[float, float] | None = None   # (arrival, seconds) of the first chunk
        # Gradio runs Stop's event beside a chunk still being decoded, and a stream is one caller's
        # at a time: every use of it goes through this lock.
        self.lock = threading.RLock()
        StreamingResampler(48000)            # loads the resampler's code now rather than on the first chunk

    def frames(self, rate, samples, final: bool = False) -> tuple[int, np.ndarray]:
        """(index of the first frame, curves [n, 52]) that this chunk completed, as one step."""
        with self.lock:
            first = self.stream.frames_out
            return first, self.feed(rate, samples, final)

    def feed(self, rate, samples, final: bool = False) -> np.ndarray:
        """Curves [n, 52] of the frames this chunk completed (all remaining ones when ``final``)."""
        with self.lock:
            return self._feed(rate, samples, final)

    def _feed(self, rate, samples, final: bool) -> np.ndarray:
        arrived = time.perf_counter()
        rate = int(rate)
        if not MIN_RATE <= rate <= MAX_RATE:
            raise ValueError(f"the microphone's sample rate {rate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz")
        if self.rate is None:
            self.rate, self.resampler = rate, StreamingResampler(rate)
        elif rate != self.rate:
            raise ValueError(f"the microphone changed its sample rate ({self.rate} -> {rate} Hz); start again")
        wave = self.resampler(to_mono_float(samples), final=final)
        if self.first_chunk is None:
            self.first_chunk = (arrived, len(wave) / SAMPLE_RATE)
        if self.heard + len(wave) / SAMPLE_RATE > MAX_LIVE_SECONDS:
            raise ValueError(f"a live session lasts at most {MAX_LIVE_SECONDS // 60} minutes; stop and start again")
        self.heard += len(wave) / SAMPLE_RATE
        out = self.stream.feed(wave).curves
        if final:
            out = np.concatenate([out, self.stream.finish().curves])
        if len(out):
            self.latencies = (self.latencies + [time.perf_counter() - arrived])[-LATENCY_WINDOW:]
        return out

    def skipped(self, now: float | None = None) -> float:
        """Seconds of audio the page recorded but this session never got (Gradio drops the chunks
        that arrive while the previous one is being processed): wall time minus audio heard."""
        if self.first_chunk is None:
            return 0.0
        arrived, first = self.first_chunk
        return max(0.0, (now or time.perf_counter()) - arrived - (self.heard - first))

    def readout(self) -> str:
        """What the page shows beside the head: server latency, look-ahead, identity, time heard."""
        if not self.latencies:
            return f"Listening... {self.heard:.1f} s heard; the first frames come after the look-ahead."
        ms = np.asarray(self.latencies) * 1000
        ahead = self.stream.lookahead * 1000 / SAMPLE_RATE
        return (f"**Latency** (chunk arrival -> frames out, last {len(ms)} chunks): p50 {np.percentile(ms, 50):.0f} ms, "
                f"p95 {np.percentile(ms, 95):.0f} ms; plus the look-ahead of {ahead:.0f} ms and the page's "
                f"{CHUNK_SECONDS * 1000:.0f} ms chunks. Identity: {self.stream.identity}. "
                f"Heard {self.heard:.1f} s, {self.stream.frames_out} frames ({self.stream.frames_out / FPS:.1f} s)."
                + (f" The server is slower than real time here: about {self.skipped():.1f} s of audio were skipped."
                   if self.skipped() > SKIP_NOTICE else ""))


class LiveSlots:
    """At most ``limit`` live sessions at once. A session holds its slot while chunks keep coming;
    one silent for ``stale`` seconds (a closed tab never says stop) loses it to the next one."""

    def __init__(self, limit: int = MAX_LIVE_SESSIONS, stale: float = STALE_SECONDS):
        self.limit, self.stale = limit, stale
        self._active: dict[int, float] = {}       # id(session) -> last chunk (time.monotonic)
        self._lock = threading.Lock()

    def take(self, session) -> None:
        """Register ``session`` or raise ValueError with a message for the user."""
        with self._lock:
            now = time.monotonic()
            self._active = {k: t for k, t in self._active.items() if now - t < self.stale}
            if len(self._active) >= self.limit:
                raise ValueError(f"All {self.limit} live sessions this server holds are in use; try again shortly.")
            self._active[id(session)] = now

    def touch(self, session) -> None:
        with self._lock:
            self._active[id(session)] = time.monotonic()

    def release(self, session) -> None:
        with self._lock:
            self._active.pop(id(session), None)


def live_value(curves: np.ndarray, first: int, mesh_url: str, reset: bool = False) -> dict:
    """The viewer's value for frames [first, first + n) of a live stream (appended to what it shows;
    ``reset`` starts a new stream)."""
    return {"live": True, "reset": bool(reset), "fps": float(FPS), "first": int(first), "frames": int(len(curves)),
            "mesh": mesh_url, "curves": viewer.encode_curves(curves) if len(curves) else "",
            "sent": time.time() * 1000}
