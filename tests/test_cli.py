"""The `python -m core` command line on a tiny checkpoint with the real Whisper encoder."""
import numpy as np
import pytest
import soundfile as sf
import torch

from core.__main__ import main
from core.distill import make_student
from core.export import export_curves, import_curves
from core.manifest import build_manifest
from core.model import DiffusionTalker, TalkerConfig
from tests.helpers import toy_clip

TINY_WHISPER = dict(audio_dim=384, encoder="whisper-tiny.en", audio_proj_dim=16, identity_feat_dim=16, step_dim=16,
                    hidden=32, layers=1, contrast_dim=16)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    teacher = DiffusionTalker(TalkerConfig(identity_names=["a", "b"], steps=4, **TINY_WHISPER))
    teacher.save_pretrained(root / "teacher-4")
    make_student(teacher, "teacher-4").save_pretrained(root / "distilled-2")
    build_manifest(root)
    return root


@pytest.fixture()
def speech(tmp_path):
    clip = toy_clip(1, 3, seconds=1.5)
    path = tmp_path / "speech.wav"
    sf.write(path, clip.audio, 16000)
    return path, clip


@pytest.mark.parametrize("suffix", [".csv", ".json", ".npy"])
def test_generate_writes_curves(checkpoints, speech, tmp_path, suffix, capsys):
    out = tmp_path / f"out{suffix}"
    assert main(["--checkpoints", str(checkpoints), "generate", str(speech[0]), "--steps", "2", "--out", str(out)]) == 0
    curves, fps = import_curves(out)
    assert curves.shape == (45, 52) and fps == 30
    assert "identity:" in capsys.readouterr().err


def test_generate_reports_bad_input(checkpoints, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    assert main(["--checkpoints", str(checkpoints), "generate", str(bad), "--out", str(tmp_path / "o.csv")]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()
    assert main(["--checkpoints", str(checkpoints), "generate", str(bad), "--out", str(tmp_path / "o.txt")]) == 2


def test_enroll_from_livelink_pairs(checkpoints, tmp_path, capsys):
    pairs = []
    for k in range(2):
        clip = toy_clip(2, 40 + k, seconds=2.5)
        wav, csv = tmp_path / f"take{k}.wav", tmp_path / f"take{k}.csv"
        sf.write(wav, clip.audio, 16000)
        export_curves(clip.blendshapes, csv)
        pairs += [str(wav), str(csv)]
    assert main(["--checkpoints", str(checkpoints), "enroll", "--name", "carol", "--iterations", "5", *pairs]) == 0
    assert "'carol'" in capsys.readouterr().out
    for name in ("teacher-4", "distilled-2"):
        assert DiffusionTalker.from_pretrained(checkpoints / name).identity_names[-1] == "carol"
    assert main(["--checkpoints", str(checkpoints), "enroll", "--name", "dave", pairs[0]]) == 2
