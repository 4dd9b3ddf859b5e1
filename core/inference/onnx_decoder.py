"""The talker decoder run by ONNX Runtime: the denoiser of one request, and its diffusion
steps pipelined across cores.

This is the CPU analogue of the paper's TensorRT path.  PyTorch's CPU GRU dispatches several
small operators per frame, so a 300-frame pass at batch 1 is dominated by overhead rather
than arithmetic.  ONNX Runtime's fused GRU kernel runs the whole recurrence in native code
(`python -m experiments.bench` measures both; see docs/RESULTS.md).  The graph itself is built
by :mod:`core.inference.onnx_graph`.
"""
from __future__ import annotations

import threading

import numpy as np
import torch

from core.arkit import NUM_BLENDSHAPES
from core.model.diffusion import X0Predictor, randn, sample
from core.inference.onnx_graph import decoder_graph, directions_of, reorder_gates, require_onnx
from core.model.network import DiffusionTalker

PIPELINE_CHUNK = 30                     # frames per chunk when steps run side by side (25-75 measured alike)
MAX_PREDRAWN_NOISE_BYTES = 64 * 2 ** 20  # ancestral sampling pre-draws its noise to pipeline; above this, step by step


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
        first = c.audio_proj_dim
        constant = slice(first, first + c.identity_feat_dim + c.step_dim)   # identity + step input columns
        dirs = directions_of(model)
        self.w_constant = torch.stack([getattr(gru, f"weight_ih_l0{d}").detach().float()[:, constant] for d in dirs])
        self.b_ih = torch.stack([getattr(gru, f"bias_ih_l0{d}").detach().float() for d in dirs])
        self.b_hh = torch.stack([reorder_gates(getattr(gru, f"bias_hh_l0{d}")) for d in dirs])

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
            return torch.from_numpy(out).transpose(0, 1).to(x_t.device, x_t.dtype)
        return x0

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond) -> torch.Tensor:
        return self.bind(cond)(x_t, t)

    # -- all steps at once ---------------------------------------------------------------------------
    def sample(self, cond: tuple[torch.Tensor, torch.Tensor], generators: list[torch.Generator], frames: int,
               method: str, *, rows_share_clip: bool) -> torch.Tensor:
        """The whole reverse process (as ``core.model.diffusion.sample``, same noise): x0 [K, F, 52].

        With a causal decoder, two or more steps, threads to spare and, as the caller says with
        ``rows_share_clip``, one clip and one identity for every row of the batch (K seeds of one
        request), the steps run side by side in chunks (see :class:`StepPipeline`); otherwise one
        step after another.
        """
        model = self.model
        k = len(generators)
        steps = model.config.steps
        workers = min(torch.get_num_threads(), steps)
        noise_bytes = (steps - 1) * k * frames * NUM_BLENDSHAPES * 4 if method == "ddpm" else 0
        audio, ident = cond
        if model.config.bidirectional or workers < 2 or noise_bytes > MAX_PREDRAWN_NOISE_BYTES or not rows_share_clip:
            return sample(model.schedule, self.bind(cond), (k, frames, NUM_BLENDSHAPES), method=method,
                          generator=generators)
        x_T = randn((k, frames, NUM_BLENDSHAPES), generators, "cpu", torch.float32)
        noise = [randn((k, frames, NUM_BLENDSHAPES), generators, "cpu", torch.float32).transpose(0, 1).numpy()
                 for _ in range(steps - 1)] if method == "ddpm" else None
        out = StepPipeline(self.stateful_session(), model.config.layers, model.config.hidden, workers).run(
            audio[0].float().cpu().numpy()[:, None], x_T.transpose(0, 1).numpy(), self.step_biases(ident[0]),
            self.coefficients(method), noise)
        return torch.from_numpy(out).transpose(0, 1)

    # -- pieces for running the steps chunk by chunk (StepPipeline, core.inference.streaming) --------------------
    def stateful_session(self):
        """The single-threaded chunk graph (``decoder_graph(stateful=True)``), built on first use."""
        if self._stateful is None:
            self._stateful = self._session(decoder_graph(self.model, stateful=True), threads=1)
        return self._stateful

    def step_biases(self, identity_feature: torch.Tensor) -> list[np.ndarray]:
        """The first layer's bias for each step T .. 1 with one identity's feature [I] folded in."""
        with torch.inference_mode():
            step_feats = self.model.step_features(torch.arange(self.model.config.steps, 0, -1)).float()
            return [self._bias0(self.w_constant @ torch.cat([identity_feature.float().cpu(), f])) for f in step_feats]

    def coefficients(self, method: str) -> list[np.ndarray]:
        """(c_x0, c_xt, c_noise) of every reverse step T .. 1, float32."""
        return [c.float().numpy() for c in self.model.schedule.update_coefficients(method)]


