import json

import numpy as np
import pytest
import soundfile as sf
import torch

from core.model.manifest import ChecksumError, read_manifest, role_of, verify
from core.audio.decode import load_audio
from core.inference.talker import Talker
from tests.helpers import ToyEncoder, tiny_model, toy_clip


def test_manifest_lists_models_with_roles_and_checksums(toy_checkpoints):
    models = {m["name"]: m for m in read_manifest(toy_checkpoints)["models"]}
    assert set(models) == {"teacher-8", "distilled-4", "scratch-4"}
    assert models["distilled-4"]["parent"] == "teacher-8" and models["distilled-4"]["steps"] == 4
    assert models["scratch-4"]["role"] == "baseline" and role_of("ablation-8-no-lip") == "ablation"
    assert len(models["teacher-8"]["sha256"]["model.safetensors"]) == 64


def test_generate_from_path_and_array(toy_checkpoints, tmp_path):
    talker = Talker.from_pretrained(toy_checkpoints, encoder=ToyEncoder())
    assert talker.steps_available == [8, 4]
    clip = toy_clip(1, 7, seconds=1.5)
    wav = tmp_path / "speech.wav"
    sf.write(wav, clip.audio, 16000)
    out = talker.generate(str(wav), steps=4, seed=3, num_samples=2)
    assert out.blendshapes.shape == (2, 45, 52) and out.blendshapes.min() >= 0 and out.blendshapes.max() <= 1
    assert [s for s, _ in out.scores] and sorted(n for n, _ in out.scores) == ["id0", "id1", "id2"]
    assert out.identity == out.matched_identity == out.scores[0][0]
    assert out.seeds == [3, 4] and out.itf > 0 and {"encoder", "match", "sampling", "total"} <= set(out.timings)
    pair = talker.generate(clip.audio, steps=4, seed=3, num_samples=2)
    single = talker.generate(clip.audio, steps=4, seed=3, num_samples=1)
    np.testing.assert_allclose(single.blendshapes[0], pair.blendshapes[0], atol=1e-5)  # seed k independent of K
    assert not np.allclose(pair.blendshapes[0], pair.blendshapes[1])
    styled = talker.generate(clip.audio, steps=8, seed=0, identity="id2")
    assert styled.identity == "id2"


def test_an_upload_is_decoded_once_and_its_wave_comes_back(toy_checkpoints, tmp_path, monkeypatch):
    from core.audio import decode
    from core.inference.registry import ModelRegistry
    talker = Talker.from_pretrained(toy_checkpoints, encoder=ToyEncoder())
    assert isinstance(talker, ModelRegistry)          # loading is the registry's; generate is the Talker's
    wav = tmp_path / "speech.wav"
    sf.write(wav, toy_clip(1, 7, seconds=1.5).audio, 16000)
    calls = []
    monkeypatch.setattr(decode, "load_audio", lambda source, *a, **k: calls.append(source) or load_audio(source))
    out = talker.generate(str(wav), steps=4, seed=3, speech_check=True)
    assert calls == [str(wav)] and out.wave.dtype == np.float32 and len(out.wave) == 24000
    again = talker.generate(out.wave, steps=4, seed=3)  # the decoded wave gives the same curves
    np.testing.assert_allclose(again.blendshapes, talker.generate(str(wav), steps=4, seed=3).blendshapes, atol=1e-6)
    assert talker.generate(None, steps=4, features=ToyEncoder().encode(out.wave)).wave is None


def test_bad_requests_give_clear_errors(toy_checkpoints):
    talker = Talker.from_pretrained(toy_checkpoints, encoder=ToyEncoder())
    audio = toy_clip(0, 1).audio
    with pytest.raises(ValueError, match="no model with 3 steps"):
        talker.generate(audio, steps=3)
    with pytest.raises(ValueError, match="unknown identity"):
        talker.generate(audio, steps=4, identity="nobody")
    with pytest.raises(ValueError, match="seed"):
        talker.generate(audio, steps=4, seed=-1)


def test_tampered_checkpoint_is_refused(toy_checkpoints):
    weights = toy_checkpoints / "distilled-4" / "model.safetensors"
    torch.manual_seed(1)
    tiny_model(steps=4).save_pretrained(toy_checkpoints / "distilled-4")
    with pytest.raises(ChecksumError, match="sha256"):
        Talker.from_pretrained(toy_checkpoints, encoder=ToyEncoder()).model(4)
    assert weights.is_file()


def test_manifest_entries_must_hash_every_loaded_file_and_stay_inside_the_root(toy_checkpoints, tmp_path_factory):
    manifest = json.loads((toy_checkpoints / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["name"] == "distilled-4")
    without_weights = {**entry, "sha256": {"config.json": entry["sha256"]["config.json"]}}
    with pytest.raises(ChecksumError, match="no sha256 for model.safetensors"):
        verify(toy_checkpoints, without_weights)
    outside = tmp_path_factory.mktemp("elsewhere")
    tiny_model(steps=4).save_pretrained(outside / "x")
    for path in ("../" * 8 + str(outside / "x").lstrip("/"), str(outside / "x")):
        with pytest.raises(ChecksumError, match="leads outside"):
            verify(toy_checkpoints, {**entry, "path": path, "sha256": {}})


def test_a_damaged_model_is_left_out_and_the_others_are_served(toy_checkpoints):
    from demo.service import load_talker
    (toy_checkpoints / "distilled-4" / "model.safetensors").write_bytes(b"damaged")
    talker, problem = load_talker(toy_checkpoints)
    assert problem is None and talker.steps_available == [8]
    assert any("distilled-4 is not offered" in line and "sha256" in line for line in talker.problems())
