"""The talker decoder (GRU layers + output head) as an ONNX graph run by ONNX Runtime.

This is the CPU analogue of the paper's TensorRT path.  PyTorch's CPU GRU dispatches several
small operators per frame, so a 300-frame pass at batch 1 is dominated by overhead rather
than arithmetic.  ONNX Runtime's fused GRU kernel runs the whole recurrence in native code
(`python -m core.bench` measures both; see docs/RESULTS.md).

Only the decoder and head go into the graph.  Conditioning (audio projection, identity and
step encoders) stays in torch and is computed once per request (once per step for the step
feature), so enrolling an identity never invalidates a graph.  The graph is built in memory
from the torch weights when a model is loaded (milliseconds); nothing extra is shipped.
``python -m core.onnx_decoder checkpoints/distilled-8 decoder.onnx`` writes it to a file.

Layout: time-major, as the ONNX GRU wants it.  Inputs ``context`` [F, B, audio+identity],
``step`` [B, step_dim], ``x_t`` [F, B, 52]; output ``x0`` [F, B, 52].  PyTorch orders the GRU
gates (r, z, n), ONNX (z, r, h); ``linear_before_reset=1`` is PyTorch's formulation.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from core.arkit import NUM_BLENDSHAPES
from core.diffusion import X0Predictor
from core.model import DiffusionTalker

OPSET = 17


class OnnxUnavailable(RuntimeError):
    """onnx or onnxruntime is missing; the caller falls back to the torch decoder."""


def _onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise OnnxUnavailable(f"the ONNX decoder needs the packages 'onnx' and 'onnxruntime' ({err})") from err
    return onnx, onnxruntime


def _reorder_gates(weight: torch.Tensor) -> np.ndarray:
    """PyTorch (r, z, n) blocks along dim 0 -> ONNX (z, r, h)."""
    r, z, n = weight.detach().float().cpu().chunk(3, 0)
    return torch.cat([z, r, n], 0).numpy()


def decoder_graph(model: DiffusionTalker) -> bytes:
    """Serialized ONNX model of ``model.decoder`` + ``model.head`` (float32)."""
    onnx, _ = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    c, gru = model.config, model.decoder
    directions = ["", "_reverse"] if c.bidirectional else [""]
    context_dim = c.audio_proj_dim + c.identity_feat_dim
    nodes = [
        # step [B, S] -> [F, B, S]: expand to x_t's first two dimensions.
        helper.make_node("Shape", ["x_t"], ["x_shape"], end=2),
        helper.make_node("Concat", ["x_shape", "step_dim"], ["step_shape"], axis=0),
        helper.make_node("Unsqueeze", ["step", "axis0"], ["step_1bs"]),
        helper.make_node("Expand", ["step_1bs", "step_shape"], ["step_fbs"]),
        helper.make_node("Concat", ["context", "step_fbs", "x_t"], ["layer0_in"], axis=2),
    ]
    inits = [numpy_helper.from_array(np.array([c.step_dim], np.int64), "step_dim"),
             numpy_helper.from_array(np.array([0], np.int64), "axis0"),
             numpy_helper.from_array(np.array([1], np.int64), "axis1"),
             numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge_dirs")]
    previous = "layer0_in"
    for layer in range(c.layers):
        w = np.stack([_reorder_gates(getattr(gru, f"weight_ih_l{layer}{d}")) for d in directions])
        r = np.stack([_reorder_gates(getattr(gru, f"weight_hh_l{layer}{d}")) for d in directions])
        b = np.stack([np.concatenate([_reorder_gates(getattr(gru, f"bias_ih_l{layer}{d}")),
                                      _reorder_gates(getattr(gru, f"bias_hh_l{layer}{d}"))]) for d in directions])
        inits += [numpy_helper.from_array(w, f"W{layer}"), numpy_helper.from_array(r, f"R{layer}"),
                  numpy_helper.from_array(b, f"B{layer}")]
        y, out = f"y{layer}", f"layer{layer + 1}_in"
        nodes.append(helper.make_node("GRU", [previous, f"W{layer}", f"R{layer}", f"B{layer}"], [y],
                                      hidden_size=c.hidden, linear_before_reset=1,
                                      direction="bidirectional" if c.bidirectional else "forward"))
        if c.bidirectional:  # Y [F, 2, B, H] -> [F, B, 2H], forward features first as in PyTorch
            nodes += [helper.make_node("Transpose", [y], [y + "_t"], perm=[0, 2, 1, 3]),
                      helper.make_node("Reshape", [y + "_t", "merge_dirs"], [out])]
        else:
            nodes.append(helper.make_node("Squeeze", [y, "axis1"], [out]))
        previous = out
    inits += [numpy_helper.from_array(model.head.weight.detach().float().cpu().T.contiguous().numpy(), "head_w"),
              numpy_helper.from_array(model.head.bias.detach().float().cpu().numpy(), "head_b")]
    nodes += [helper.make_node("MatMul", [previous, "head_w"], ["head_y"]),
              helper.make_node("Add", ["head_y", "head_b"], ["x0"])]
    floats = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "diffusiontalker_decoder",
        [helper.make_tensor_value_info("context", floats, ["frames", "batch", context_dim]),
         helper.make_tensor_value_info("step", floats, ["batch", c.step_dim]),
         helper.make_tensor_value_info("x_t", floats, ["frames", "batch", NUM_BLENDSHAPES])],
        [helper.make_tensor_value_info("x0", floats, ["frames", "batch", NUM_BLENDSHAPES])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="diffusiontalker")
    proto.ir_version = min(proto.ir_version, 10)  # readable by older runtimes too
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


class OnnxDecoder:
    """``model.denoise`` with the decoder run by ONNX Runtime (CPU).

    ``bind(cond)`` returns the x0 predictor for one request; the conditioning is laid out
    once, and each step then costs one session run plus the step encoder.
    """

    def __init__(self, model: DiffusionTalker, threads: int | None = None):
        _, ort = _onnx()
        self.model = model
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Idle workers sleep instead of spinning: a spinning pool slowed the speech encoder of the
        # next request (0.061 -> 0.088 s), and the decoder itself measured no slower without it.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(decoder_graph(model), options, providers=["CPUExecutionProvider"])

    def bind(self, cond: tuple[torch.Tensor, torch.Tensor]) -> X0Predictor:
        audio, ident = cond
        frames = audio.shape[1]
        context = torch.cat([audio, ident[:, None].expand(-1, frames, -1)], -1)
        context = context.transpose(0, 1).float().cpu().contiguous().numpy()

        def x0(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            step = self.model.step_features(t).float().cpu().numpy()
            x_tm = x_t.transpose(0, 1).float().cpu().contiguous().numpy()
            (out,) = self.session.run(None, {"context": context, "step": step, "x_t": x_tm})
            return torch.from_numpy(out).transpose(0, 1).to(x_t.device, x_t.dtype)
        return x0

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond) -> torch.Tensor:
        return self.bind(cond)(x_t, t)


def main(argv=None):
    p = argparse.ArgumentParser(description="Write a checkpoint's decoder (GRU + head) as an ONNX file.")
    p.add_argument("checkpoint", help="a checkpoint folder (config.json + model.safetensors)")
    p.add_argument("out", help="output .onnx path")
    a = p.parse_args(argv)
    data = decoder_graph(DiffusionTalker.from_pretrained(a.checkpoint))
    Path(a.out).write_bytes(data)
    print(f"wrote {a.out} ({len(data) / 1e6:.1f} MB): inputs context [F,B,D], step [B,S], x_t [F,B,52]")


if __name__ == "__main__":
    main()
