"""Small generated fixtures shared by the tests: toy audio and clips, tiny models and checkpoints,
synthetic speech, and the app served in a thread. pytest fixtures built on them are in conftest.py."""
from __future__ import annotations

import base64
import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from core.arkit import INDEX, NUM_BLENDSHAPES
from core.audio.decode import duration_frames
from core.face.glb import pack_glb
from core.data.clip import TalkingClip
from core.rates import SAMPLE_RATE

# Tiny networks: TINY on the toy encoder's 8 features, TINY_WHISPER on the real Whisper features.
TINY = dict(audio_dim=8, audio_proj_dim=16, identity_feat_dim=16, step_dim=16, hidden=32, layers=2, contrast_dim=16)
TINY_WHISPER = dict(audio_dim=384, encoder="whisper-tiny.en", audio_proj_dim=16, identity_feat_dim=16, step_dim=16,
                    hidden=32, layers=1, contrast_dim=16)
NAMES = ["id0", "id1", "id2"]          # identities of tiny_model
IDENTITIES = ["a", "b", "c"]           # identities of make_tiny_checkpoints
SENTENCE = "Hello there. The quick brown fox jumps over the lazy dog."


class ToyEncoder:
    """A cheap stand-in speech encoder: per-frame loudness and a pitch-dependent signature.

    Frame count follows the real encoders (duration_frames), so it exercises the same paths.
    """
    name = "toy-encoder"
    dim = 8

    def encode(self, audio: np.ndarray) -> np.ndarray:
        n = duration_frames(len(audio))
        hop = SAMPLE_RATE // 30
        padded = np.zeros(n * hop, np.float32)                   # the last frame's audio may be short
        padded[:min(len(audio), n * hop)] = audio[:n * hop]
        frames = padded.reshape(n, hop)
        loud = np.sqrt((frames ** 2).mean(1))
        spec = np.abs(np.fft.rfft(frames, axis=1))[:, 1:8]
        spec = spec / (spec.sum(1, keepdims=True) + 1e-6)
        return np.concatenate([loud[:, None] * 5, spec], 1).astype(np.float32)


def toy_clip(identity: int, seed: int, split: str = "train", seconds: float = 2.0) -> TalkingClip:
    """A tone whose loudness drives jawOpen; the identity sets pitch and lip amplitude."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (1.5 + rng.random()) * t + rng.random() * 6)
    pitch = [220.0, 700.0, 1500.0, 3000.0][identity % 4]
    audio = (0.3 * envelope * np.sin(2 * np.pi * pitch * t)).astype(np.float32)
    frames = duration_frames(n)
    env_frames = envelope[(np.arange(frames) * SAMPLE_RATE // 30).clip(max=n - 1)]
    curves = np.zeros((frames, NUM_BLENDSHAPES), np.float32)
    curves[:, INDEX["jawOpen"]] = env_frames * (0.4 + 0.15 * identity)
    curves[:, INDEX["mouthSmileLeft"]] = 0.1 * identity
    curves[:, INDEX["eyeBlinkLeft"]] = rng.random() * 0.2
    return TalkingClip(id=f"id{identity}-{seed}", identity=f"id{identity}", split=split, wav_path=None,
                       blendshapes=curves, audio=audio)


def tiny_model(steps=8, **kw):
    """A tiny untrained DiffusionTalker on the toy encoder (fixed seed)."""
    from core.model.network import DiffusionTalker, TalkerConfig
    torch.manual_seed(0)
    return DiffusionTalker(TalkerConfig(identity_names=NAMES, steps=steps, **{**TINY, **kw}))


def make_tiny_checkpoints(root, identities=IDENTITIES, teacher_steps: int = 8, **config) -> None:
    """A tiny teacher + distilled student (half the steps) with the real encoder, and their
    manifest, in ``root``; ``config``: more TalkerConfig fields (e.g. ``head_channels=3,
    emotions=list(core.emotion.AXES)``: the new family, its emotion projection made non-zero as a
    trained one is, so that an emotion that never arrives shows)."""
    from core.training.distill import make_student
    from core.model.manifest import build_manifest
    from core.model.network import DiffusionTalker, TalkerConfig
    torch.manual_seed(0)
    teacher = DiffusionTalker(TalkerConfig(identity_names=list(identities), steps=teacher_steps,
                                           **{**TINY_WHISPER, **config}))
    if teacher.config.emotions:
        with torch.no_grad():
            teacher.emotion_projection.weight.normal_(0, 2.0)
    teacher.save_pretrained(root / f"teacher-{teacher_steps}")
    make_student(teacher, f"teacher-{teacher_steps}").save_pretrained(root / f"distilled-{teacher_steps // 2}")
    build_manifest(root)


def serve(demo) -> str:
    """Serve ``demo`` in a background thread; its URL."""
    from demo import ui
    from experiments.loadtest import free_port
    port = free_port()
    ui.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    return f"http://127.0.0.1:{port}/"


def launch_app(root):
    """Build the demo on the checkpoints in ``root`` and serve it in a background thread: (demo, url)."""
    from demo import ui
    demo = ui.build_demo(root)
    return demo, serve(demo)


def tiny_service(tmp_path_factory, **options):
    """A :class:`demo.service.DemoService` on tiny checkpoints, its request folders in a folder of
    the test's (``options``: the service's, e.g. ``video_size``)."""
    from demo import service as demo_service
    root = tmp_path_factory.mktemp("checkpoints")
    make_tiny_checkpoints(root)
    talker, problem = demo_service.load_talker(root)
    assert problem is None
    return demo_service.DemoService(talker, workdir=tmp_path_factory.mktemp("work"), **options)


def synthesise_speech(path, text: str = SENTENCE) -> None:
    """``text`` spoken by espeak-ng into the wav ``path`` (the test skips without espeak-ng)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (Debian package espeak-ng)")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)


