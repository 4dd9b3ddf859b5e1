"""Streaming inference: 16 kHz audio in chunks of any size in, ARKit-52 frames out as soon as
they are determined.

    stream = Stream(Talker.from_pretrained("checkpoints"), steps=8, seed=0)
    for chunk in microphone():            # e.g. 20-100 ms of float32 samples
        out = stream.feed(chunk)          # StreamFrames: out.first, out.curves [n, 52], out.head [n, 3]
    out = stream.finish()                 # the last frames, once the audio has ended

How it works. The stream keeps one position per encoder hop (every ``hop`` seconds of audio,
counted from the start, so that chunk sizes never matter): at each, the frames whose time
lies at least ``lookahead`` seconds before it are due. Their speech features are the offline
features of the audio heard so far (:mod:`core.audio.stream_features`), and all diffusion steps run
over them at once. A causal decoder carries each step's GRU state from the previous frames (the
stateful ONNX graph of :mod:`core.inference.onnx_decoder`), which equals one pass over the whole
sequence. A bidirectional decoder (its backward pass is what lets a blink form, docs/DECISIONS.md
"The seed must matter") needs the frames after too: each hop decodes a window, the last
``context`` seconds before the due frames and every frame heard after them, and keeps the due
frames; the window's frames get the same per-frame noise as offline, so the curves come close to
``Talker.generate``'s for the same seed (equal where the window reaches the clip's ends). Each
chunk runs the one reverse process of
:func:`core.model.diffusion.reverse` with the noise every decoder draws
(:func:`core.model.diffusion.frame_noise`, per frame from the seed), so a stream replaying a clip
returns what ``Talker.generate`` gives for the same seed wherever its features equal the offline ones.

The identity is the one asked for, or (``identity=None``) matched from the voice: first from
the features of the first hop, then again after ``match_after`` seconds, and kept from then on.
With ``close_pauses`` the lips close in pauses as ``Talker.generate(speech_check=True)`` does
offline (:class:`core.audio.speech_check.StreamPauses`); off, the frames are the model's alone.
``controls`` (:class:`core.inference.controls.Controls`) act as in ``Talker.generate``: the emotion
joins the identity's condition, the strengths and the head switch shape every chunk's frames.
``encoder`` replaces the talker's speech encoder by another precision of it (the Live tab's int8),
and ``one_thread`` runs the decoder on a single-threaded session (the Live tab's, beside a busy page).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from core.arkit import LIP_INDICES, NUM_BLENDSHAPES
from core.audio.decode import duration_frames
from core.head_pose import HEAD_CHANNELS
from core.inference import closures
from core.inference.controls import Controls, check_honoured
from core.inference.output_filter import OutputFilter
from core.inference.onnx_decoder import CarriedSteps, OnnxDecoder
from core.model.diffusion import frame_noise, noise_temperature, reverse
from core.model.network import curves_from_model
from core.inputs import matched_from_voice
from core.rates import FPS, SAMPLE_RATE
from core.audio.encoders import same_features
from core.audio.stream_features import stream_features

DEFAULT_LOOKAHEAD = 0.25     # seconds of audio after a frame before it is decoded (docs/DECISIONS.md, Live)
DEFAULT_HOP = 0.1            # seconds of audio between encoder runs
MATCH_AFTER = 3.0            # seconds of speech after which the voice is matched once more and kept
MAX_PLANS = 16               # encoder hops decoded in one batch by feed (bounds the memory of a long chunk)


@dataclass
class StreamFrames:
    first: int                                    # index of the first frame in ``curves``
    curves: np.ndarray                            # float32 [n, 52] in [0, 1], canonical ARKit order
    identity: str | None = None                   # identity that styled these frames
    timings: dict[str, float] = field(default_factory=dict)   # seconds: encoder, decoder
    head: np.ndarray | None = None                # float32 [n, 3] yaw/pitch/roll in radians (core/head_pose.py);
                                                  # zeros from a model without head motion or with it off

    def __post_init__(self):
        if self.head is None:
            self.head = np.zeros((len(self.curves), HEAD_CHANNELS), np.float32)

    @property
    def stop(self) -> int:
        return self.first + len(self.curves)


def frames_due(samples: int, lookahead: int) -> int:
    """Frames whose time lies ``lookahead`` samples or more before the end of ``samples`` of audio
    (and inside the clip that ``samples`` make)."""
    if samples < lookahead:
        return 0
    return min(duration_frames(samples), FPS * (samples - lookahead) // SAMPLE_RATE + 1)


WINDOW_CONTEXT = 1.0         # seconds of earlier frames a bidirectional model's window starts with


def _decoder(talker, steps: int):
    decoder = talker.decoder(steps)
    if not isinstance(decoder, OnnxDecoder):
        raise ValueError("streaming needs the ONNX decoder (CPU, backend 'auto' or 'onnx')")
    return decoder


def _stream_encoder(talker, encoder):
    """The talker's speech encoder, or ``encoder`` in its place: another precision of the same
    encoder (the Live tab's int8 Whisper, docs/DECISIONS.md "Live"), whose features the model reads alike."""
    own = talker.encoder()
    if encoder is None:
        return own
    if not same_features(encoder, own):
        raise ValueError(f"the model reads {own.name} features; {encoder.name} is another encoder")
    return encoder


class CarriedDecoding:
    """A causal decoder's frames, chunk after chunk: every step's GRU state carried over."""

    def __init__(self, decoder: OnnxDecoder):
        c = decoder.model.config
        self.decoder = decoder
        self.carried = CarriedSteps(decoder.stateful_session(), c.layers, 1, c.hidden,
                                  output=decoder.output_coefficients())

    def set_identity(self, feature: torch.Tensor) -> None:
        self.carried.biases = self.decoder.step_biases(feature)    # the same carried states

    def predictor(self, audio: torch.Tensor, count: int):
        """(x0_fn, rows before the ``count`` frames kept, rows decoded) for the next ``count`` frames of
        projected ``audio`` [n, A]."""
        return self.carried.predictor(audio[:count].float().numpy()[:, None]), 0, count

    def remember(self, audio: torch.Tensor, count: int) -> None:
        pass


class WindowedDecoding:
    """A bidirectional decoder's frames: each chunk decoded inside a window that starts
    ``context`` frames earlier and runs to the last frame heard."""

    def __init__(self, decoder: OnnxDecoder, context: int):
        self.decoder = decoder
        self.context = context
        self.identity: torch.Tensor | None = None     # [rows, I]: one row per face decoded side by side
        self.past = torch.zeros(0, decoder.model.config.audio_proj_dim)   # projected audio of recent frames

    def set_identity(self, *features: torch.Tensor) -> None:
        """The identity feature of each face decoded (the emotional face, then the plain one
        when the lips' closures win over the emotion: core.inference.closures)."""
        self.identity = torch.stack(features)

    def predictor(self, audio: torch.Tensor, count: int):
        """(x0_fn on time-major [frames, rows, C], frames before the ``count`` kept, frames decoded)."""
        window = torch.cat([self.past, audio])[None].expand(len(self.identity), -1, -1)
        x0_fn = self.decoder.bind((window, self.identity))

        def x0(x_t: np.ndarray, t: int) -> np.ndarray:
            steps = torch.full((x_t.shape[1],), t)
            return x0_fn(torch.from_numpy(x_t).transpose(0, 1), steps).transpose(0, 1).numpy()
        return x0, len(self.past), len(self.past) + len(audio)

    def remember(self, audio: torch.Tensor, count: int) -> None:
        self.past = torch.cat([self.past, audio[:count]])[-self.context:]


class Stream:
    """One live stream (one talker, one step count, one seed). Not thread-safe: one caller."""

    def __init__(self, talker, steps: int = 8, seed: int = 0, identity: str | None = None,
                 lookahead: float = DEFAULT_LOOKAHEAD, hop: float = DEFAULT_HOP, match_after: float = MATCH_AFTER,
                 sampler: str | None = None, close_pauses: bool = False, context: float = WINDOW_CONTEXT,
                 controls: Controls | None = None, encoder=None, one_thread: bool = False):
        if not 0 <= lookahead <= 2.0:
            raise ValueError(f"the look-ahead must be between 0 and 2 s, not {lookahead}")
        if not 0.01 <= hop <= 1.0:
            raise ValueError(f"the encoder hop must be between 0.01 and 1 s, not {hop}")
        self.steps = talker.check_steps(steps)
        self.seed = int(seed)
        self.model = talker.model(self.steps)
        self.controls = controls or Controls()
        check_honoured(self.controls, self.model.config, f"The {self.steps}-step model")
        self.decoder = _decoder(talker, self.steps)
        if one_thread:
            self.decoder = self.decoder.with_one_thread()
        self.method = sampler or self.model.config.sampler
        self.features = stream_features(_stream_encoder(talker, encoder))
        self.lookahead = int(round(lookahead * SAMPLE_RATE))
        self.hop = int(round(hop * SAMPLE_RATE))
        self.match_frames = int(round(match_after * FPS))
        self.fixed_identity = not matched_from_voice(identity)
        self.identity = identity if self.fixed_identity else None
        if self.fixed_identity:
            self.model.identity_index(identity)           # a clear error for an unknown name
        self._coefficients = self.model.schedule.reverse_coefficients(self.method)
        self._frames = (WindowedDecoding(self.decoder, int(round(context * FPS))) if self.model.config.bidirectional
                        else CarriedDecoding(self.decoder))
        self._identity_set = False
        self._heard = 0                                   # samples fed
        self._next_hop = self.hop                         # the next encoder position (samples)
        self._emitted = 0                                 # frames out so far
        self._output_filter = OutputFilter.of(self.model.config)  # carried over chunks, as one call over the clip
        self._gives_way = closures.applies(self.controls, self.model.config)   # also decodes the plain face
        self._temperature = noise_temperature(self.model.config)                 # x_T's scale, read once
        self._matching: list[np.ndarray] = []             # features until the identity is kept
        self._finished = False
        self._pauses = None
        if close_pauses:
            from core.audio.speech_check import StreamPauses
            self._pauses = StreamPauses()

    # -- public ----------------------------------------------------------------------------------------
    @property
    def frames_out(self) -> int:
        return self._emitted

    def due(self, samples: int) -> int:
        """How many frames are determined once ``samples`` of audio have been heard (hop aside):
        a model with ``audio_lookahead`` k also needs the features of the k frames after each, and
        an emotional request's closures (:mod:`core.inference.closures`) the frames their gate looks at."""
        later = self.model.config.audio_lookahead
        if self._gives_way:         # the closures' gate of a frame looks at the frames after it
            later = max(later, closures.frames_after())
        return min(frames_due(samples, self.lookahead), max(0, duration_frames(samples) - later))

    def feed(self, chunk, catch_up: bool = False) -> StreamFrames:
        """Hand over the next samples (float32 16 kHz mono); returns the frames they completed.

        Frames are decoded hop by hop, so that chunk sizes never matter, in batches of at most
        :data:`MAX_PLANS` hops (a long chunk costs time in proportion, memory bounded). With
        ``catch_up`` (a backlog: audio that waited while the previous block was decoded) the
        frames due at the last hop the chunk reaches are decoded as one block instead, from the
        features of the audio heard then (more than the look-ahead after the earlier frames): one
        encoder pass whatever the backlog, so a stream that fell behind catches up.
        """
        if self._finished:
            raise ValueError("this stream has finished; start a new one")
        chunk = np.asarray(chunk, np.float32).reshape(-1)
        if not np.all(np.isfinite(chunk)):
            raise ValueError("the audio holds NaN or infinite samples")
        if catch_up and self._heard + len(chunk) >= self._next_hop:
            hops = (self._heard + len(chunk) - self._next_hop) // self.hop
            take = self._next_hop + hops * self.hop - self._heard
            self._push(chunk[:take])
            self._next_hop += (hops + 1) * self.hop
            plans = []
            self._plan(self.due(self._heard), plans)
            out = self._emit(plans)
            self._push(chunk[take:])
            return out
        pieces, plans, at = [], [], 0
        while self._heard + len(chunk) - at >= self._next_hop:
            take = self._next_hop - self._heard
            self._push(chunk[at: at + take])
            at += take
            self._plan(self.due(self._heard), plans)
            self._next_hop += self.hop
            if len(plans) >= MAX_PLANS:
                pieces.append(self._emit(plans))
                plans = []
        self._push(chunk[at:])
        pieces.append(self._emit(plans))
        return pieces[0] if len(pieces) == 1 else StreamFrames(
            pieces[0].first, np.concatenate([p.curves for p in pieces]), self.identity,
            {k: sum(p.timings.get(k, 0.0) for p in pieces) for k in ("encoder", "decoder")},
            np.concatenate([p.head for p in pieces]))

    def finish(self) -> StreamFrames:
        """The audio has ended: the remaining frames, from the features of the whole audio."""
        if self._finished:
            raise ValueError("this stream has finished already")
        plans = []
        self._plan(duration_frames(self._heard), plans)
        self._finished = True
        return self._emit(plans)

    # -- inside ----------------------------------------------------------------------------------------
    def _push(self, samples: np.ndarray) -> None:
        if len(samples):
            self.features.push(samples)
            if self._pauses is not None:
                self._pauses.push(samples)
            self._heard += len(samples)

    def _plan(self, stop: int, plans: list) -> None:
        """Features of frames [first, stop) and of the ``audio_lookahead`` frames after them, as far
        as heard (all of them while feeding, see ``due``; at the end the model repeats the last)."""
        first = plans[-1][1] if plans else self._emitted
        if stop > first:
            heard = duration_frames(self._heard)
            later = heard if self.model.config.bidirectional else min(stop + self.model.config.audio_lookahead, heard)
            plans.append((first, stop, self.features.plan(first, later)))

    def _emit(self, plans: list) -> StreamFrames:
        first = self._emitted
        if not plans:
            return StreamFrames(first, np.zeros((0, NUM_BLENDSHAPES), np.float32), self.identity)
        t0 = time.perf_counter()
        runs = self.features.run([plan for _, _, plan in plans])
        t1 = time.perf_counter()
        pieces = []
        for (begin, stop, _), feats in zip(plans, runs):   # hop by hop, and split where the voice is
            cut = self.match_frames - begin                 # matched: chunk sizes never matter
            for lo, hi in ((0, cut), (cut, stop - begin)) if 0 < cut < stop - begin and not self.fixed_identity \
                    else ((0, stop - begin),):
                pieces.append(self._decode(feats[lo:], hi - lo))
                self._emitted += hi - lo
        channels = np.concatenate(pieces)
        curves, head = self.controls.shape(*self._output_filter(channels))   # as Talker.generate
        if self._pauses is not None:
            curves[:, list(LIP_INDICES)] *= self._pauses.weights(first, self._emitted)[:, None]
        self.features.forget_before(self._emitted)
        return StreamFrames(first, curves, self.identity,
                            {"encoder": t1 - t0, "decoder": time.perf_counter() - t1}, head)

    @torch.inference_mode()
    def _choose_identity(self, feats: np.ndarray) -> None:
        """Match the voice on the first hop's frames, and on the first ``match_after`` seconds
        once they are in; frames from then on keep that identity."""
        if self.fixed_identity:
            return
        before = self._emitted
        if before < self.match_frames:
            self._matching.append(feats)
        if self.identity is None or before == self.match_frames:
            heard = np.concatenate(self._matching)[: self.match_frames]
            self.identity = self.model.match(torch.from_numpy(heard))[0][0]
            self._identity_set = False
            if before == self.match_frames:
                self._matching = []

    @torch.inference_mode()
    def _decode(self, feats: np.ndarray, count: int) -> np.ndarray:
        """The model's channels (curves, then the head's if it makes them) [count, C] of the next
        ``count`` frames from their features ``feats[:count]`` (and the later frames' after them,
        for a model with audio look-ahead)."""
        self._choose_identity(feats[:count])
        model = self.model
        if not self._identity_set:      # the emotion joins the identity's feature, as in Talker.generate
            ids = torch.tensor([model.identity_index(self.identity)])
            emotion = torch.from_numpy(self.controls.emotion_vector)[None]
            silence = torch.zeros(1, 1, model.config.audio_dim)
            identities = [model.condition(silence, ids, emotion=emotion)[1][0]]
            if self._gives_way:
                identities.append(model.condition(silence, ids)[1][0])
            self._frames.set_identity(*identities)
            self._identity_set = True
        audio = model.project_audio(torch.from_numpy(feats)[None])[0]
        x0_fn, keep, rows = self._frames.predictor(audio, count)
        first = self._emitted - keep
        faces = 2 if self._gives_way else 1        # the same noise for the plain face, as Talker.generate

        def noise(draw: int) -> np.ndarray:
            drawn = frame_noise(self.seed, draw, first, first + rows, model.config.channels, self._temperature)[:, None]
            return np.repeat(drawn, faces, axis=1)

        x0 = reverse(x0_fn, noise(0), self._coefficients, noise if self.method == "ddpm" else None)
        self._frames.remember(audio, count)
        channels = curves_from_model(model.config, torch.from_numpy(x0[:, 0])).numpy()
        if self._gives_way:     # the window holds what a due frame's gate looks at: closures.LONGEST and a frame
            channels = closures.give_way(channels, curves_from_model(model.config, torch.from_numpy(x0[:, 1])).numpy())
        return channels[keep: keep + count]


@dataclass
class Replay:
    curves: np.ndarray                 # [frames, 52], everything the stream returned
    latencies: list[float]             # seconds, one per chunk that completed frames (see replay)
    rtf: float                         # processing time / audio duration
    identity: str | None
    log: list[dict]                    # per chunk: end (s), frames out, latency (s) or None
    head: np.ndarray | None = None     # [frames, 3] radians, everything the stream returned

    def summary(self) -> dict:
        ms = np.asarray(self.latencies) * 1000 if self.latencies else np.zeros(1)
        return {"latency_ms_p50": round(float(np.percentile(ms, 50)), 1),
                "latency_ms_p95": round(float(np.percentile(ms, 95)), 1),
                "rtf": round(self.rtf, 3), "frames": int(len(self.curves))}


def replay(stream: Stream, audio: np.ndarray, chunk: float = 0.02, realtime: bool = False,
           on_frames=None) -> Replay:
    """Feed ``audio`` through ``stream`` in chunks of ``chunk`` seconds (at real-time pace when
    ``realtime``), then finish it.

    A chunk's latency runs from the moment its last sample is handed over until the last frame
    it completed (every frame ``lookahead`` seconds or more before its end) has come out, which
    can be a later chunk's ``feed`` when chunks are shorter than the encoder hop; chunks that
    complete no frame have none. ``on_frames(StreamFrames)`` gets every chunk's frames as they
    come out (e.g. a Live Link sender), outside the timed part.
    """
    size = max(1, int(round(chunk * SAMPLE_RATE)))
    pieces, heads, out_at, waiting, log = [], [], [], [], []
    busy, due_before, began = 0.0, 0, time.perf_counter()

    def settle() -> None:
        while waiting and waiting[0][1] <= len(out_at):
            handed, needed, row = waiting.pop(0)
            row["latency_ms"] = round((out_at[needed - 1] - handed) * 1000, 2)

    for start in range(0, len(audio), size):
        end = min(start + size, len(audio))
        if realtime:
            time.sleep(max(0.0, began + end / SAMPLE_RATE - time.perf_counter()))
        handed = time.perf_counter()
        out = stream.feed(audio[start:end])
        done = time.perf_counter()
        busy += done - handed
        pieces.append(out.curves)
        heads.append(out.head)
        out_at += [done] * len(out.curves)
        row = {"end_s": round(end / SAMPLE_RATE, 3), "frames_out": len(out.curves), "latency_ms": None}
        log.append(row)
        needed = stream.due(end)
        if needed > due_before:
            waiting.append((handed, needed, row))
        due_before = needed
        settle()
        if on_frames and len(out.curves):
            on_frames(out)
    t0 = time.perf_counter()
    last = stream.finish()
    busy += time.perf_counter() - t0
    pieces.append(last.curves)
    heads.append(last.head)
    out_at += [time.perf_counter()] * len(last.curves)
    settle()
    if on_frames and len(last.curves):
        on_frames(last)
    latencies = [row["latency_ms"] / 1000 for row in log if row["latency_ms"] is not None]
    return Replay(np.concatenate(pieces), latencies, busy / max(1e-9, len(audio) / SAMPLE_RATE), stream.identity, log,
                  np.concatenate(heads))
