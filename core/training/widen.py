"""Start a bidirectional talker from a causal one's weights, computing exactly what it computed.

Why: a causal decoder sees the noisy curves x_t only up to the frame it denoises. A blink is a
few frames of eyelid closing and opening; at the frame where it starts, the evidence that follows
in x_t is out of sight, so every step pulls the start back towards the mean and the blink never
forms (docs/DECISIONS.md "The seed must matter"). A bidirectional GRU sees both sides.

Training such a decoder from scratch costs the whole schedule again. Instead the forward
direction keeps the causal weights, the new backward direction starts from its random weights,
and every weight that reads the backward features (the second layer's input, the head) starts
at zero, so the widened network's output equals the causal one's until training moves them.
"""
from __future__ import annotations

from core.model.network import DiffusionTalker


def widen_to_bidirectional(causal: DiffusionTalker, wide: DiffusionTalker) -> None:
    """Load ``causal``'s weights into the bidirectional ``wide`` (same sizes otherwise), in place."""
    if causal.config.bidirectional or not wide.config.bidirectional:
        raise ValueError("widening goes from a causal model to a bidirectional one")
    source = causal.state_dict()
    target = wide.state_dict()                          # views of wide's parameters: copies land in them
    hidden = wide.config.hidden
    for name, value in target.items():
        if name.endswith("_reverse"):
            continue                                    # the new direction: its own initialisation
        old = source[name]
        if old.shape == value.shape:
            value.copy_(old)
        elif (name == "head.weight" or name.startswith("decoder.weight_ih_l")) and value.shape[1] == 2 * hidden:
            value.zero_()                               # the backward half of the input reads nothing yet
            value[:, :hidden].copy_(old)
        else:
            raise ValueError(f"cannot widen {name}: {tuple(old.shape)} -> {tuple(value.shape)}")


def widen_to_performance(old: DiffusionTalker, new: DiffusionTalker) -> None:
    """Load ``old``'s weights into ``new``, which also makes the head's channels and/or reads an
    emotion (core/head_pose.py, core/emotion.py), in place; same as ``old`` otherwise.

    The new channels' input columns (the end of the decoder's input, where x_t sits) and output
    rows start at zero, and the emotion's projection starts at zero (the network's own init), so
    the 52 curves come out as ``old`` made them until training moves the new weights."""
    if (new.config.channels, len(new.config.emotions)) < (old.config.channels, len(old.config.emotions)):
        raise ValueError("widening adds channels or emotions; it never removes them")
    source = old.state_dict()
    for name, value in new.state_dict().items():
        if name not in source:
            continue                                    # a new part (the emotion's): its own init
        was = source[name]
        if was.shape == value.shape:
            value.copy_(was)
        elif name.startswith("decoder.weight_ih_l0") and value.shape[0] == was.shape[0]:
            value.zero_()                               # the new channels of x_t are read by nothing yet
            value[:, :was.shape[1]].copy_(was)
        elif name.startswith("head.") and value.shape[1:] == was.shape[1:]:
            value.zero_()
            value[:was.shape[0]].copy_(was)
        else:
            raise ValueError(f"cannot widen {name}: {tuple(was.shape)} -> {tuple(value.shape)}")
