"""A whole performance: the head-motion process, emotions composed with the visemes, the corpus
upgrade, models that make the head's channels and read an emotion, and their evaluation."""
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from core.arkit import INDEX, LIP_INDICES, NUM_BLENDSHAPES
from core.data.emotion_face import closure_gate, prototype, with_emotion
from core.data.head_motion import head_motion
from core.data.phones import Phone
from core.data.style import Style
from core.emotion import AXES, EMOTIONS, emotion_vector
from core.evaluation import head_motion as H
from core.evaluation.emotion import EmotionClassifier, clip_features
from core.head_pose import MAX_SPEED, from_channels, limit_speed, to_channels
from core.inference.output_filter import HeadFilter
from core.inference.controls import Controls
from core.model.diffusion import frame_noise
from core.model.network import DiffusionTalker
from core.rates import FPS, SAMPLE_RATE
from core.training.widen import widen_to_performance
from tests.helpers import tiny_model

# "a pub" then a pause, then "bob": phones with a pause in the middle and bilabials
PHONES = [Phone("pau", 0.0, 0.2), Phone("ax", 0.2, 0.35), Phone("p", 0.35, 0.45), Phone("ah", 0.45, 0.7),
          Phone("b", 0.7, 0.8), Phone("pau", 0.8, 1.6), Phone("b", 1.6, 1.7), Phone("aa", 1.7, 2.1),
          Phone("b", 2.1, 2.2), Phone("pau", 2.2, 2.6)]
FRAMES = int(2.6 * FPS)
AUDIO = (0.2 * np.sin(np.arange(int(2.6 * SAMPLE_RATE)) * 0.05)).astype(np.float32)


def _heads(style=Style(), n=8, **kw):
    return np.stack([head_motion(PHONES, AUDIO, FRAMES, style, np.random.default_rng(i), **kw) for i in range(n)])


def test_head_motion_is_sampled_anew_stays_in_bounds_and_rests_in_pauses():
    heads = _heads()
    assert heads.shape == (8, FRAMES, 3) and np.isfinite(heads).all()
    assert heads.std(0).mean() > np.radians(0.5)                     # every draw moves differently
    speed = np.abs(np.diff(heads, axis=1)) * FPS
    assert speed.max() <= MAX_SPEED + 1e-6
    t = (np.arange(FRAMES - 1) + 1) / FPS
    pause = (t > 0.9) & (t < 1.55)                                   # inside the long pause, before the ease
    speaking = ((t > 0.2) & (t < 0.8)) | ((t > 1.6) & (t < 2.2))
    assert speed[:, pause].mean() < speed[:, speaking].mean()


def test_head_style_and_emotion_scale_the_motion():
    calm = _heads(Style(head_amplitude=0.5), n=12).std(1).mean()
    wide = _heads(Style(head_amplitude=1.5), n=12).std(1).mean()
    assert wide > 2 * calm
    sad = _heads(n=12, emotion="sad", intensity=1.0).std(1).mean()
    angry = _heads(n=12, emotion="angry", intensity=1.0).std(1).mean()
    assert angry > sad


def test_limit_speed_clips_each_step():
    angles = np.zeros((4, 3))
    angles[2:, 0] = 1.0                                               # a 1 rad jump in one frame
    out = limit_speed(angles)
    assert np.abs(np.diff(out, axis=0)).max() <= MAX_SPEED / FPS + 1e-9


def test_the_head_filter_takes_out_jitter_and_gives_the_same_in_chunks():
    rng = np.random.default_rng(0)
    t = np.arange(120) / FPS
    slow = np.radians(5.0) * np.sin(2 * np.pi * 0.5 * t)[:, None] * np.ones(3)
    jittery = (slow + np.radians(2.0) * rng.standard_normal((120, 3))).astype(np.float32)
    whole = HeadFilter()(jittery[None])[0]
    assert np.abs(np.diff(whole, axis=0)).max() <= MAX_SPEED / FPS + 1e-6
    assert np.abs(np.diff(whole, axis=0)).mean() < 0.6 * np.abs(np.diff(jittery, axis=0)).mean()
    assert np.abs(whole - slow).mean() < np.abs(jittery - slow).mean()            # closer to the motion
    chunked = HeadFilter()
    parts = [chunked(jittery[None, a:b])[0] for a, b in ((0, 7), (7, 50), (50, 51), (51, 120))]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)
    assert whole[0] == pytest.approx(jittery[0])                                  # no lag at the start


def test_the_head_gain_scales_about_the_straight_head_and_gives_the_same_in_chunks():
    rng = np.random.default_rng(1)
    t = np.arange(90) / FPS
    head = (np.radians(4.0) * np.sin(2 * np.pi * 0.4 * t)[:, None] + np.radians(0.5) * rng.standard_normal((90, 3)))
    gain = np.array([1.5, 2.0, 0.8])
    whole = HeadFilter(gain)(head[None])[0]
    np.testing.assert_allclose(whole, HeadFilter()(head[None])[0] * gain, atol=1e-6)   # no step near the limit here
    chunked = HeadFilter(gain)
    parts = [chunked(head[None, a:b])[0] for a, b in ((0, 10), (10, 11), (11, 90))]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)
    fast = HeadFilter(np.full(3, 50.0))(head[None])[0]                                # the limit still holds
    assert np.abs(np.diff(fast, axis=0)).max() <= MAX_SPEED / FPS + 1e-6
    for bad in ([1.0, 0.0, 1.0], [1.0, 1.0]):
        with pytest.raises(ValueError, match="head gain"):
            HeadFilter(bad)


