"""The talker decoder run by ONNX Runtime: the denoiser of one request, and its diffusion
steps pipelined across cores.

This is the CPU analogue of the paper's TensorRT path.  PyTorch's CPU GRU dispatches several
small operators per frame, so a 300-frame pass at batch 1 is dominated by overhead rather
than arithmetic.  ONNX Runtime's fused GRU kernel runs the whole recurrence in native code
(`python -m experiments.bench` measures both; see docs/RESULTS.md).  The graph itself is built
by :mod:`core.inference.onnx_graph`.
"""
from __future__ import annotations

import copy
import threading

import numpy as np
import torch

from core.model.diffusion import X0Predictor, noise_temperature, reverse, sample, seeds_noise
from core.inference.onnx_graph import decoder_graph, directions_of, reorder_gates, require_onnx
from core.model.network import DiffusionTalker

PIPELINE_CHUNK = 30                     # frames per chunk when steps run side by side (25-75 measured alike)


class OnnxDecoder:
    """``model.denoise`` with the decoder run by ONNX Runtime (CPU).

    ``bind(cond)`` returns the x0 predictor for one request: the audio features are laid out
    once; each step computes the first layer's bias from the identity and step features and
    runs the session once (once per distinct identity when a batch mixes identities).
    """
    name = "onnx"

    def __init__(self, model: DiffusionTalker, threads: int | None = None):
        _, ort = require_onnx()
        self.model = model
        c, gru = model.config, model.decoder
        self.session = self._session(decoder_graph(model), threads or torch.get_num_threads())
        self._stateful = None    # single-threaded chunk graph for StepPipeline, built on first use
        self._single = None      # this decoder on one thread (with_one_thread), built on first use
        first = c.audio_proj_dim
        constant = slice(first, first + c.identity_feat_dim + c.step_dim)   # identity + step input columns
        dirs = directions_of(model)
        self.w_constant = torch.stack([getattr(gru, f"weight_ih_l0{d}").detach().float()[:, constant] for d in dirs])
        self.b_ih = torch.stack([getattr(gru, f"bias_ih_l0{d}").detach().float() for d in dirs])
        self.b_hh = torch.stack([reorder_gates(getattr(gru, f"bias_hh_l0{d}")) for d in dirs])

    def with_one_thread(self) -> "OnnxDecoder":
        """This decoder on a single-threaded session of its own (built once). A live stream runs on
        it: beside a page that keeps the other core busy drawing, a two-threaded session's halves
        wait for each other, and blocks took up to 3x as long (docs/DECISIONS.md, Live)."""
        if self._single is None:
            single = copy.copy(self)
            single.session = self._session(decoder_graph(self.model), 1)
            single.stateful_session = self.stateful_session      # single-threaded already: one, shared
            self._single = single._single = single
        return self._single

    @staticmethod
    def _session(graph: bytes, threads: int):
        _, ort = require_onnx()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Idle workers sleep instead of spinning: a spinning pool slowed the speech encoder of the
        # next request (0.061 -> 0.088 s), and the decoder itself measured no slower without it.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def _bias0(self, constant_gates: torch.Tensor) -> np.ndarray:
        """ONNX GRU bias [dirs, 6H] with identity + step gates [dirs, 3H] folded into the input bias."""
        return torch.cat([reorder_gates(self.b_ih + constant_gates, 1), self.b_hh], 1).numpy()

    def bind(self, cond: tuple[torch.Tensor, torch.Tensor]) -> X0Predictor:
        audio, ident = cond
        audio_tm = audio.transpose(0, 1).float().cpu().contiguous().numpy()     # [F, B, A]
        ident = ident.float().cpu()

        def x0(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            constant = torch.cat([ident, self.model.step_features(t).float().cpu()], 1)   # [B, I + S]
            groups, which = torch.unique(constant, dim=0, return_inverse=True)
            x_tm = x_t.transpose(0, 1).float().cpu().contiguous().numpy()
            if len(groups) == 1:
                (out,) = self.session.run(None, {"audio": audio_tm, "x_t": x_tm,
                                                 "bias0": self._bias0(self.w_constant @ groups[0])})
            else:
                out = np.empty_like(x_tm)
                for g, values in enumerate(groups):
                    rows = (which == g).nonzero()[:, 0].numpy()
                    (out[:, rows],) = self.session.run(None, {"audio": audio_tm[:, rows], "x_t": x_tm[:, rows],
                                                              "bias0": self._bias0(self.w_constant @ values)})
            out = torch.from_numpy(out).transpose(0, 1).to(x_t.device, x_t.dtype)
            return self.model.schedule.x0_from_output(out, x_t, t, self.model.config.prediction)
        return x0

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond) -> torch.Tensor:
        return self.bind(cond)(x_t, t)

    # -- all steps at once ---------------------------------------------------------------------------
    def sample(self, cond: tuple[torch.Tensor, torch.Tensor], seeds: list[int], frames: int,
               method: str, *, rows_share_clip: bool) -> torch.Tensor:
        """The whole reverse process (:func:`core.model.diffusion.reverse`, the same noise as every
        decoder): x0 [K, F, 52], one row per seed.

        With a causal decoder, two or more steps, threads to spare and, as the caller says with
        ``rows_share_clip``, one clip and one identity for every row of the batch (K seeds of one
        request), the steps run side by side in chunks (see :class:`StepPipeline`); otherwise one
        step after another.
        """
        model = self.model
        steps = model.config.steps
        workers = min(torch.get_num_threads(), steps)
        temperature = noise_temperature(model.config)
        if model.config.bidirectional or workers < 2 or not rows_share_clip:
            return sample(model.schedule, self.bind(cond), seeds, frames, method=method, channels=model.config.channels,
                          temperature=temperature)
        audio, ident = cond

        def noise(draw: int, first: int, stop: int) -> np.ndarray:            # time-major [n, K, 52]
            return np.ascontiguousarray(seeds_noise(seeds, draw, first, stop, model.config.channels, temperature).transpose(1, 0, 2))

        out = StepPipeline(self.stateful_session(), model.config.layers, model.config.hidden, workers).run(
            audio[0].float().cpu().numpy()[:, None], frames, self.step_biases(ident[0]),
            model.schedule.reverse_coefficients(method), noise, ancestral=method == "ddpm",
            output=self.output_coefficients())
        return torch.from_numpy(out).transpose(0, 1)

    # -- pieces for running the steps chunk by chunk (StepPipeline, core.inference.streaming) --------------------
    def stateful_session(self):
        """The single-threaded chunk graph (``decoder_graph(stateful=True)``), built on first use."""
        if self._stateful is None:
            self._stateful = self._session(decoder_graph(self.model, stateful=True), threads=1)
        return self._stateful

    def output_coefficients(self) -> tuple[list[float], list[float]] | None:
        """(c_skip, c_out) by step index, float32 values as plain numbers, that turn the graph's
        output into x0 (:meth:`NoiseSchedule.x0_from_output`); None when the output is x0."""
        if self.model.config.prediction == "x0":
            return None
        return tuple([float(v) for v in c.float()]
                     for c in self.model.schedule.output_coefficients(self.model.config.prediction))

    def step_biases(self, identity_feature: torch.Tensor) -> list[np.ndarray]:
        """The first layer's bias for each step T .. 1 with one identity's feature [I] folded in."""
        with torch.inference_mode():
            step_feats = self.model.step_features(torch.arange(self.model.config.steps, 0, -1)).float()
            return [self._bias0(self.w_constant @ torch.cat([identity_feature.float().cpu(), f])) for f in step_feats]


