"""Training additions: the closure term's frames and the feature regularisation."""
import numpy as np
import pytest
import torch

from core.model import losses as L
from core.arkit import INDEX, NUM_BLENDSHAPES
from core.model.network import to_model_space
from core.training.train import MASK_SPAN, regularised_features


def _curves(aperture):
    """Curves [1, F, 52] whose lip aperture (jawOpen - mouthClose) is ``aperture``."""
    c = torch.zeros(1, len(aperture), NUM_BLENDSHAPES)
    c[0, :, INDEX["jawOpen"]] = torch.tensor(aperture, dtype=torch.float32).clamp(min=0)
    return to_model_space(c)


def test_closure_frames_mark_dips_between_openings_not_rests():
    #         rest shut (pause)      open   shut (p)   open          rest shut at the end
    aperture = [0.0] * 20 + [0.5] * 6 + [0.0] * 3 + [0.5] * 6 + [0.0] * 30
    frames = L.closure_frames(_curves(aperture), torch.ones(1, len(aperture)))[0]
    assert frames[26:29].tolist() == [1, 1, 1]              # the p between two openings
    assert frames[:20 - 9].sum() == 0                        # pause far from any opening
    assert frames[35 + 9:].sum() == 0                        # resting shut 0.3 s after speech
    assert frames[20:26].sum() == 0 and frames[29:35].sum() == 0   # open frames never count
    masked = L.closure_frames(_curves(aperture), torch.zeros(1, len(aperture)))
    assert masked.sum() == 0


def test_closure_loss_is_the_lip_error_on_closure_frames():
    aperture = [0.5] * 10 + [0.0] * 4 + [0.5] * 10
    target = _curves(aperture)
    pred = target.clone()
    pred[0, 10:14, INDEX["jawOpen"]] += 0.4                  # a p/b/m that does not shut
    mask = torch.ones(1, len(aperture))
    lip = L.closure_loss(pred, target, mask)
    assert float(lip) == pytest.approx(0.4 ** 2 / len(L.LIP_INDICES), rel=1e-5)
    assert float(L.closure_loss(target, target, mask)) == 0.0


def test_an_emotional_rows_closures_weigh_more_with_its_intensity():
    emotion = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0]])   # neutral, 0.5, 1.0
    np.testing.assert_allclose(L.emotion_closure_weight(emotion, 4.0).numpy(), [1.0, 3.0, 5.0])
    assert L.emotion_closure_weight(None, 4.0) is None and L.emotion_closure_weight(emotion, 0.0) is None
    aperture = [0.5] * 10 + [0.0] * 4 + [0.5] * 10
    target = _curves(aperture).repeat(3, 1, 1)
    pred = target.clone()
    pred[:, 10:14, INDEX["jawOpen"]] += 0.4                  # every row misses its p/b/m alike
    mask, logits, ident = torch.ones(3, len(aperture)), torch.zeros(3, 2), torch.zeros(3, dtype=torch.long)
    plain = L.diffusion_terms(pred, target, mask, logits, ident)
    boosted = L.diffusion_terms(pred, target, mask, logits, ident, weight=torch.full((3,), 2.0),
                                closure_weight=L.emotion_closure_weight(emotion, 4.0))
    # the closure term x the mean of (SNR weight x closure weight); the other terms x the SNR weight only
    assert float(boosted["clo"]) == pytest.approx(float(plain["clo"]) * 2.0 * (1 + 3 + 5) / 3, rel=1e-5)
    assert float(boosted["lip"]) == pytest.approx(float(plain["lip"]) * 2.0, rel=1e-5)


def test_channel_weights_scale_a_channels_share_of_the_whole_face_terms():
    names = ["eyeBlinkLeft", "eyeBlinkRight", "eyeSquintLeft", "jawOpen", "headYaw"]
    weights = L.channel_weights(names, {"eye": 2.0, "eyeBlink": 8.0, "head": 4.0})
    assert weights.tolist() == [8.0, 8.0, 2.0, 1.0, 4.0]          # the longest prefix wins
    assert L.channel_weights(names, {}) is None
    with pytest.raises(ValueError, match="mouthSmile"):
        L.channel_weights(names, {"mouthSmile": 2.0})
    target = torch.zeros(1, 3, len(names))
    pred = target.clone()
    pred[0, :, 0] = 0.5                                            # an error on the blink channel only
    mask = torch.ones(1, 3)
    plain = L.expression_loss(pred, target, mask)
    assert float(L.expression_loss(pred, target, mask, channel_weight=weights)) == pytest.approx(8 * float(plain))
    pred[0, 1, 0] = 0.0                                            # its frame-to-frame change, also weighed
    vel_plain = L.velocity_loss(pred, target, mask)
    assert float(L.velocity_loss(pred, target, mask, channel_weight=weights)) == pytest.approx(8 * float(vel_plain))


def test_channel_weight_arguments_parse_or_say_what_is_expected():
    from core.training.train import parse_channel_weights
    assert parse_channel_weights(["eyeBlink=4", " head = 2"]) == {"eyeBlink": 4.0, "head": 2.0}
    for bad in ("eyeBlink", "=4", "eyeBlink=lots"):
        with pytest.raises(SystemExit, match="PREFIX=WEIGHT"):
            parse_channel_weights([bad])


def test_feature_regularisation_masks_spans_and_adds_scaled_noise():
    gen = torch.Generator().manual_seed(0)
    audio = torch.randn(4, 300, 16) * 3 + 5
    mask = torch.ones(4, 300)
    same = regularised_features(audio, mask, 0.0, 0.0, gen)
    assert torch.equal(same, audio)
    noisy = regularised_features(audio, mask, 0.5, 0.0, gen)
    ratio = float((noisy - audio).std() / audio.std())
    assert ratio == pytest.approx(0.5, rel=0.05)
    masked = regularised_features(audio, mask, 0.0, 0.2, gen)
    hidden = (masked != audio).all(-1)
    share = float(hidden.float().mean())
    assert 0.12 < share < 0.25                              # about the share asked for
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, hidden[0].int().numpy(), 0])))[::2]
    assert runs.min() >= MASK_SPAN                          # whole spans, not single frames
    mean = audio.mean(1, keepdim=True).expand_as(audio)
    torch.testing.assert_close(masked[hidden], mean[hidden])


def test_ablation_filter_drops_named_augmentations_and_engines():
    from types import SimpleNamespace
    from core.training.train import kept
    clips = [SimpleNamespace(identity="id01_flite_awb", extras={"augment": ["mp3", "noise"]}),
             SimpleNamespace(identity="id02_piper_joe", extras={"augment": []}),
             SimpleNamespace(identity="id03_espeak_en-us_m3", extras={"augment": ["reverb"]}),
             SimpleNamespace(identity="speaker", extras={})]
    assert kept(clips) == clips
    assert [c.identity for c in kept(clips, ("mp3", "piper"))] == ["id03_espeak_en-us_m3", "speaker"]
    assert [c.identity for c in kept(clips, ("reverb",))] == ["id01_flite_awb", "id02_piper_joe", "speaker"]