def test_head_channels_round_trip():
    angles = np.radians([[10.0, -5.0, 2.0], [-29.0, 0.0, 29.0]]).astype(np.float32)
    np.testing.assert_allclose(from_channels(to_channels(angles)), angles, atol=1e-6)
    assert to_channels(np.zeros(3)).tolist() == [0.5, 0.5, 0.5]


def test_emotions_compose_with_the_visemes_and_bilabials_win():
    neutral = np.zeros((FRAMES, NUM_BLENDSHAPES), np.float32)
    happy = with_emotion(neutral, PHONES, "happy", 1.0)
    smile = happy[:, INDEX["mouthSmileLeft"]]
    gate = closure_gate(PHONES, FRAMES)
    assert smile.max() == pytest.approx(prototype("happy")[INDEX["mouthSmileLeft"]], rel=1e-5)
    assert smile[gate == 1.0].max() == 0.0                            # closed lips on p/b/m: no smile there
    np.testing.assert_allclose(happy[:, INDEX["eyeSquintLeft"]], prototype("happy")[INDEX["eyeSquintLeft"]])
    assert np.array_equal(with_emotion(neutral, PHONES, "angry", 0.0), neutral)
    half = with_emotion(neutral, PHONES, "surprised", 0.5)[:, INDEX["browInnerUp"]]
    full = with_emotion(neutral, PHONES, "surprised", 1.0)[:, INDEX["browInnerUp"]]
    np.testing.assert_allclose(2 * half, full, rtol=1e-6)


def test_the_emotion_vector_is_zero_for_neutral_and_checks_input():
    assert not emotion_vector("neutral", 1.0).any()
    assert emotion_vector("Sad ", 0.4).tolist() == [0.0, pytest.approx(0.4), 0.0, 0.0]
    with pytest.raises(ValueError, match="Unknown emotion"):
        emotion_vector("bored", 1.0)
    with pytest.raises(ValueError, match="intensity"):
        Controls.checked("happy", float("nan"))
    with pytest.raises(ValueError, match="upper-face strength"):
        Controls.checked(upper_strength=2.5)


def test_strengths_scale_the_face_and_the_switch_stills_the_head():
    curves = np.full((1, 5, NUM_BLENDSHAPES), 0.4, np.float32)
    head = np.full((1, 5, 3), 0.1, np.float32)
    shaped, still = Controls(upper_strength=2.0, lower_strength=0.5, head_motion=False).shape(curves, head)
    assert shaped[0, 0, INDEX["browInnerUp"]] == pytest.approx(0.8)
    assert shaped[0, 0, INDEX["jawOpen"]] == pytest.approx(0.2)
    assert not still.any() and curves[0, 0, 0] == pytest.approx(0.4)   # the input is not changed


def _widened():
    old = tiny_model(steps=8, audio_lookahead=2, bidirectional=True)
    new = DiffusionTalker(replace(old.config, head_channels=3, emotions=list(AXES)))
    widen_to_performance(old, new)
    return old, new


def test_a_model_widened_to_a_performance_keeps_its_face_until_trained():
    old, new = _widened()
    audio, ids = torch.randn(2, 30, old.config.audio_dim), torch.tensor([0, 1])
    x_t, t = torch.randn(2, 30, 52), torch.tensor([2, 7])
    with torch.no_grad():
        before = old.denoise(x_t, t, old.condition(audio, ids))
        after = new.denoise(torch.cat([x_t, torch.randn(2, 30, 3)], -1), t,
                            new.condition(audio, ids, emotion=torch.tensor([[1.0, 0, 0, 0], [0, 0, 0.5, 0]])))
    assert after.shape == (2, 30, 55)
    torch.testing.assert_close(after[..., :52], before, atol=1e-5, rtol=1e-5)


def test_the_emotion_and_the_dropped_condition_change_the_output_once_trained():
    _, model = _widened()
    with torch.no_grad():
        model.emotion_projection.weight.normal_(0, 0.5)
        model.emotion_dropped.normal_(0, 0.5)
    audio, ids = torch.randn(1, 20, model.config.audio_dim), torch.tensor([0])
    happy = torch.tensor([[1.0, 0, 0, 0]])
    plain = model.condition(audio, ids)[1]
    assert torch.equal(model.condition(audio, ids, emotion=torch.zeros(1, 4))[1], plain)   # neutral = no emotion
    assert not torch.allclose(model.condition(audio, ids, emotion=happy)[1], plain)
    dropped = model.condition(audio, ids, emotion=happy, dropped=torch.tensor([True]))[1]
    assert not torch.allclose(dropped, model.condition(audio, ids, emotion=happy)[1])
    sad = torch.tensor([[0, 0.0, 0.7, 0]])             # a dropped row does not see its emotion at all
    torch.testing.assert_close(model.condition(audio, ids, emotion=sad, dropped=torch.tensor([True]))[1], dropped)
    torch.testing.assert_close(dropped, plain + model.emotion_dropped)