class CarriedSteps:
    """Every diffusion step's decoder over consecutive chunks of one sequence (the stateful graph):
    :meth:`predictor` gives a chunk's x0 predictor for :func:`core.model.diffusion.reverse`, which
    starts each step from that step's GRU state after the chunk before. The decoder is causal, so
    chunk by chunk equals one pass over the whole sequence."""

    def __init__(self, session, layers: int, batch: int, hidden: int, biases: list[np.ndarray] | None = None,
                 output: tuple[list[float], list[float]] | None = None):
        self.session = session
        self.biases = biases or []          # the first layer's bias per step T .. 1 (one identity's)
        self.output = output                # (c_skip, c_out) by step (OnnxDecoder.output_coefficients)
        self.initial = {f"h0_{i}": np.zeros((1, batch, hidden), np.float32) for i in range(layers)}
        self.states: dict[int, dict] = {}   # step index k (step t = T - k) -> its state after the last chunk

    def predictor(self, audio: np.ndarray):
        """x0_fn(x_t [n, B, 52], t) over the chunk whose projected audio is ``audio`` [n, B, A]."""
        steps = len(self.biases)

        def x0(x_t: np.ndarray, t: int) -> np.ndarray:
            k = steps - t
            out, *states = self.session.run(None, {"audio": audio, "x_t": x_t, "bias0": self.biases[k],
                                                   **self.states.get(k, self.initial)})
            self.states[k] = {f"h0_{i}": h for i, h in enumerate(states)}
            if self.output is None:
                return out
            c_skip, c_out = self.output
            return c_skip[t] * x_t + c_out[t] * out
        return x0


