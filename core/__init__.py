"""DiffusionTalker: speech-driven, personalised, few-step 3D facial animation (ARKit-52).

The public API (imported on first use, so ``import core`` stays cheap)::

    from core import Talker, load_audio, export_curves
    talker = Talker.from_pretrained("checkpoints")
    result = talker.generate(load_audio("speech.wav"), steps=8, seed=0)
    export_curves(result.blendshapes[0], "out.csv")

The subpackages, by what they do:

``core.audio``       speech in: decoding to 16 kHz, the speech check, encoders and their windows,
                     the feature cache, a stream's features
``core.model``       the network, the diffusion schedule and sampler, losses, checkpoint files and manifest
``core.inference``   the Talker (audio -> curves), decoder backends (torch, ONNX), streaming, Live Link UDP
``core.identities``  the enrolled-identity store, enrolment, the identity adapter's heads
``core.training``    the teacher's training loop, progressive distillation
``core.evaluation``  metrics, real-speech lip metrics, evaluating a Talker on clips
``core.face``        the ARKit head (mesh, glTF reader, materials), rendering, curve files, the animated GLB
``core.data``        the corpus: synthetic voices and every other source -> one clip record

``core.rates`` (16 kHz / 30 fps), ``core.arkit`` (the 52 names), ``core.inputs`` (the
whole-number rule for user input) and ``core.cpu`` (numpy BLAS on one thread) are shared by all
of them; ``python -m core generate|stream|enroll|remove`` is the command line (``core.__main__``).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "Talker": "core.inference.talker",
    "Generation": "core.inference.talker",
    "ModelRegistry": "core.inference.registry",
    "Stream": "core.inference.streaming",
    "DiffusionTalker": "core.model.network",
    "TalkerConfig": "core.model.network",
    "NoiseSchedule": "core.model.diffusion",
    "load_audio": "core.audio.decode",
    "AudioError": "core.audio.decode",
    "get_encoder": "core.audio.encoders",
    "enroll_pairs": "core.identities.enrolment",
    "remove_identity": "core.identities.enrolment",
    "export_curves": "core.face.export",
    "import_curves": "core.face.export",
    "import_motion": "core.face.export",
    "render_video": "core.face.render",
    "ARKIT_NAMES": "core.arkit",
    "FPS": "core.rates",
    "SAMPLE_RATE": "core.rates",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