def test_a_model_without_emotions_refuses_one():
    model = tiny_model(steps=4)
    with pytest.raises(ValueError, match="without emotions"):
        model.condition(torch.randn(1, 10, model.config.audio_dim), torch.tensor([0]), emotion=torch.ones(1, 4))


def test_the_face_noise_of_a_seed_does_not_change_when_head_channels_are_added():
    face = frame_noise(7, 0, 10, 90)
    both = frame_noise(7, 0, 10, 90, channels=55)
    assert both.shape == (80, 55) and np.array_equal(both[:, :52], face)
    np.testing.assert_array_equal(frame_noise(7, 0, 40, 90, channels=55), both[30:])   # chunking-invariant


def test_the_talker_returns_a_head_and_honours_the_controls(tmp_path):
    from core.inference.talker import Talker
    from core.model.manifest import build_manifest
    from tests.helpers import ToyEncoder
    _, model = _widened()
    with torch.no_grad():
        model.head.weight[52:].normal_(0, 0.3)                        # let the head's channels move
        model.emotion_projection.weight.normal_(0, 0.5)
    model.save_pretrained(tmp_path / "teacher-8")
    build_manifest(tmp_path)
    talker = Talker.from_pretrained(tmp_path, encoder=ToyEncoder())
    audio = (0.2 * np.sin(np.arange(SAMPLE_RATE * 2) * 0.03)).astype(np.float32)
    plain = talker.generate(audio, steps=8, seed=3)
    assert plain.head.shape == (1, plain.frames, 3) and np.abs(plain.head).max() > 0
    happy = talker.generate(audio, steps=8, seed=3, controls=Controls("happy", 1.0, head_motion=False))
    assert not np.allclose(happy.blendshapes, plain.blendshapes) and not happy.head.any()
    zero = talker.generate(audio, steps=8, seed=3, controls=Controls("happy", 0.0))
    np.testing.assert_allclose(zero.blendshapes, plain.blendshapes, atol=1e-6)


def test_head_statistics_count_nods_and_measure_spread():
    t = np.arange(90) / FPS
    pitch = np.radians(3.0) * np.exp(-((t - 1.5) / 0.1) ** 2)         # one nod of 3 degrees
    assert H.nods(pitch) == 1
    assert H.nods(np.zeros(90)) == 0
    same = np.zeros((3, 90, 3))
    same[..., 1] = pitch
    stats = H.pooled([H.clip_statistics(same)])
    assert stats["spread"]["headPitch"] == pytest.approx(0.0, abs=1e-9)
    assert stats["nods_per_minute"] == pytest.approx(3 / (3 * 90 / FPS / 60))
    fast = np.zeros((1, 10, 3))
    fast[0, 5:, 0] = 1.0
    assert H.pooled([H.clip_statistics(fast)])["too_fast_share"] > 0


def test_the_emotion_classifier_names_prototypes_and_not_noise():
    rng = np.random.default_rng(0)
    feats, labels = [], []
    for i in range(200):
        emotion = EMOTIONS[i % len(EMOTIONS)]
        face = np.clip(rng.normal(0.1, 0.05, (60, NUM_BLENDSHAPES)), 0, 1).astype(np.float32)
        feats.append(clip_features(with_emotion(face, PHONES[:1], emotion, rng.uniform(0.5, 1.0))))
        labels.append(emotion)
    clf = EmotionClassifier.fit(np.stack(feats[:150]), labels[:150])
    assert np.mean(np.array(clf.predict(np.stack(feats[150:]))) == np.array(labels[150:])) >= 0.9


def test_a_neutral_corpus_upgraded_equals_one_built_with_performances(tmp_path):
    from core.data.corpus_upgrade import upgrade
    from core.data.synth import build_corpus
    from core.data.clip import read_corpus
    quiet = dict(seed=0, size="tiny", workers=1, log=lambda *_: None)
    built = build_corpus(tmp_path / "built", **quiet)
    build_corpus(tmp_path / "neutral", perform=False, **quiet)
    assert not list((tmp_path / "neutral" / "clips").glob("*.head.npy"))
    upgraded = upgrade(tmp_path / "neutral", tmp_path / "upgraded", log=lambda *_: None)
    assert upgraded["fingerprint"] == built["fingerprint"] and upgraded["performance"] == built["performance"]
    want = {c.id: c for c in read_corpus(tmp_path / "built")}
    got = read_corpus(tmp_path / "upgraded")
    assert len(got) == len(want) and {c.emotion[0] for c in got} <= set(EMOTIONS)
    for clip in got:
        assert clip.emotion == want[clip.id].emotion
        np.testing.assert_array_equal(clip.head, want[clip.id].head)
        np.testing.assert_array_equal(clip.blendshapes, want[clip.id].blendshapes)
    with pytest.raises(ValueError, match="already has performances"):
        upgrade(tmp_path / "built", tmp_path / "again")
