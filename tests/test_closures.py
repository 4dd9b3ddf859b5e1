"""The lips' closures win over the emotion (core/inference/closures.py): the gate finds the plain
face's brief closures, the emotional face's lower half takes the plain face's there, and Generate
and Live apply it the same way."""
import numpy as np
import pytest
import torch

from core.arkit import INDEX
from core.inference import closures
from core.inference.controls import LOWER, UPPER, Controls
from core.inference.streaming import Stream
from core.inference.talker import Talker
from core.rates import FPS, SAMPLE_RATE
from tests.helpers import ToyEncoder, toy_clip


def _plain(aperture):
    face = np.zeros((len(aperture), 52), np.float32)
    face[:, INDEX["jawOpen"]] = np.maximum(aperture, 0)
    face[:, INDEX["mouthClose"]] = np.maximum(-np.asarray(aperture), 0)
    return face


def test_the_gate_marks_brief_closures_and_not_a_mouth_at_rest():
    aperture = np.full(60, 0.4)
    aperture[10:13] = 0.05                                   # a p: three frames shut
    aperture[30:50] = 0.0                                    # a pause: 0.67 s shut
    gate = closures.closure_gate(_plain(aperture))
    np.testing.assert_array_equal(gate[10:13], 1.0)
    assert gate[9] == gate[13] == 0.5                        # half a frame either side
    assert not gate[30:50].any() and not gate[:9].any() and not gate[14:30].any()
    longest = int(closures.LONGEST * FPS)                    # the longest run that still counts
    aperture = np.full(40, 0.4)
    aperture[5:5 + longest] = 0.0
    assert closures.closure_gate(_plain(aperture))[5:5 + longest].min() == 1.0
    aperture[5:6 + longest] = 0.0
    assert not closures.closure_gate(_plain(aperture)).any()


def test_give_way_moves_the_lower_face_alone():
    rng = np.random.default_rng(0)
    aperture = np.full(40, 0.4)
    aperture[20:22] = 0.0
    plain = _plain(aperture)
    plain[:, list(UPPER)] = rng.uniform(0, 1, (40, len(UPPER)))
    emotional = rng.uniform(0, 1, (2, 40, 55)).astype(np.float32)     # two samples, with the head's channels
    out = closures.give_way(emotional, np.stack([np.c_[plain, np.zeros((40, 3))]] * 2))
    lower = list(LOWER)
    np.testing.assert_allclose(out[:, 20:22][..., lower], np.stack([plain[20:22][:, lower]] * 2))
    np.testing.assert_allclose(out[:, 19][..., lower], 0.5 * (emotional[:, 19][..., lower] + plain[19][lower]), rtol=1e-6)
    np.testing.assert_array_equal(out[:, :19], emotional[:, :19])
    np.testing.assert_array_equal(out[..., list(UPPER)], emotional[..., list(UPPER)])
    np.testing.assert_array_equal(out[..., 52:], emotional[..., 52:])


def test_only_an_emotion_on_a_bidirectional_model_gets_the_rule():
    config = type("Config", (), {"bidirectional": True})()
    assert closures.applies(Controls("surprised", 0.5), config)
    assert not closures.applies(Controls(), config) and not closures.applies(Controls("happy", 0.0), config)
    config.bidirectional = False
    assert not closures.applies(Controls("surprised", 0.5), config)


@pytest.fixture()
def emotional_bidirectional(tmp_path):
    from core.emotion import AXES
    from tests.helpers import tiny_model
    model = tiny_model(steps=4, head_channels=3, emotions=list(AXES), bidirectional=True)
    model.config.sampler = "ddim"
    with torch.no_grad():
        model.emotion_projection.weight.normal_(0, 2.0)
    model.save_pretrained(tmp_path / "bi")
    return Talker.from_pretrained(tmp_path / "bi", encoder=ToyEncoder())


def test_generate_and_live_give_way_where_the_plain_face_closes(emotional_bidirectional, monkeypatch):
    talker, audio = emotional_bidirectional, toy_clip(1, 5, seconds=2.0).audio
    plain = talker.generate(audio, steps=4, seed=7, identity="id1").blendshapes[0]
    aperture = plain[:, INDEX["jawOpen"]] - plain[:, INDEX["mouthClose"]]
    monkeypatch.setattr(closures, "SHUT", float(np.quantile(aperture, 0.4)))    # the toy's own "closures"
    monkeypatch.setattr(closures, "LONGEST", 0.2)
    gate = closures.closure_gate(plain)
    assert (gate == 1).sum() >= 3 and (gate == 0).sum() >= 10
    controls = Controls("surprised", 1.0)
    happy = talker.generate(audio, steps=4, seed=7, identity="id1", controls=controls).blendshapes[0]
    lower = list(LOWER)
    np.testing.assert_allclose(happy[gate == 1][:, lower], plain[gate == 1][:, lower], atol=1e-6)
    assert np.abs(happy[gate == 0][:, lower] - plain[gate == 0][:, lower]).max() > 1e-3   # the emotion elsewhere
    live = Stream(talker, 4, seed=7, identity="id1", lookahead=2.0, context=2.0, controls=controls)
    curves = np.concatenate([live.feed(audio[i: i + 1600]).curves for i in range(0, len(audio), 1600)]
                            + [live.finish().curves])
    np.testing.assert_allclose(curves, happy, atol=2e-5)
    # a shorter look-ahead than the gate's frames: an emotional stream's frames wait for them, a neutral one's not
    emotional = Stream(talker, 4, identity="id1", lookahead=0.1, controls=controls)
    neutral = Stream(talker, 4, identity="id1", lookahead=0.1)
    assert emotional.due(SAMPLE_RATE) == 30 - closures.frames_after() == 23 < neutral.due(SAMPLE_RATE) == 28
