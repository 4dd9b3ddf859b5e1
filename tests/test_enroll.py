import numpy as np
import pytest
import torch

from core.data.dataset import FeatureDataset
from core.enroll import enroll
from core.features import cached_encode
from core.model import LIBRARY_NAME, DiffusionTalker
from core.train import TrainConfig, fit, teacher_objective
from tests.helpers import NAMES, ToyEncoder, tiny_model, toy_clip


def test_enrolled_identity_is_listed_and_matched(tmp_path):
    train = FeatureDataset([toy_clip(i, 10 * i + k) for i in range(3) for k in range(4)], ToyEncoder(), NAMES, False)
    fit(tiny_model(), teacher_objective, train, train,
        TrainConfig(out=str(tmp_path / "m"), epochs=6, batch_size=6, crop_frames=40, lr=3e-3))
    newcomer = [toy_clip(3, 500 + k) for k in range(3)]   # a pitch no library identity has
    names = enroll(tmp_path / "m", "newcomer", newcomer, ToyEncoder(), iterations=120)
    assert names[-1] == "newcomer" and (tmp_path / "m" / LIBRARY_NAME).is_file()
    model = DiffusionTalker.from_pretrained(tmp_path / "m")
    assert model.identity_names == NAMES + ["newcomer"]
    held_out = toy_clip(3, 999)
    ranked = model.match(torch.from_numpy(cached_encode(ToyEncoder(), held_out.audio)))
    assert ranked[0][0] == "newcomer"
    with pytest.raises(ValueError, match="already"):
        enroll(tmp_path / "m", "newcomer", newcomer, ToyEncoder(), iterations=1)


def test_broken_library_is_reported(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    (tmp_path / LIBRARY_NAME).write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="library"):
        DiffusionTalker.from_pretrained(tmp_path)
