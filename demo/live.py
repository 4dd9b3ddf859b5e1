"""Live mode without Gradio: microphone audio from the page -> a :class:`core.inference.streaming.Stream`
-> new frames for the 3D viewer, and who may stream.

The page records the microphone itself (``demo/static/microphone.js``) and uploads raw 16-bit PCM
to ``POST live/audio/<token>`` (:mod:`demo.live_tab`), one upload at a time: while one is on its
way, what it records meanwhile waits on the page and goes with the next, so nothing is dropped
on the way (Gradio's own streaming microphone keeps only the newest slice of those that arrive
while its handler runs: half the audio was lost on a busy 2-core machine). Each upload says
where its first sample lies in the recording (``start``), so a gap (an upload that failed) is
filled with silence and counted as skipped, and a repeated upload is not heard twice. An upload
is bounded before it is read (:func:`core.audio.decode.read_pcm16`); :class:`LiveSession` turns it
into 16 kHz with the project's one resampler (:class:`core.audio.resample.StreamingResampler`)
and hands it to a worker thread, so the request returns at once with the frames decoded so far.
The worker decodes whatever audio is waiting as one block (``Stream.feed(catch_up=True)``): a
server that fell behind catches up instead of skipping. The viewer gets the frames as a ``live``
value (:func:`live_value`) that it appends to what it shows, the head's rotation beside the
curves. The emotion, strengths and head switch (``Controls``) are set at Record.

Who streams: :class:`LiveLine`, at most :data:`MAX_LIVE_SESSIONS` at once; the others wait in line
(first come, first served, one place per client) and see their place. A turn ends after
:data:`TURN_SECONDS` when someone waits, and a stream without uploads for :data:`STALE_SECONDS`
(a tab closed without Stop) gives its place up.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from core.audio.decode import AudioError, read_pcm16
from core.audio.resample import StreamingResampler
from core.inference.controls import Controls
from core.rates import FPS, SAMPLE_RATE
from demo import viewer

# The speech encoder runs at most every LIVE_HOP s of audio: 0.2 s halves its cost against the library's
# 0.1 s (RTF 0.52 vs 1.09 on the shared 2-core machine, RESULTS.md, Live) for about 0.1 s more delay.
LIVE_HOP = 0.2
# The Live tab's stream reads int8 Whisper (0.12 s per block instead of 0.18 s beside a busy page, the same streamed
# LBE and real-speech AUC) and runs on one thread, encoder and decoder (two-threaded sessions beside a page that keeps
# the other core drawing made blocks up to 3x slower): docs/DECISIONS.md, "Mic-to-face in the Chromium measurement".
LIVE_ENCODER_PRECISION = "int8"
LIVE_STEPS = 4                 # the Live tab's step count unless the visitor picks another (DemoService.default_live_steps)
MAX_LIVE_SECONDS = 600         # one live session at most (then start again)
MAX_LIVE_SESSIONS = max(1, (os.cpu_count() or 2) // 2)   # at once (2 cores hold one in real time: experiments.live)
MAX_WAITING = 8                # clients in line for a session; more are told to come back later
STALE_SECONDS = 5.0            # a stream without uploads for this long gives its place up
TURN_SECONDS = 120.0           # a session's turn while others wait
MAX_UPLOAD_SECONDS = 10.0      # one upload (the page sends 0.1 s, more while its last upload was on its way)
MAX_UPLOAD_BYTES = int(MAX_UPLOAD_SECONDS * 384_000 * 2)   # 16-bit mono at the highest rate accepted
MAX_BACKLOG_SECONDS = 10.0     # audio waiting for the worker; more means the server cannot keep up at all
MAX_GAP_SECONDS = 10.0         # audio missing between two uploads that is filled with silence; more ends the stream
STOP_WAIT = 10.0               # Stop waits at most this long for the last frames
FIRST_CHUNK_WAIT = 30.0        # a session made at Record waits this long for the page's first chunk


def read_upload(data: bytes, rate) -> tuple[np.ndarray, int]:
    """An upload from the page: (float32 mono, sample rate); bounded and checked (module docstring)."""
    return read_pcm16(data, rate, MAX_UPLOAD_SECONDS)


@dataclass
class Block:
    """Frames [first, first + len(curves)) that the worker decoded."""
    first: int
    curves: np.ndarray
    head: np.ndarray | None = None      # [n, 3] radians, when the stream gives a head


class LiveSession:
    """One browser's live stream: audio chunks in (:meth:`add`, quick), frames out (:meth:`take`);
    a worker thread decodes what is waiting, as one block when several chunks piled up."""

    def __init__(self, talker, steps: int, identity: str | None = None, stale: float = STALE_SECONDS,
                 controls: Controls | None = None):
        self.talker, self.steps, self.identity = talker, steps, identity
        self.controls = controls or Controls()
        self.stream = None                   # made by the worker: the request never waits for it
        self.stale = stale
        self.rate: int | None = None
        self.resampler: StreamingResampler | None = None
        self.received = 0                    # samples of the recording at the microphone's rate, gaps included
        self.origin: int | None = None       # where in the page's recording this session began (samples)
        self.gaps = 0                        # samples that never came (filled with silence)
        self.heard = 0                       # 16 kHz samples received
        self.decoded = 0                     # ... of which the worker has decoded
        self.server_ms: list[float] = []     # chunk arrival -> its frames decoded, the latest last
        self.error: Exception | None = None
        self.last_chunk = time.monotonic()
        self._pending: list[np.ndarray] = []
        self._pending_arrival: float | None = None   # the newest pending chunk's arrival (perf_counter)
        self._blocks: list[Block] = []
        self._closing = False
        self._done = False
        self._cond = threading.Condition()
        self._worker = threading.Thread(target=self._run, name="live-session", daemon=True)
        self._worker.start()

    # -- the request side ----------------------------------------------------------------------------
    def add(self, rate: int, samples: np.ndarray, start: int | None = None) -> bool:
        """The next upload (float mono at ``rate``; ``start``: where its first sample lies in the page's
        recording, None: right after the last); returns at once (the worker decodes it). Audio before
        what was received already is not heard twice; audio missing before ``start`` is heard as
        silence and counted (:meth:`skipped`). False: the stream has ended (Stop's event ran beside
        this upload), the audio is not used."""
        if self.rate is None:
            self.rate, self.resampler = int(rate), StreamingResampler(rate)
        elif int(rate) != self.rate:
            raise AudioError(f"The microphone changed its sample rate ({self.rate} -> {int(rate)} Hz); "
                             "press Record again.")
        samples, gap = self._placed(samples, start)
        wave = self.resampler(np.concatenate([np.zeros(gap, np.float32), samples]) if gap else samples)
        with self._cond:
            if self.error is not None:
                raise self.error
            if self._done or self._closing:
                return False
            if self.heard + len(wave) > MAX_LIVE_SECONDS * SAMPLE_RATE:
                raise ValueError(f"A live session lasts at most {MAX_LIVE_SECONDS // 60} minutes; "
                                 "press Record again.")
            if sum(map(len, self._pending)) + len(wave) > MAX_BACKLOG_SECONDS * SAMPLE_RATE:
                raise ValueError("The server cannot keep up with the microphone right now (too many visitors "
                                 "or a busy machine); press Record again in a moment.")
            self.heard += len(wave)
            self.last_chunk = time.monotonic()
            self.received += gap + len(samples)
            self.gaps += gap
            if len(wave):
                self._pending.append(wave)
                self._pending_arrival = time.perf_counter()
                self._cond.notify()
            return True

    def _placed(self, samples: np.ndarray, start: int | None) -> tuple[np.ndarray, int]:
        """``samples`` less what was received already, and the samples missing before them."""
        if start is None:
            return samples, 0
        start = int(start)
        if self.origin is None:
            self.origin = self.received = start
        if start < self.received:
            return samples[self.received - start:], 0
        gap = start - self.received
        if gap > MAX_GAP_SECONDS * self.rate:
            raise AudioError(f"{gap / self.rate:.0f} s of the microphone's audio never reached the server; "
                             "press Record again.")
        return samples, gap

    def take(self) -> Block | None:
        """The frames decoded since the last call (one block), or None."""
        with self._cond:
            if self.error is not None and not self._blocks:
                raise self.error
            blocks, self._blocks = self._blocks, []
        if not blocks:
            return None
        heads = [b.head for b in blocks]
        head = None if any(h is None for h in heads) else np.concatenate(heads)
        return Block(blocks[0].first, np.concatenate([b.curves for b in blocks]), head)

    def ready(self) -> bool:
        """Whether :meth:`take` has something to say: frames, an error, or the stream's end."""
        with self._cond:
            return bool(self._blocks) or self.error is not None or self._done

    def stop(self, wait: float = STOP_WAIT) -> Block | None:
        """The stream ends: the worker decodes what is left and the last frames; returns what was not taken."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._worker.join(wait)
        return self.take()

    def skipped(self) -> float:
        """Seconds of audio that never reached the server (gaps between uploads, heard as silence)."""
        with self._cond:
            return self.gaps / self.rate if self.rate else 0.0

    @property
    def identity_text(self) -> str:
        name = self.stream.identity if self.stream is not None else self.identity
        if name is None:
            return "matching from the voice..."
        label = self.talker.identity_label(name)
        return label + ("" if self.identity else " (matched from the voice)")

    @property
    def frames_out(self) -> int:
        return self.stream.frames_out if self.stream is not None else 0

    def info(self) -> dict:
        """What the viewer's readout needs besides the frames."""
        ms = np.asarray(self.server_ms[-50:]) if self.server_ms else None
        return {"origin": (self.origin or 0) / self.rate if self.rate else 0.0,
                "heard": self.heard / SAMPLE_RATE, "decoded": self.decoded / SAMPLE_RATE,
                "skipped": round(self.skipped(), 2), "identity": self.identity_text,
                "serverMs": None if ms is None else round(float(np.percentile(ms, 50))),
                "cadence": self.cadence()}

    def cadence(self) -> dict | None:
        """When the worker decodes, in the page's samples (None until the first upload): at
        ``start + ceil(k * every) + after`` for k = 1, 2, ... (its hops, plus the input the resampler
        holds back). An upload that ends there is decoded at once; the page sends one at each
        (microphone.js), so the audio of a hop waits for no later upload."""
        if self.rate is None or self.origin is None:
            return None
        return {"start": self.origin, "every": LIVE_HOP * self.rate, "after": self.resampler.held_back}

    # -- the worker -----------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            from core.audio.encoders import variant_of
            from core.inference.streaming import Stream
            self.stream = Stream(self.talker, self.steps, seed=0, identity=self.identity, hop=LIVE_HOP, close_pauses=True,
                                 controls=self.controls, one_thread=True,
                                 encoder=variant_of(self.talker.encoder(), LIVE_ENCODER_PRECISION, threads=1))
            while True:
                with self._cond:
                    while not self._pending and not self._closing:
                        silent = self.stale if self.received else max(self.stale, FIRST_CHUNK_WAIT)
                        if time.monotonic() - self.last_chunk > silent:
                            self._closing = True         # a tab closed without Stop: end quietly
                            break
                        self._cond.wait(0.5)
                    backlog, self._pending = self._pending, []
                    arrival, closing = self._pending_arrival, self._closing
                if backlog:
                    audio = np.concatenate(backlog)
                    first = self.stream.frames_out
                    out = self.stream.feed(audio, catch_up=True)
                    self._publish(first, out.curves, arrival, len(audio), _head_of(out))
                    continue
                if closing:
                    first = self.stream.frames_out
                    tail = self.resampler(np.zeros(0, np.float32), final=True) if self.resampler else np.zeros(0)
                    outs = [self.stream.feed(tail, catch_up=True), self.stream.finish()]
                    heads = [_head_of(out) for out in outs]
                    self._publish(first, np.concatenate([out.curves for out in outs]), None, len(tail),
                                  None if any(h is None for h in heads) else np.concatenate(heads))
                    return
        except Exception as err:        # noqa: BLE001 - handed to the request side, which reports it
            with self._cond:
                self.error = err
        finally:
            with self._cond:
                self._done = True

    def _publish(self, first: int, curves: np.ndarray, arrival: float | None, samples: int,
                 head: np.ndarray | None = None) -> None:
        with self._cond:
            self.decoded += samples
            if len(curves):
                self._blocks.append(Block(first, curves, head))
                if arrival is not None:
                    self.server_ms = (self.server_ms + [(time.perf_counter() - arrival) * 1000])[-200:]

    @property
    def done(self) -> bool:
        return self._done