class StepPipeline:
    """Diffusion steps side by side over chunks of frames, on ``workers`` threads: a scheduler
    of chunks over the one reverse process (:func:`core.model.diffusion.reverse`).

    Why it is exact: the decoder is causal and each reverse update acts frame by frame, so each
    chunk runs the whole reverse process on its own, every step carrying its GRU state from the
    previous chunk (:class:`CarriedSteps`), which equals one pass over the sequence. Worker w
    takes chunks w, w + W, ... in order; step k of a chunk waits only for step k of the chunk
    before, so W chunks are in flight at once, each a step behind the one before. Every worker
    runs single-threaded ONNX Runtime, so W cores work at once instead of W threads splitting
    each small per-frame product.
    """

    def __init__(self, session, layers: int, hidden: int, workers: int, chunk: int | None = None):
        self.session, self.layers, self.hidden, self.workers = session, layers, hidden, workers
        self.chunk = chunk or PIPELINE_CHUNK

    def run(self, audio: np.ndarray, frames: int, biases: list[np.ndarray], coefficients, noise,
            ancestral: bool, output: tuple[list[float], list[float]] | None = None) -> np.ndarray:
        """audio [F, 1, A] (shared by the batch), one first-layer bias per step, the reverse
        coefficients, ``noise(draw, first, stop)`` -> [stop - first, K, 52] (draw 0 is x_T; draws
        1 .. T-1 are used when ``ancestral``), the graph output's coefficients (``output``, see
        :class:`CarriedSteps`). Returns x0 [F, K, 52]."""
        steps = len(biases)
        bounds = [(a, min(a + self.chunk, frames)) for a in range(0, frames, self.chunk)]
        x_first = noise(0, *bounds[0])
        audio = np.ascontiguousarray(np.broadcast_to(audio, (frames, x_first.shape[1], audio.shape[2])))
        carried = CarriedSteps(self.session, self.layers, x_first.shape[1], self.hidden, biases, output)
        done = [[threading.Event() for _ in range(steps)] for _ in bounds]
        out = np.empty((frames, *x_first.shape[1:]), np.float32)
        failures: list[BaseException] = []

        def chunk(c: int) -> None:
            a, b = bounds[c]
            predict = carried.predictor(audio[a:b])

            def x0(x_t: np.ndarray, t: int) -> np.ndarray:
                k = steps - t
                if c > 0:
                    done[c - 1][k].wait()
                    if failures:
                        raise failures[0]
                result = predict(x_t, t)
                done[c][k].set()
                return result

            out[a:b] = reverse(x0, x_first if c == 0 else noise(0, a, b), coefficients,
                               (lambda draw: noise(draw, a, b)) if ancestral else None)

        def work(first_chunk: int) -> None:
            try:
                for c in range(first_chunk, len(bounds), self.workers):
                    chunk(c)
            except BaseException as err:  # wake every waiting worker, then re-raise in the caller
                failures.append(err)
                for events in done:
                    for event in events:
                        event.set()

        helpers = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(1, self.workers)]
        for thread in helpers:
            thread.start()
        work(0)
        for thread in helpers:
            thread.join()
        if failures:
            raise failures[0]
        return out
