"""The output filter: the brows and eyelids lose the sampler's frame-level jitter, blinks, gaze and
lips pass untouched, the head is filtered as before, and a stream fed in chunks gets one call's output."""
import numpy as np
import pytest

from core.arkit import INDEX, LIP_INDICES, NUM_BLENDSHAPES
from core.evaluation.upper_face import CHANNEL_GROUPS, roughness
from core.head_pose import from_channels, to_channels
from core.inference.output_filter import HeadFilter
from core.inference.output_filter import UPPER_SMOOTHED, UPPER_SMOOTHING, OnePole, OutputFilter

FRAMES = 150


def _channels(head: bool = True) -> np.ndarray:
    """A brow raise (a 0.3 plateau), a blink, a gaze jump and lips, all with +-0.05 white jitter."""
    rng = np.random.default_rng(0)
    x = np.zeros((2, FRAMES, NUM_BLENDSHAPES + (3 if head else 0)), np.float32)
    x[:, 40:80, INDEX["browInnerUp"]] = 0.3
    x[:, 60:64, INDEX["eyeBlinkLeft"]] = 0.9
    x[:, 90:, INDEX["eyeLookOutLeft"]] = 0.4
    x[:, :, INDEX["jawOpen"]] = 0.3 + 0.2 * np.sin(np.arange(FRAMES) / 3.0)
    x[..., :NUM_BLENDSHAPES] += rng.normal(0, 0.05, x[..., :NUM_BLENDSHAPES].shape).astype(np.float32)
    if head:
        x[..., NUM_BLENDSHAPES:] = to_channels(np.radians(rng.normal(0, 2.0, (2, FRAMES, 3))))
    return np.clip(x, 0, 1)


def test_one_pole_matches_its_recursion_and_starts_without_lag():
    x = np.array([[1.0], [3.0], [3.0], [0.0]])
    y = OnePole(0.5)(x)
    np.testing.assert_allclose(y[:, 0], [1.0, 2.0, 2.5, 1.25])
    with pytest.raises(ValueError):
        OnePole(0.0)


def test_brows_and_eyelids_lose_jitter_and_the_rest_passes():
    x = _channels()
    curves, head = OutputFilter()(x)
    brows = CHANNEL_GROUPS["brows"]
    assert roughness(curves, brows) < 0.5 * roughness(x[..., :NUM_BLENDSHAPES], brows)
    assert curves[:, 55:80, INDEX["browInnerUp"]].mean() == pytest.approx(0.3, abs=0.03)   # the raise stays
    untouched = [i for i in range(NUM_BLENDSHAPES) if i not in UPPER_SMOOTHED]
    assert INDEX["eyeBlinkLeft"] in untouched and INDEX["eyeLookOutLeft"] in untouched
    assert set(LIP_INDICES).isdisjoint(UPPER_SMOOTHED)
    np.testing.assert_array_equal(curves[..., untouched], x[..., untouched])
    np.testing.assert_allclose(head, HeadFilter()(from_channels(x[..., NUM_BLENDSHAPES:])), atol=1e-6)
    assert 0 < UPPER_SMOOTHING < 1


def test_chunks_give_what_one_call_gives():
    x = _channels()
    whole = OutputFilter()(x)
    chunked = OutputFilter()
    parts = [chunked(x[:, a:b]) for a, b in ((0, 7), (7, 50), (50, 51), (51, 51), (51, FRAMES))]
    for k in range(2):
        np.testing.assert_allclose(np.concatenate([p[k] for p in parts], 1), whole[k], atol=1e-6)


def test_a_model_without_head_channels_gets_a_still_head():
    curves, head = OutputFilter()(_channels(head=False))
    assert curves.shape == (2, FRAMES, NUM_BLENDSHAPES) and head.shape == (2, FRAMES, 3) and not head.any()