@dataclass
class Place:
    client: str
    since: float = field(default_factory=time.monotonic)    # in line since / streaming since
    last: float = field(default_factory=time.monotonic)     # the last chunk or start
    heard: bool = False                                     # a chunk came (until then the page may still be starting)


class LiveLine:
    """Who may stream: at most ``limit`` sessions at once, the others in line (first come, first
    served), one place per client; a stream silent for ``stale`` seconds leaves (``first_wait``
    before its first chunk: a busy page takes a while to start its recorder), and a session whose
    turn lasted ``turn`` seconds while others wait ends at its next chunk."""

    def __init__(self, limit: int = MAX_LIVE_SESSIONS, stale: float = STALE_SECONDS, turn: float = TURN_SECONDS,
                 max_waiting: int = MAX_WAITING, first_wait: float = FIRST_CHUNK_WAIT):
        self.limit, self.stale, self.turn, self.max_waiting = limit, stale, turn, max_waiting
        self.first_wait = max(stale, first_wait)
        self._active: dict[int, Place] = {}
        self._waiting: dict[int, Place] = {}       # in order of arrival
        self._tickets = itertools.count(1)
        self._lock = threading.Lock()

    def enter(self, client: str) -> int:
        """A new ticket for ``client``; a client's earlier ticket is withdrawn (one place each), and
        a client who streams or waits again goes to the back of the line."""
        with self._lock:
            self._sweep()
            for places in (self._active, self._waiting):
                for ticket in [t for t, p in places.items() if p.client == client]:
                    del places[ticket]
            if len(self._waiting) >= self.max_waiting:
                raise ValueError(f"The live head is in use and {len(self._waiting)} visitors are waiting already; "
                                 "try again in a few minutes.")
            ticket = next(self._tickets)
            self._waiting[ticket] = Place(client)
            self._promote()
            return ticket

    def position(self, ticket: int, chunk: bool = True) -> int:
        """0: this ticket may stream; n: n-th in line. Counts as a sign of life (``chunk``: audio
        came). ValueError: gone (it went silent, or its turn is over and others wait)."""
        with self._lock:
            self._sweep()
            self._promote()
            now = time.monotonic()
            if ticket in self._active:
                place = self._active[ticket]
                if self._waiting and now - place.since > self.turn:
                    del self._active[ticket]
                    self._promote()
                    raise ValueError(f"Your live turn is over ({self.turn / 60:.0f} minutes) and others are "
                                     "waiting; press Record to line up again.")
                place.last, place.heard = now, place.heard or chunk
                return 0
            if ticket in self._waiting:
                place = self._waiting[ticket]
                place.last, place.heard = now, place.heard or chunk
                return list(self._waiting).index(ticket) + 1
            raise ValueError("This live stream lost its place (no audio came for a while); press Record again.")

    def leave(self, ticket: int | None) -> None:
        with self._lock:
            self._active.pop(ticket, None)
            self._waiting.pop(ticket, None)
            self._promote()

    def holds(self, ticket: int) -> bool:
        """Whether ``ticket`` still has a place (streaming or in line)."""
        with self._lock:
            self._sweep()
            return ticket in self._active or ticket in self._waiting

    def turn_ends_in(self) -> float:
        """Seconds until the soonest active turn can end (for the waiting message)."""
        with self._lock:
            now = time.monotonic()
            return max(0.0, min((self.turn - (now - p.since) for p in self._active.values()), default=0.0))

    def _sweep(self) -> None:
        now = time.monotonic()
        for places in (self._active, self._waiting):
            for ticket in [t for t, p in places.items() if now - p.last > (self.stale if p.heard else self.first_wait)]:
                del places[ticket]

    def _promote(self) -> None:
        while self._waiting and len(self._active) < self.limit:
            ticket = next(iter(self._waiting))
            place = self._waiting.pop(ticket)
            place.since = place.last = time.monotonic()
            self._active[ticket] = place


