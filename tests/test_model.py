import dataclasses

import numpy as np
import pytest
import torch

from core.arkit import NUM_BLENDSHAPES, UPPER_INDICES
from core.data.dataset import FeatureDataset
from core.training.distill import ADAPTER_PARTS, distillation_objective, make_student
from core.model.network import DiffusionTalker, curves_from_model, from_model_space, model_targets, to_model_space
from core.training.train import TrainConfig, fit, teacher_objective
from tests.helpers import NAMES, ToyEncoder, tiny_model, toy_clip

def toy_dataset(clips_per_id=4, split="train") -> FeatureDataset:
    clips = [toy_clip(i, 100 * i + k, split) for i in range(3) for k in range(clips_per_id)]
    return FeatureDataset(clips, ToyEncoder(), NAMES, progress=False)


def test_shapes_and_model_space_round_trip():
    model = tiny_model()
    x = torch.rand(2, 17, NUM_BLENDSHAPES)
    torch.testing.assert_close(from_model_space(to_model_space(x)), x)
    out, logits = model(to_model_space(x), torch.tensor([1, 8]), torch.randn(2, 17, 8), torch.tensor([0, 2]))
    assert out.shape == (2, 17, NUM_BLENDSHAPES) and logits.shape == (2, 3)


def test_upper_face_scale_stretches_the_upper_face_and_head_about_rest_and_back():
    model = tiny_model(head_channels=3)
    model.config.upper_face_scale = 3.0
    curves = torch.rand(2, 17, model.config.channels)
    x0 = model_targets(model, curves)
    torch.testing.assert_close(curves_from_model(model.config, x0), curves)
    plain = to_model_space(curves)
    upper = list(UPPER_INDICES)
    torch.testing.assert_close(x0[..., upper] + 1.0, 3.0 * (plain[..., upper] + 1.0))     # about a curve at 0
    torch.testing.assert_close(x0[..., NUM_BLENDSHAPES:], 3.0 * plain[..., NUM_BLENDSHAPES:])  # about a straight head
    jaw = [i for i in range(NUM_BLENDSHAPES) if i not in upper]
    torch.testing.assert_close(x0[..., jaw], plain[..., jaw])                            # the lips as before
    assert len(upper) == 19                         # 5 brow + 2 eyes x (blink, look x4, squint, wide)


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "ckpt")
    loaded = DiffusionTalker.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


def test_broken_checkpoint_gives_clear_error(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="broken"):
        DiffusionTalker.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not a checkpoint"):
        DiffusionTalker.from_pretrained(tmp_path / "missing")


