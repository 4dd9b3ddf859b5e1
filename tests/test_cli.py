"""The `python -m core` command line on a tiny checkpoint with the real Whisper encoder."""
import numpy as np
import pytest
import torch
import soundfile as sf

from core.__main__ import main
from core.face.export import export_curves, import_curves
from core.inference.talker import Talker
from tests.helpers import toy_clip



@pytest.fixture()
def speech(tmp_path):
    clip = toy_clip(1, 3, seconds=1.5)
    path = tmp_path / "speech.wav"
    sf.write(path, clip.audio, 16000)
    return path, clip


@pytest.mark.parametrize("suffix", [".csv", ".json", ".npy"])
def test_generate_writes_curves(whisper_checkpoints, speech, tmp_path, suffix, capsys):
    out = tmp_path / f"out{suffix}"
    assert main(["--checkpoints", str(whisper_checkpoints), "generate", str(speech[0]), "--steps", "2", "--out", str(out)]) == 0
    curves, fps = import_curves(out)
    assert curves.shape == (45, 52) and fps == 30
    assert "identity:" in capsys.readouterr().err


def test_generate_reports_bad_input(whisper_checkpoints, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    assert main(["--checkpoints", str(whisper_checkpoints), "generate", str(bad), "--out", str(tmp_path / "o.csv")]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()
    assert main(["--checkpoints", str(whisper_checkpoints), "generate", str(bad), "--out", str(tmp_path / "o.txt")]) == 2


def test_enroll_from_livelink_pairs(whisper_checkpoints, tmp_path, capsys):
    pairs = []
    for k in range(2):
        clip = toy_clip(2, 40 + k, seconds=2.5)
        wav, csv = tmp_path / f"take{k}.wav", tmp_path / f"take{k}.csv"
        sf.write(wav, clip.audio, 16000)
        export_curves(clip.blendshapes, csv)
        pairs += [str(wav), str(csv)]
    assert main(["--checkpoints", str(whisper_checkpoints), "enroll", "--name", "carol", "--iterations", "5", *pairs]) == 0
    assert "'carol'" in capsys.readouterr().out
    for name in ("teacher-4", "distilled-2"):
        assert Talker.from_pretrained(whisper_checkpoints / name).identities()[-1] == "carol"
    assert main(["--checkpoints", str(whisper_checkpoints), "enroll", "--name", "dave", pairs[0]]) == 2


def test_out_folder_must_exist_and_write_errors_are_messages(whisper_checkpoints, speech, tmp_path, capsys,
                                                             monkeypatch):
    missing = tmp_path / "nonexistent" / "dir" / "x.csv"
    assert main(["--checkpoints", str(whisper_checkpoints), "generate", str(speech[0]), "--steps", "2",
                 "--out", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err and not missing.parent.exists()

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "o.csv"))
    monkeypatch.setattr("core.face.export._write_atomically", read_only)
    assert main(["--checkpoints", str(whisper_checkpoints), "generate", str(speech[0]), "--steps", "2",
                 "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "Permission denied" in err and "Traceback" not in err


def test_remove_takes_an_enrolled_identity_out_again(whisper_checkpoints, tmp_path, capsys):
    import shutil
    from core.identities.store import library_for, library_names, write_library
    root = tmp_path / "ckpt"
    shutil.copytree(whisper_checkpoints, root)
    for folder in ("teacher-4", "distilled-2"):
        write_library(library_for(root / folder), ["erin"], torch.zeros(1, 32))
    assert main(["--checkpoints", str(root), "remove", "erin"]) == 0
    assert "removed 'erin'" in capsys.readouterr().out and library_names(root / "distilled-2") == []
    assert main(["--checkpoints", str(root), "remove", "erin"]) == 2
    assert "not an enrolled identity" in capsys.readouterr().err


def test_generate_takes_the_controls_and_refuses_what_the_model_cannot_do(whisper_checkpoints, speech, tmp_path,
                                                                          capsys):
    from core.emotion import AXES
    from core.inference.controls import UPPER
    from tests.helpers import make_tiny_checkpoints
    base = ["--checkpoints", str(whisper_checkpoints), "generate", str(speech[0]), "--steps", "2"]
    assert main(base + ["--upper-strength", "0", "--no-head-motion", "--out", str(tmp_path / "still.npy")]) == 0
    curves = np.load(tmp_path / "still.npy")
    assert not curves[:, list(UPPER)].any() and curves.any()
    assert "upper x0, head still" in capsys.readouterr().err
    for flags, message in ((["--emotion", "happy"], "The 2-step model was trained without emotions; choose neutral"),
                           (["--intensity", "x"], "The intensity must be a number from 0 to 1, not 'x'"),
                           (["--emotion", "bored"], "Unknown emotion 'bored'"),
                           (["--lower-strength", "3"], "The lower-face strength must be a number from 0 to 2, not '3'")):
        assert main(base + flags + ["--out", str(tmp_path / "refused.csv")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and not (tmp_path / "refused.csv").exists()
    # a model of the new family: the emotion and its intensity reach the face
    new = tmp_path / "new"
    make_tiny_checkpoints(new, identities=["a", "b"], teacher_steps=4, head_channels=3, emotions=list(AXES))
    made = {}
    for name, flags in (("neutral", []), ("happy", ["--emotion", "happy", "--intensity", "0.7"]),
                        ("happier", ["--emotion", "Happy", "--intensity", "1"])):
        out = tmp_path / f"{name}.npy"
        assert main(["--checkpoints", str(new), "generate", str(speech[0]), "--steps", "2", "--identity", "a",
                     *flags, "--out", str(out)]) == 0
        made[name] = np.load(out)
    assert "happy 0.7" in capsys.readouterr().err
    assert np.abs(made["happy"] - made["neutral"]).max() > 1e-3 and np.abs(made["happier"] - made["happy"]).max() > 1e-4
