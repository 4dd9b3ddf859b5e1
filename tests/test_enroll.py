import pytest
import torch
from safetensors.torch import load_file

from core.data.dataset import FeatureDataset
from core.identities.enrolment import enroll
from core.audio.feature_cache import cached_encode
from core.identities.store import attach_library, library_for
from core.inference.talker import Talker
from core.model.network import DiffusionTalker
from core.training.train import TrainConfig, fit, teacher_objective
from tests.helpers import NAMES, ToyEncoder, tiny_model, toy_clip


def test_enrolled_identity_is_listed_and_matched(tmp_path):
    train = FeatureDataset([toy_clip(i, 10 * i + k) for i in range(3) for k in range(4)], ToyEncoder(), NAMES, False)
    fit(tiny_model(), teacher_objective, train, train,
        TrainConfig(out=str(tmp_path / "m"), epochs=6, batch_size=6, crop_frames=40, lr=3e-3))
    newcomer = [toy_clip(3, 500 + k) for k in range(3)]   # a pitch no library identity has
    names = enroll(tmp_path / "m", "newcomer", newcomer, ToyEncoder(), iterations=120)
    assert names[-1] == "newcomer" and library_for(tmp_path / "m").is_file()
    model = DiffusionTalker.from_pretrained(tmp_path / "m")
    assert model.identity_names == NAMES                 # loading weights reads weights only
    assert attach_library(model, tmp_path / "m") is None
    assert model.identity_names == NAMES + ["newcomer"]
    talker = Talker.from_pretrained(tmp_path / "m", encoder=ToyEncoder())
    assert talker.identities() == NAMES + ["newcomer"]   # whoever serves users attaches the library
    held_out = toy_clip(3, 999)
    ranked = model.match(torch.from_numpy(cached_encode(ToyEncoder(), held_out.audio)))
    assert ranked[0][0] == "newcomer"
    with pytest.raises(ValueError, match="already"):
        enroll(tmp_path / "m", "newcomer", newcomer, ToyEncoder(), iterations=1)
    # what writes the model back loads weights only: fp16 conversion keeps the shipped library as trained
    from core.model.manifest import build_manifest
    build_manifest(tmp_path, fp16=True)
    weights = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert weights["identity_embedding.weight"].shape[0] == len(NAMES)


def test_broken_library_is_reported_and_the_model_serves_without_it(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    library_for(tmp_path).parent.mkdir(parents=True)
    library_for(tmp_path).write_bytes(b"\x00garbage")
    model = DiffusionTalker.from_pretrained(tmp_path)
    assert "unreadable identity library" in attach_library(model, tmp_path) and model.identity_names == NAMES
    talker = Talker.from_pretrained(tmp_path, encoder=ToyEncoder())
    assert talker.identities() == NAMES and "unreadable identity library" in talker.problems()[0]


@pytest.mark.parametrize("names, table, message", [
    (["nan"], torch.full((1, 16), float("nan")), "NaN"),
    (["small"], torch.zeros(1, 5), "size 5"),
    ({"a": 1}, torch.zeros(1, 16), "list of strings"),
    ([1], torch.zeros(1, 16), "list of strings"),
    (["twice", "twice"], torch.zeros(2, 16), "twice"),
    (["id0"], torch.zeros(1, 16), "already trained"),
    (["auto"], torch.zeros(1, 16), "reserved"),
    (["a", "b"], torch.zeros(1, 16), "float embeddings \\[2"),
    (["ints"], torch.zeros(1, 16, dtype=torch.int64), "float embeddings")])
def test_library_files_are_checked_on_read(tmp_path, names, table, message):
    import json
    from safetensors.torch import save_file
    from core.identities.store import LibraryError, read_library
    tiny_model(identity_dim=16).save_pretrained(tmp_path)
    library_for(tmp_path).parent.mkdir(parents=True)
    save_file({"embeddings": table}, str(library_for(tmp_path)), metadata={"names": json.dumps(names)})
    with pytest.raises(LibraryError, match=message):
        read_library(library_for(tmp_path), identity_dim=16, trained=NAMES)
    model = DiffusionTalker.from_pretrained(tmp_path)
    assert attach_library(model, tmp_path) and model.identity_names == NAMES
