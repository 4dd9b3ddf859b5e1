"""The talker decoder (GRU layers + output head) as an ONNX graph.

Only the decoder and head go into the graph.  Conditioning (audio projection, identity and
step encoders) stays in torch and is computed once per request (once per step for the step
feature), so enrolling an identity never invalidates a graph.  The graph is built in memory
from the torch weights when a model is loaded (milliseconds); nothing extra is shipped.
``python -m core.inference.onnx_graph checkpoints/distilled-8 decoder.onnx`` writes it to a file.
:mod:`core.inference.onnx_decoder` runs it.

Layout: time-major, as the ONNX GRU wants it.  Inputs ``audio`` [F, B, audio_proj_dim],
``x_t`` [F, B, C] and ``bias0`` [directions, 6H] (the first GRU layer's bias with the identity
and step contributions folded in); output ``x0`` [F, B, C] (C: the model's channels, 52 or 55).  PyTorch orders the GRU gates
(r, z, n), ONNX (z, r, h); ``linear_before_reset=1`` is PyTorch's formulation.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from core.model.network import DiffusionTalker

OPSET = 17


class OnnxUnavailable(RuntimeError):
    """onnx or onnxruntime is missing; the caller falls back to the torch decoder."""


def require_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise OnnxUnavailable(f"the ONNX decoder needs the packages 'onnx' and 'onnxruntime' ({err})") from err
    return onnx, onnxruntime


def reorder_gates(weight: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """PyTorch (r, z, n) blocks along ``dim`` -> ONNX (z, r, h)."""
    r, z, n = weight.detach().float().cpu().chunk(3, dim)
    return torch.cat([z, r, n], dim)


def directions_of(model: DiffusionTalker) -> list[str]:
    return ["", "_reverse"] if model.config.bidirectional else [""]


def _gru_layer(model: DiffusionTalker, layer: int, previous: str, directions, stateful: bool):
    """(nodes, initializers, output name) of GRU layer ``layer`` reading ``previous``: the first
    layer's input weights keep only the audio and x_t columns (the rest is in ``bias0``)."""
    from onnx import helper, numpy_helper
    c, gru = model.config, model.decoder

    def stacked(name, transform=lambda w: w):
        return np.stack([reorder_gates(transform(getattr(gru, f"{name}_l{layer}{d}"))).numpy() for d in directions])
    inits = []
    if layer == 0:
        audio_cols = slice(0, c.audio_proj_dim)
        x_cols = slice(c.audio_proj_dim + c.identity_feat_dim + c.step_dim, None)
        w = stacked("weight_ih", lambda w: torch.cat([w[:, audio_cols], w[:, x_cols]], 1))
        bias = "bias0"
    else:
        w = stacked("weight_ih")
        bias = f"B{layer}"
        inits.append(numpy_helper.from_array(np.concatenate([stacked("bias_ih"), stacked("bias_hh")], 1), bias))
    inits += [numpy_helper.from_array(w, f"W{layer}"), numpy_helper.from_array(stacked("weight_hh"), f"R{layer}")]
    y, out = f"y{layer}", f"layer{layer + 1}_in"
    state_in, state_out = (["", f"h0_{layer}"], [f"h_{layer}"]) if stateful else ([], [])
    nodes = [helper.make_node("GRU", [previous, f"W{layer}", f"R{layer}", bias] + state_in, [y] + state_out,
                              hidden_size=c.hidden, linear_before_reset=1,
                              direction="bidirectional" if c.bidirectional else "forward")]
    if c.bidirectional:  # Y [F, 2, B, H] -> [F, B, 2H], forward features first as in PyTorch
        nodes += [helper.make_node("Transpose", [y], [y + "_t"], perm=[0, 2, 1, 3]),
                  helper.make_node("Reshape", [y + "_t", "dir_axes"], [out])]
    else:
        nodes.append(helper.make_node("Squeeze", [y, "dir_axes"], [out]))
    return nodes, inits, out


def decoder_graph(model: DiffusionTalker, stateful: bool = False) -> bytes:
    """Serialized ONNX model of ``model.decoder`` + ``model.head`` (float32).

    The first layer sees only the per-frame inputs (audio features and x_t); the identity and
    step parts of its input projection are constant over a sequence, so they arrive folded
    into that layer's bias (input ``bias0``), which cuts its input product by 40 %.
    ``stateful`` (unidirectional only) adds each layer's initial hidden state as input
    ``h0_<layer>`` [1, B, H] and its final state as output ``h_<layer>``, so that a sequence
    can run in consecutive chunks.
    """
    onnx, _ = require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    c = model.config
    if stateful and c.bidirectional:
        raise ValueError("a bidirectional decoder cannot run in chunks")
    directions = directions_of(model)
    nodes = [helper.make_node("Concat", ["audio", "x_t"], ["layer0_in"], axis=2)]
    inits = [numpy_helper.from_array(np.array([0, 0, -1] if c.bidirectional else [1], np.int64), "dir_axes")]
    previous = "layer0_in"
    for layer in range(c.layers):
        layer_nodes, layer_inits, previous = _gru_layer(model, layer, previous, directions, stateful)
        nodes += layer_nodes
        inits += layer_inits
    inits += [numpy_helper.from_array(model.head.weight.detach().float().cpu().T.contiguous().numpy(), "head_w"),
              numpy_helper.from_array(model.head.bias.detach().float().cpu().numpy(), "head_b")]
    nodes += [helper.make_node("MatMul", [previous, "head_w"], ["head_y"]),
              helper.make_node("Add", ["head_y", "head_b"], ["x0"])]
    floats = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "diffusiontalker_decoder",
        [helper.make_tensor_value_info("audio", floats, ["frames", "batch", c.audio_proj_dim]),
         helper.make_tensor_value_info("x_t", floats, ["frames", "batch", c.channels]),
         helper.make_tensor_value_info("bias0", floats, [len(directions), 6 * c.hidden])]
        + [helper.make_tensor_value_info(f"h0_{i}", floats, [1, "batch", c.hidden]) for i in range(c.layers) if stateful],
        [helper.make_tensor_value_info("x0", floats, ["frames", "batch", c.channels])]
        + [helper.make_tensor_value_info(f"h_{i}", floats, [1, "batch", c.hidden]) for i in range(c.layers) if stateful],
        inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="diffusiontalker")
    proto.ir_version = min(proto.ir_version, 10)  # readable by older runtimes too
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def main(argv=None):
    p = argparse.ArgumentParser(description="Write a checkpoint's decoder (GRU + head) as an ONNX file.")
    p.add_argument("checkpoint", help="a checkpoint folder (config.json + model.safetensors)")
    p.add_argument("out", help="output .onnx path")
    a = p.parse_args(argv)
    data = decoder_graph(DiffusionTalker.from_pretrained(a.checkpoint))
    Path(a.out).write_bytes(data)
    print(f"wrote {a.out} ({len(data) / 1e6:.1f} MB): inputs audio [F,B,A], x_t [F,B,52], bias0 [dirs,6H]")


if __name__ == "__main__":
    main()
