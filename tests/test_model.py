import dataclasses

import numpy as np
import pytest
import torch

from core.arkit import NUM_BLENDSHAPES
from core.data.dataset import FeatureDataset
from core.distill import distillation_objective, make_student
from core.model import DiffusionTalker, from_model_space, to_model_space
from core.train import TrainConfig, fit, teacher_objective
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
    audio, _, mask, ident = data.batch(range(len(data)), 60, np.random.default_rng(0))
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
    from core.features import cached_encode
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


def test_student_inherits_teacher_and_distillation_runs(tmp_path):
    teacher = tiny_model(steps=8)
    student = make_student(teacher, "teacher-8")
    assert student.config.steps == 4 and student.config.parent == "teacher-8" and student.config.distilled
    torch.testing.assert_close(student.schedule.alpha_bar, teacher.schedule.alpha_bar[::2])
    train = toy_dataset(2)
    gen = torch.Generator().manual_seed(0)
    terms, _ = distillation_objective(teacher)(student, train.batch(range(4), 30, np.random.default_rng(0)), gen)
    assert set(terms) == {"exp", "lip", "vel", "con", "dis"} and all(torch.isfinite(v) for v in terms.values())
    assert all(not p.requires_grad for p in teacher.parameters())