def _head_of(frames) -> np.ndarray | None:
    """A stream's head angles [n, 3] (``StreamFrames.head``), or None from a stream without them."""
    return getattr(frames, "head", None)


def live_value(curves: np.ndarray, first: int, mesh_url: str | None, reset: bool = False, end: bool = False,
               info: dict | None = None, head: np.ndarray | None = None, upload: str | None = None,
               follow: str | None = None, message: str | None = None) -> dict:
    """The viewer's value for frames [first, first + n) of a live stream (appended to what it shows;
    ``reset`` starts a new stream, ``end`` says it ended: the face comes to rest). ``head``: the
    frames' head angles [n, 3] radians (None: still; sent as ``head``, as a take's cells are).
    ``info``: the readout's figures (:meth:`LiveSession.info`); ``upload``: where the page sends the
    microphone's audio and ``follow`` where it asks for the frames as they are decoded (both in the
    value that starts a stream); ``message``: a line for the readout
    (e.g. the visitor's place in line)."""
    value = {"live": True, "reset": bool(reset), "end": bool(end), "fps": float(FPS), "first": int(first),
             "frames": int(len(curves)), "mesh": mesh_url,
             "curves": viewer.encode_curves(curves) if len(curves) else "", "info": info or {}}
    if head is not None and len(curves):
        value["head"] = viewer.encode_head(head, len(curves))
    if upload:
        value["upload"] = upload
    if follow:
        value["follow"] = follow
    if message:
        value["message"] = message
    return value
