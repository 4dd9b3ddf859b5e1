"""Widening a causal talker into a bidirectional one (core/training/widen.py)."""
from dataclasses import replace

import pytest
import torch

from core.model.network import DiffusionTalker
from core.training.widen import widen_to_bidirectional
from tests.helpers import tiny_model


def _pair():
    causal = tiny_model(steps=8, audio_lookahead=2, layers=2)
    wide = DiffusionTalker(replace(causal.config, bidirectional=True))
    widen_to_bidirectional(causal, wide)
    return causal, wide


def test_a_widened_model_computes_what_the_causal_one_did():
    causal, wide = _pair()
    audio, ids = torch.randn(3, 40, causal.config.audio_dim), torch.tensor([0, 1, 2])
    x_t, t = torch.randn(3, 40, 52), torch.tensor([1, 4, 8])
    with torch.no_grad():
        expected = causal.denoise(x_t, t, causal.condition(audio, ids))
        got = wide.denoise(x_t, t, wide.condition(audio, ids))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_the_backward_direction_learns_and_then_sees_later_frames():
    causal, wide = _pair()
    audio, ids = torch.randn(2, 30, causal.config.audio_dim), torch.tensor([0, 1])
    x_t, t = torch.randn(2, 30, 52), torch.tensor([3, 5])
    out = wide.denoise(x_t, t, wide.condition(audio, ids))
    out.square().mean().backward()
    assert wide.head.weight.grad[:, wide.config.hidden:].abs().sum() > 0     # the zeroed half gets a gradient
    with torch.no_grad():
        wide.head.weight[:, wide.config.hidden:].normal_(0, 0.1)
        later = x_t.clone()
        later[:, 20:] += 1.0                                                  # change only frames 20..29
        a = wide.denoise(x_t, t, wide.condition(audio, ids))
        b = wide.denoise(later, t, wide.condition(audio, ids))
    assert (a[:, :20] - b[:, :20]).abs().max() > 1e-4                         # earlier frames now see them


def test_widening_refuses_what_it_cannot_do():
    causal, wide = _pair()
    with pytest.raises(ValueError, match="causal model to a bidirectional"):
        widen_to_bidirectional(wide, wide)
    other = DiffusionTalker(replace(causal.config, bidirectional=True, hidden=causal.config.hidden * 2))
    with pytest.raises(ValueError, match="cannot widen"):
        widen_to_bidirectional(causal, other)
