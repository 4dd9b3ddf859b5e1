import os

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_feature_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own feature cache and user data folder (enrolled identities), so
    nothing leaks between tests or into ~/.cache and ~/.local/share."""
    monkeypatch.setenv("DIFFUSIONTALKER_CACHE", str(tmp_path_factory.mktemp("feature-cache")))
    monkeypatch.setenv("DIFFUSIONTALKER_DATA", str(tmp_path_factory.mktemp("user-data")))


@pytest.fixture()
def toy_checkpoints(tmp_path):
    """teacher-8, distilled-4 (v-prediction and the upper face scaled in model space, as trained
    today; the student with value maps) and a scratch-4 baseline (x0-prediction, unscaled, as the first models) on the toy
    encoder, with their manifest."""
    from core.training.distill import make_student
    from core.model.manifest import build_manifest
    from tests.helpers import tiny_model
    teacher = tiny_model(steps=8, prediction="v", upper_face_scale=3.0)
    teacher.save_pretrained(tmp_path / "teacher-8")
    student = make_student(teacher, "teacher-8")
    # value maps as a fit leaves them (core/inference/value_maps.py): one whole-range, one anchored
    student.config.extra["value_maps"] = [{"channel": "browInnerUp", "x": [0.0, 0.25, 1.0], "y": [0.0, 0.5, 1.0]},
                                          {"channel": "eyeBlinkLeft", "x": [-1.0, 0.5, 0.7], "y": [-1.0, 0.5, 1.0]}]
    student.config.extra["noise_temperature"] = {"jawOpen": 0.5, "eyeLookInLeft": 1.3}   # as a fit sets them
    student.save_pretrained(tmp_path / "distilled-4")
    tiny_model(steps=4).save_pretrained(tmp_path / "scratch-4")
    build_manifest(tmp_path)
    return tmp_path


@pytest.fixture()
def toy_talker(toy_checkpoints):
    """A Talker on the toy checkpoints and the toy encoder."""
    from core.inference.talker import Talker
    from tests.helpers import ToyEncoder
    return Talker.from_pretrained(toy_checkpoints, encoder=ToyEncoder())


@pytest.fixture(scope="module")
def whisper_checkpoints(tmp_path_factory):
    """A tiny teacher-4 + distilled-2 with the real Whisper encoder and identities a, b (one per module)."""
    from tests.helpers import make_tiny_checkpoints
    root = tmp_path_factory.mktemp("ckpt")
    make_tiny_checkpoints(root, identities=["a", "b"], teacher_steps=4)
    return root