def test_tiny_model_overfits_a_batch():
    model, data = tiny_model(), toy_dataset(2)
    batch = data.batch(range(len(data)), 60, np.random.default_rng(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(300):
        terms, _ = teacher_objective(model, batch, gen)
        loss = terms["exp"] + terms["lip"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-20:]) < np.mean(losses[:5]) / 10


def test_contrastive_matching_separates_identities():
    model, data = tiny_model(), toy_dataset(3)
    audio, _, mask, ident, _ = data.batch(range(len(data)), 60, np.random.default_rng(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(model.identity_logits(audio, mask), ident)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 5
    test = [toy_clip(i, 999 + i) for i in range(3)]
    from core.audio.feature_cache import cached_encode
    for clip in test:
        ranked = model.match(torch.from_numpy(cached_encode(ToyEncoder(), clip.audio)))
        assert ranked[0][0] == clip.identity and len(ranked) == 3
        assert all(-1.0 <= s <= 1.0 for _, s in ranked)


def test_fit_trains_checkpoints_and_resumes(tmp_path):
    train, val = toy_dataset(3), toy_dataset(1, "val")
    cfg = TrainConfig(out=str(tmp_path / "run"), epochs=2, batch_size=4, crop_frames=40, lr=3e-3)
    log = fit(tiny_model(), teacher_objective, train, val, cfg)
    assert len(log) == 2 and {"exp", "lip", "vel", "con"} <= set(log[-1]["val"])
    assert (tmp_path / "run" / "model.safetensors").is_file()
    more = fit(tiny_model(), teacher_objective, train, val, dataclasses.replace(cfg, epochs=3))
    assert [row["epoch"] for row in more] == [1, 2, 3]   # resumed after epoch 2, not restarted
    again = fit(tiny_model(), teacher_objective, train, val, dataclasses.replace(cfg, epochs=3))
    assert again == more                                  # finished runs are skipped


def test_fit_keeps_snapshots_to_select_from(tmp_path):
    from core.training.run_state import snapshots
    train, val = toy_dataset(2), toy_dataset(1, "val")
    cfg = TrainConfig(out=str(tmp_path / "run"), epochs=3, batch_size=4, crop_frames=40, lr=3e-3,
                      snapshot_minutes=1e-9, feature_noise=0.2, time_mask=0.1)
    fit(tiny_model(), teacher_objective, train, val, cfg)
    kept = snapshots(tmp_path / "run")
    assert [p.name for p in kept] == ["epoch-0001", "epoch-0002", "epoch-0003"]
    last = DiffusionTalker.from_pretrained(kept[-1]).state_dict()
    final = DiffusionTalker.from_pretrained(tmp_path / "run").state_dict()
    assert all(torch.equal(last[k], final[k]) for k in final)
    first = DiffusionTalker.from_pretrained(kept[0]).state_dict()
    assert any(not torch.equal(first[k], final[k]) for k in final)
    assert snapshots(tmp_path / "nothing") == []


def test_student_inherits_teacher_and_distillation_runs(tmp_path):
    teacher = tiny_model(steps=8)
    student = make_student(teacher, "teacher-8")
    assert student.config.steps == 4 and student.config.parent == "teacher-8" and student.config.distilled
    torch.testing.assert_close(student.schedule.alpha_bar, teacher.schedule.alpha_bar[::2])
    train = toy_dataset(2)
    gen = torch.Generator().manual_seed(0)
    terms, _ = distillation_objective(teacher)(student, train.batch(range(4), 30, np.random.default_rng(0)), gen)
    assert set(terms) == {"exp", "lip", "vel", "con", "clo", "dis"} and all(torch.isfinite(v) for v in terms.values())
    assert all(not p.requires_grad for p in teacher.parameters())


def test_channel_weights_reach_the_teacher_and_student_objectives():
    """The same batch and noise: weighing every channel 3x triples the whole-face terms and leaves
    the lips' own terms alone, in the teacher's objective (from its config) and a student's."""
    data = toy_dataset(2)
    batch = data.batch(range(4), 30, np.random.default_rng(0))

    def teacher_terms(weights):
        model = tiny_model(steps=8)
        model.config.extra["train"] = {"channel_weights": weights}
        return teacher_objective(model, batch, torch.Generator().manual_seed(0))[0]

    def student_terms(weights):
        teacher = tiny_model(steps=8)
        return distillation_objective(teacher, channel_weights=weights)(
            make_student(teacher, "teacher-8"), batch, torch.Generator().manual_seed(0))[0]

    for terms in (teacher_terms, student_terms):
        plain, weighted = terms({}), terms({"": 3.0})
        for name in ("exp", "vel"):
            assert weighted[name].item() == pytest.approx(3 * plain[name].item(), rel=1e-5)
        assert weighted["lip"].item() == pytest.approx(plain["lip"].item(), rel=1e-6)


def test_students_keep_the_teachers_adapter(tmp_path):
    """Every step count matches a voice with the same scores: distillation leaves the
    personalisation adapter as the teacher trained it, and changes the decoder."""
    teacher = tiny_model(steps=8)
    student = make_student(teacher, "teacher-8")
    train, val = toy_dataset(3), toy_dataset(1, "val")
    cfg = TrainConfig(out=str(tmp_path / "s4"), epochs=2, batch_size=4, crop_frames=40, lr=3e-3)
    fit(student, distillation_objective(teacher), train, val, cfg)
    student = DiffusionTalker.from_pretrained(tmp_path / "s4")
    before, after = teacher.state_dict(), student.state_dict()
    adapter = [k for k in before if k.split(".")[0] in ADAPTER_PARTS]
    assert adapter and all(torch.equal(before[k], after[k]) for k in adapter)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    audio = val.batch([0], 60, np.random.default_rng(0))[0][0]
    assert teacher.match(audio) == student.match(audio)


def test_adapter_fit_trains_only_the_contrast_heads():
    from core.identities.adapter import HEADS, accuracy, fit_heads
    model = tiny_model()
    train, val = toy_dataset(4), toy_dataset(2, "val")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    acc_before = accuracy(model, val)[0]
    result = fit_heads(model, train, val, minutes=0.05, lr=3e-3, batch_size=4, log=lambda *_: None)
    after = model.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed <= set(HEADS)                              # the decoder's inputs are untouched
    assert result["val_identity_acc_after"] >= result["val_identity_acc_before"] == round(acc_before, 4)
    assert all(p.requires_grad for p in model.parameters())   # trainable again for whatever comes next


def test_audio_lookahead_feeds_each_frame_the_features_k_frames_later():
    model = tiny_model(steps=4, audio_lookahead=3)
    audio = torch.randn(1, 10, model.config.audio_dim)
    expected_in = torch.cat([audio, torch.cat([audio[:, 3:], audio[:, -1:].expand(-1, 3, -1)], 1)], -1)
    torch.testing.assert_close(model.project_audio(audio), model.audio_proj(expected_in))
    # frame 2 depends on frame 5 (2 + 3) and on no frame in between
    later = audio.clone()
    later[:, 5] += 1.0
    changed = (model.project_audio(later) - model.project_audio(audio)).abs().sum(-1)[0] > 0
    assert changed.tolist() == [False, False, True, False, False, True, False, False, False, False]
    # shorter than k frames: every frame sees the last one
    short = audio[:, :2]
    torch.testing.assert_close(model.project_audio(short),
                               model.audio_proj(torch.cat([short, short[:, -1:].expand(-1, 2, -1)], -1)))