def run_chunk(session, audio: np.ndarray, x_t: np.ndarray, bias: np.ndarray,
              state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One diffusion step over a chunk of frames with the stateful graph: (x0, the GRU state after it)."""
    x0, *states = session.run(None, {"audio": audio, "x_t": x_t, "bias0": bias, **state})
    return x0, {f"h0_{i}": h for i, h in enumerate(states)}


def initial_state(layers: int, batch: int, hidden: int) -> dict[str, np.ndarray]:
    return {f"h0_{i}": np.zeros((1, batch, hidden), np.float32) for i in range(layers)}


def reverse_update(coefficients: list[np.ndarray], k: int, x0: np.ndarray, x_t: np.ndarray,
                   noise: np.ndarray | None) -> np.ndarray:
    """x for step k + 1 from step k's x0 prediction (``NoiseSchedule.update_coefficients``)."""
    c_x0, c_xt, c_noise = coefficients
    update = c_x0[k] * x0 + c_xt[k] * x_t
    if noise is not None:
        update += c_noise[k] * noise
    return update


class StepPipeline:
    """Diffusion steps side by side over chunks of frames, on ``workers`` threads.

    Why it is exact: the decoder is causal and each reverse update acts frame by frame, so step
    k+1 can process frames [a, b) as soon as step k has produced them; each step carries its GRU
    state from chunk to chunk (the stateful graph), which equals one pass over the sequence.
    Worker w runs steps w, w + W, ... in order, chunk by chunk, each chunk waiting only for
    the previous step's same chunk.  Every worker runs single-threaded ONNX Runtime, so W
    cores work at once instead of W threads splitting each small per-frame product.
    """

    def __init__(self, session, layers: int, hidden: int, workers: int, chunk: int | None = None):
        self.session, self.layers, self.hidden, self.workers = session, layers, hidden, workers
        self.chunk = chunk or PIPELINE_CHUNK

    def run(self, audio: np.ndarray, x_T: np.ndarray, biases: list[np.ndarray], coefficients: list[np.ndarray],
            noise: list[np.ndarray] | None) -> np.ndarray:
        """audio [F, 1, A] (shared by the batch), x_T [F, K, 52], one first-layer bias per step,
        update coefficients (c_x0, c_xt, c_noise) per step, noise per step but the last (or None).
        Returns x0 [F, K, 52]."""
        steps, frames = len(biases), len(x_T)
        audio = np.ascontiguousarray(np.broadcast_to(audio, (frames, x_T.shape[1], audio.shape[2])))
        inputs = [np.ascontiguousarray(x_T)] + [np.empty_like(x_T) for _ in range(steps - 1)]
        out = np.empty_like(x_T)
        bounds = [(a, min(a + self.chunk, frames)) for a in range(0, frames, self.chunk)]
        ready = [[threading.Event() for _ in bounds] for _ in range(steps)]
        failures: list[BaseException] = []

        def work(first_step: int) -> None:
            try:
                for k in range(first_step, steps, self.workers):
                    state = initial_state(self.layers, x_T.shape[1], self.hidden)
                    for c, (a, b) in enumerate(bounds):
                        if k > 0:
                            ready[k - 1][c].wait()
                            if failures:
                                return
                        x0, state = run_chunk(self.session, audio[a:b], inputs[k][a:b], biases[k], state)
                        if k == steps - 1:
                            out[a:b] = x0
                        else:
                            inputs[k + 1][a:b] = reverse_update(coefficients, k, x0, inputs[k][a:b],
                                                                None if noise is None else noise[k][a:b])
                        ready[k][c].set()
            except BaseException as err:  # wake every waiting worker, then re-raise in the caller
                failures.append(err)
                for events in ready:
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
