"""The animated-GLB head: the face mesh with its 52 morph targets, a weights animation and the
head's rotation.

Written by :func:`glb_writer` (through :func:`core.face.export.export_curves`), read back by
:func:`read_glb_weights`. glTF 2.0: morph targets are per-primitive ``targets``; their names
go in ``mesh.extras.targetNames`` (the convention Blender, three.js and Babylon read); an
animation channel with path "weights" has an output of T * 52 floats for T key times. Morph
offsets are stored as sparse accessors (only the moved vertices).

The mesh is skinned to two joints, "root" and its child "head" at the mesh's neck pivot, each
vertex weighted by its head share (:attr:`core.face.mesh.FaceMesh.head_weights`): the head
turns as in the mp4 and the browser, a body stays, and Unreal (morph targets only on skeletal
meshes) and Blender import an armature to retarget. With a head, a second LINEAR channel
animates the "head" joint's ``rotation`` (quaternions, :func:`core.head_pose.quaternions`).
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from core.arkit import ARKIT_NAMES, NUM_BLENDSHAPES, canonical_name, to_canonical
from core.head_pose import angles_from_quaternions, quaternions, still
from core.rates import FPS

_FLOAT, _UINT, _UBYTE = 5126, 5125, 5121
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def read_glb_weights(path: str | Path) -> tuple[np.ndarray, np.ndarray, float]:
    """The first morph-weight animation of a GLB/glTF as ``(float32 [T, 52], head [T, 3] radians, fps)``.

    Channels are mapped through the mesh's ``targetNames``; channels the rig lacks stay 0.
    Keys on a uniform grid (as :func:`glb_writer` writes them) come back exactly; other key
    times are resampled to their median rate. The head is the rotation animation of the rig's
    head bone (:func:`core.face.mesh.head_joint`) at the same times, zeros without one. No
    weight animation raises ``ValueError``.
    """
    from core.face.gltf import Gltf
    from core.face.mesh import head_joint, load_reference_animation

    gltf = Gltf.open(Path(path))
    for animation in gltf.json.get("animations", []):
        for channel in animation.get("channels", []):
            target = channel.get("target", {})
            mesh = gltf.json["nodes"][target["node"]].get("mesh") if "node" in target else None
            if target.get("path") != "weights" or mesh is None:
                continue
            names = gltf.target_names(mesh)
            if not any(canonical_name(n) for n in names):
                continue
            sampler = animation["samplers"][channel["sampler"]]
            times = gltf.accessor(sampler["input"]).astype(np.float64).ravel()
            fps = 1.0 / float(np.median(np.diff(times))) if len(times) > 1 else float(FPS)
            fps = float(round(fps)) if abs(fps - round(fps)) < 1e-3 * fps else fps
            on_grid = np.allclose(times, times[0] + np.arange(len(times)) / fps, rtol=0, atol=1e-4)
            if not on_grid or sampler.get("interpolation", "LINEAR") != "LINEAR":
                curves = load_reference_animation(path, fps=fps)
                return curves, still(len(curves)), fps
            values = gltf.accessor(sampler["output"])
            if values.size != len(times) * len(names):
                raise ValueError(f"{Path(path).name}: the weight animation has {values.size} values "
                                 f"for {len(times)} keys of {len(names)} morph targets")
            values = values.reshape(len(times), len(names))
            head = _head_rotation(gltf, animation, head_joint(gltf), times)
            return to_canonical(values, names, require_all=False), head, fps
    raise ValueError(f"{Path(path).name} has no morph-weight animation with ARKit target names")


def _head_rotation(gltf, animation: dict, joint: int | None, times: np.ndarray) -> np.ndarray:
    """Radians [len(times), 3] of ``joint``'s rotation channel in ``animation``, at ``times``
    (linear between keys; zeros without such a channel)."""
    for channel in animation.get("channels", []):
        target = channel.get("target", {})
        if joint is None or target.get("node") != joint or target.get("path") != "rotation":
            continue
        sampler = animation["samplers"][channel["sampler"]]
        keys = gltf.accessor(sampler["input"]).astype(np.float64).ravel()
        rotations = gltf.accessor(sampler["output"]).astype(np.float64)
        if rotations.shape != (len(keys), 4) or not len(keys) or not np.isfinite(rotations).all():
            raise ValueError(f"{gltf.path.name}: the head's rotation animation is not one quaternion per key")
        angles = angles_from_quaternions(rotations)
        return np.stack([np.interp(times, keys, a) for a in angles.T], axis=1).astype(np.float32)
    return still(len(times))


def glb_writer(curves: np.ndarray, head: np.ndarray | None, fps: float, face) -> Callable[[BinaryIO], None]:
    from core.face.mesh import FaceMesh, load_face_mesh, vertex_normals

    mesh = face if isinstance(face, FaceMesh) else load_face_mesh(face)
    buffer = _GlbBuffer()
    targets = [{"POSITION": buffer.sparse_vec3(deltas)} for deltas in mesh.morph_deltas]
    share = np.ones(len(mesh.vertices), np.float32) if mesh.head_weights is None else mesh.head_weights
    primitive = {
        "attributes": {"POSITION": buffer.vec3(mesh.vertices),
                       "NORMAL": buffer.vec3(vertex_normals(mesh.vertices, mesh.faces)),
                       # joint 0 "root" holds the body, joint 1 "head" what turns with the head
                       "JOINTS_0": buffer.accessor(np.tile(np.array([0, 1, 0, 0], np.uint8), (len(share), 1)),
                                                   _UBYTE, "VEC4", target=_ARRAY_BUFFER),
                       "WEIGHTS_0": buffer.accessor(np.stack([1 - share, share] + [np.zeros_like(share)] * 2, axis=1),
                                                    _FLOAT, "VEC4", target=_ARRAY_BUFFER)},
        "indices": buffer.accessor(mesh.faces.astype(np.uint32).ravel(), _UINT, "SCALAR",
                                   target=_ELEMENT_ARRAY_BUFFER),
        "material": 0,
        "targets": targets,
    }
    unbind = np.tile(np.eye(4, dtype=np.float32), (2, 1, 1))
    unbind[1, 3, :3] = -mesh.head_pivot                # elements 12-14: the translation, as glTF stores it (column-major)
    times = (np.arange(len(curves)) / fps).astype(np.float32)
    samplers = [{"input": buffer.accessor(times, _FLOAT, "SCALAR", bounds=True),
                 "output": buffer.accessor(curves.ravel(), _FLOAT, "SCALAR"), "interpolation": "LINEAR"}]
    channels = [{"sampler": 0, "target": {"node": 0, "path": "weights"}}]
    if head is not None:
        rotations = quaternions(head)
        # q and -q are one rotation: keep neighbours on one side, so that slerp takes the short way
        flipped = np.concatenate([[0], np.cumsum(np.sum(rotations[1:] * rotations[:-1], axis=1) < 0) % 2])
        rotations[flipped == 1] *= -1
        samplers.append({"input": samplers[0]["input"], "interpolation": "LINEAR",
                         "output": buffer.accessor(rotations.astype(np.float32), _FLOAT, "VEC4")})
        channels.append({"sampler": 1, "target": {"node": 2, "path": "rotation"}})
    document = {
        "asset": {"version": "2.0", "generator": "DiffusionTalker core.face.export"},
        "scene": 0,
        "scenes": [{"nodes": [0, 1]}],
        "nodes": [{"name": "face", "mesh": 0, "skin": 0},
                  {"name": "root", "children": [2]},
                  {"name": "head", "translation": [float(v) for v in mesh.head_pivot]}],
        "skins": [{"joints": [1, 2], "skeleton": 1,
                   "inverseBindMatrices": buffer.accessor(unbind.reshape(2, 16), _FLOAT, "MAT4")}],
        "meshes": [{"name": "face", "primitives": [primitive], "weights": [0.0] * NUM_BLENDSHAPES,
                    "extras": {"targetNames": list(ARKIT_NAMES)}}],
        "materials": [{"name": "skin", "pbrMetallicRoughness": {
            "baseColorFactor": [0.8, 0.66, 0.58, 1.0], "metallicFactor": 0.0, "roughnessFactor": 0.6}}],
        "animations": [{"name": "ARKit", "samplers": samplers, "channels": channels}],
    }
    return lambda f: f.write(buffer.glb(document))


class _GlbBuffer:
    """Collects binary data, buffer views and accessors for one GLB file."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, array: np.ndarray, target: int | None = None) -> int:
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        view = {"buffer": 0, "byteOffset": self.size, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        padded = data + b"\0" * (-len(data) % 4)
        self.chunks.append(padded)
        self.size += len(padded)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, component: int, kind: str, *, target: int | None = None,
                 bounds: bool = False) -> int:
        rows = array.reshape(len(array), -1)
        accessor = {"bufferView": self.view(array, target), "componentType": component,
                    "count": len(rows), "type": kind}
        if bounds:
            accessor["min"], accessor["max"] = rows.min(axis=0).tolist(), rows.max(axis=0).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1

    def vec3(self, array: np.ndarray) -> int:
        return self.accessor(array.astype(np.float32), _FLOAT, "VEC3", target=_ARRAY_BUFFER, bounds=True)

    def sparse_vec3(self, deltas: np.ndarray) -> int:
        """Morph offsets as a sparse accessor: only the moved vertices are stored."""
        deltas = deltas.astype(np.float32)
        moved = np.flatnonzero(np.any(deltas != 0, axis=1)).astype(np.uint32)
        accessor = {"componentType": _FLOAT, "count": len(deltas), "type": "VEC3",
                    "min": deltas.min(axis=0).tolist(), "max": deltas.max(axis=0).tolist()}
        if len(moved):
            accessor["sparse"] = {"count": len(moved),
                                  "indices": {"bufferView": self.view(moved), "componentType": _UINT},
                                  "values": {"bufferView": self.view(deltas[moved])}}
        self.accessors.append(accessor)
        return len(self.accessors) - 1

    def glb(self, document: dict) -> bytes:
        binary = b"".join(self.chunks)
        document = {**document, "buffers": [{"byteLength": len(binary)}],
                    "bufferViews": self.views, "accessors": self.accessors}
        return pack_glb(document, binary)


def pack_glb(document: dict | bytes, binary: bytes) -> bytes:
    """A GLB file: the glTF JSON ``document`` (or its text) and one binary chunk (``binary``, padded to 4 bytes)."""
    text = document if isinstance(document, bytes) else json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return b"".join([struct.pack("<4sII", b"glTF", 2, total),
                     struct.pack("<I4s", len(text), b"JSON"), text,
                     struct.pack("<I4s", len(binary), b"BIN\0"), binary])