# A unit quad (two triangles) standing in for a face.
QUAD = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float32)
QUAD_FACES = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.uint16)


FLOAT, UINT32 = 5126, 5125  # glTF componentType codes


def write_gltf(path, targets=None, sparse=False, translation=(0.0, 0.0, 0.0), scale=1.0,
               vertices=QUAD, faces=QUAD_FACES):
    """A minimal glTF 2.0 file (GLB, or .gltf with a data URI) holding a mesh (default: the quad)
    and its morph targets (name -> offsets [V, 3])."""
    blob, views, accessors = bytearray(), [], []

    def view(array) -> int:
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": array.nbytes})
        blob.extend(np.ascontiguousarray(array).tobytes() + b"\0" * (-array.nbytes % 4))
        return len(views) - 1

    def accessor(array, component, kind) -> int:
        accessors.append({"bufferView": view(array), "componentType": component, "type": kind,
                          "count": len(array)})
        return len(accessors) - 1

    def sparse_accessor(delta) -> int:
        """Only the moved vertices, over an implicit all-zero accessor."""
        moved = np.flatnonzero(np.abs(delta).sum(axis=1)).astype(np.uint32)
        accessors.append({"componentType": FLOAT, "type": "VEC3", "count": len(delta), "sparse": {
            "count": len(moved), "indices": {"bufferView": view(moved), "componentType": UINT32},
            "values": {"bufferView": view(delta[moved])}}})
        return len(accessors) - 1

    primitive = {"attributes": {"POSITION": accessor(np.asarray(vertices, np.float32), FLOAT, "VEC3")},
                 "indices": accessor(np.asarray(faces, np.uint32).ravel(), UINT32, "SCALAR")}
    mesh = {"primitives": [primitive]}
    if targets:
        deltas = [np.asarray(d, dtype=np.float32) for d in targets.values()]
        primitive["targets"] = [{"POSITION": sparse_accessor(d) if sparse else accessor(d, FLOAT, "VEC3")}
                                for d in deltas]
        mesh["extras"] = {"targetNames": list(targets)}
    node = {"name": "face", "mesh": 0, "translation": list(translation), "scale": [scale] * 3}
    document = {"asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [node],
                "meshes": [mesh], "accessors": accessors, "bufferViews": views,
                "buffers": [{"byteLength": len(blob)}]}
    if path.suffix == ".gltf":
        encoded = base64.b64encode(blob).decode()
        document["buffers"][0]["uri"] = "data:application/octet-stream;base64," + encoded
        path.write_text(json.dumps(document))
        return path
    path.write_bytes(pack_glb(document, bytes(blob)))
    return path


def sphere_avatar(path, targets: dict[str, str]):
    """A GLB 'head' (an icosphere) whose morph targets carry the given names; each target opens
    the lower half ("jaw") or squashes the upper half ("blink")."""
    import trimesh
    sphere = trimesh.creation.icosphere(subdivisions=3)
    vertices = np.asarray(sphere.vertices, np.float32)
    moves = {"jaw": np.where(vertices[:, 1:2] < 0, [0.0, -0.6, 0.2], 0.0),
             "blink": np.where(vertices[:, 1:2] > 0.3, [0.0, -0.4, 0.0], 0.0)}
    return write_gltf(path, {name: moves[kind].astype(np.float32) for name, kind in targets.items()},
                      vertices=vertices, faces=np.asarray(sphere.faces))


def write_take(folder, stem: str, seconds: float = 2.5, seed: int = 40):
    """A speech wav and its Live Link Face CSV (same stem): an enrolment take as a user uploads it."""
    import soundfile as sf
    from core.face.export import export_curves
    clip = toy_clip(2, seed, seconds=seconds)
    wav, csv = folder / f"{stem}.wav", folder / f"{stem}.csv"
    sf.write(wav, clip.audio, 16000)
    export_curves(clip.blendshapes, csv)
    return wav, csv


def page_event(client, demo, elem_id: str, event: str, *data, timeout: float | None = None,
               warnings: list | None = None):
    """Call, as the page does, the event that component ``elem_id`` triggers (``"change"``,
    ``"click"`` ...), events that API clients are not offered included; same session as the
    client's other calls (its gr.State values carry over). Returns the outputs, like predict;
    the warnings the page showed meanwhile are added to ``warnings``."""
    ids = {block._id for block in demo.blocks.values() if getattr(block, "elem_id", None) == elem_id}
    fn_index = next(index for index, fn in demo.fns.items()
                    if any(target in ids and name == event for target, name in fn.targets))
    client.endpoints[fn_index].is_valid = True
    job = client.submit(*data, fn_index=fn_index)
    outputs = job.result(timeout=timeout)
    updates = job.communicator.updates          # every message of the event, the page's warnings included
    while warnings is not None and not updates.empty():
        log = getattr(updates.get_nowait(), "log", None)
        if log and log[1] == "warning":
            warnings.append(log[0])
    return outputs
