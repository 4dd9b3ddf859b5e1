"""The ARKit face rig: a neutral mesh plus one morph-target offset per ARKit-52 channel.

The default face is ``facecap.glb`` shipped inside the installed ``openfacefx`` package (read
from there, never copied into this repository). It is packed by gltfpack with
``EXT_meshopt_compression`` (decoded with PyPI ``meshopt``) and ``KHR_mesh_quantization``
(integer positions that their node's transform scales back), so this module reads glTF itself:
the same small reader also loads a user's own uncompressed GLB/glTF avatar, as long as its
morph targets carry ARKit names (``jawOpen``, ``eyeBlink_L``, ``EyeBlinkLeft`` ...).

Every primitive of the default scene is baked into one vertex array in world space, so eyes
and teeth that live in separate meshes come along; each keeps its name as a :class:`MeshPart`
so that a renderer can give it its own material.
"""
from __future__ import annotations

import base64
import contextlib
import functools
import json
import struct
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from core.arkit import ARKIT_NAMES, INDEX, NUM_BLENDSHAPES, canonical_name, to_canonical
from core.rates import FPS


_COMPONENT_DTYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16,
                     5125: np.uint32, 5126: np.float32}
_TYPE_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_TRIANGLES = 4
_DRACO = "KHR_draco_mesh_compression"


def default_face_path() -> Path:
    """Path of ``facecap.glb`` inside the installed ``openfacefx`` package."""
    try:
        asset = resources.files("openfacefx") / "studio_web" / "assets" / "facecap.glb"
    except ModuleNotFoundError as err:
        raise ValueError("the default face needs the PyPI package openfacefx (pip install "
                         "openfacefx==0.24.0), or pass the path of your own GLB") from err
    path = Path(str(asset))
    if not path.is_file():
        raise ValueError(f"facecap.glb not found in the openfacefx package at {path}")
    return path


@dataclass(frozen=True)
class MeshPart:
    """A named piece of the merged mesh (``head``, ``eyeLeft``, ``teeth`` ...)."""

    name: str
    vertices: slice
    faces: slice


@dataclass(frozen=True, eq=False)
class FaceMesh:
    """Neutral vertices, triangles and per-channel vertex offsets in canonical ARKit order.

    ``morph_deltas[i]`` is the displacement at full weight of ``ARKIT_NAMES[i]``; channels the
    rig lacks are all-zero and listed in ``missing``. Faces index the whole vertex array.
    """

    vertices: np.ndarray       # float32 [V, 3], neutral pose, world space
    faces: np.ndarray          # int32 [F, 3]
    morph_deltas: np.ndarray   # float32 [52, V, 3]
    missing: tuple[str, ...] = ()
    parts: tuple[MeshPart, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.vertices)
        if self.vertices.shape != (n, 3) or self.morph_deltas.shape != (NUM_BLENDSHAPES, n, 3):
            raise ValueError(f"vertices {self.vertices.shape} and morph_deltas "
                             f"{self.morph_deltas.shape} do not describe one mesh")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces must be [F, 3], got {self.faces.shape}")
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= n):
            raise ValueError(f"faces index vertices outside 0..{n - 1}")

    def deform(self, weights: np.ndarray) -> np.ndarray:
        """Vertices [V, 3] for one frame of 52 weights (linear blendshape model)."""
        return self.deform_sequence(np.asarray(weights, dtype=np.float32)[None])[0]

    def deform_sequence(self, weights: np.ndarray) -> np.ndarray:
        """Vertices [T, V, 3] for weights [T, 52]: one matrix product for the whole clip."""
        weights = np.asarray(weights, dtype=np.float32)
        if weights.ndim != 2 or weights.shape[1] != NUM_BLENDSHAPES:
            raise ValueError(f"weights must be [T, {NUM_BLENDSHAPES}], got {weights.shape}")
        offsets = weights @ self.morph_deltas.reshape(NUM_BLENDSHAPES, -1)
        return self.vertices[None] + offsets.reshape(len(weights), -1, 3)

    @property
    def animated_vertices(self) -> np.ndarray:
        """Boolean [V]: vertices that at least one ARKit channel moves (the face region)."""
        return np.abs(self.morph_deltas).max(axis=(0, 2)) > 0

    def welded_positions(self) -> np.ndarray:
        """Int [V]: one id per position within a part, shared by the copies of a vertex that
        UV seams split (for :func:`vertex_normals`, so seams do not show in the shading)."""
        part_of = np.zeros(len(self.vertices))
        for i, part in enumerate(self.parts):
            part_of[part.vertices] = i
        extent = float(np.ptp(self.vertices, axis=0).max()) or 1.0
        keys = np.column_stack([part_of, np.round(self.vertices / extent * 1e5)])
        _, weld = np.unique(keys, axis=0, return_inverse=True)
        return weld.ravel()


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, weld: np.ndarray | None = None) -> np.ndarray:
    """Area-weighted unit vertex normals, float32 [V, 3] (+Z where no triangle gives one).

    With ``weld`` (a position id per vertex, :meth:`FaceMesh.welded_positions`) the vertices
    sharing an id share the normal summed over all their triangles.
    """
    ids = np.arange(len(vertices)) if weld is None else np.asarray(weld)
    corners = np.asarray(vertices, np.float64)[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    corner_ids, per_corner = ids[faces].ravel(), np.repeat(face_normals, 3, axis=0)
    size = int(ids.max()) + 1 if len(ids) else 0
    summed = np.stack([np.bincount(corner_ids, per_corner[:, k], size) for k in range(3)], axis=1)[ids]
    length = np.linalg.norm(summed, axis=1, keepdims=True)
    return np.where(length > 0, summed / np.maximum(length, 1e-30), [0.0, 0.0, 1.0]).astype(np.float32)


def load_face_mesh(path: str | Path | None = None, *, side_files: bool = True) -> FaceMesh:
    """Load an ARKit-rigged face from a GLB/glTF file (default: openfacefx's facecap.glb).

    Decoded meshes are cached in memory per file version, and their arrays are read-only.
    Raises ``ValueError`` for a file that is not glTF or has no ARKit-named morph targets.
    ``side_files=False`` (for uploads: a file is data only) refuses a .gltf whose buffers
    point at other files instead of reading them.
    """
    path = Path(path) if path is not None else default_face_path()
    if not path.is_file():
        raise ValueError(f"face mesh file not found: {path}")
    stat = path.stat()
    return _load_face_mesh_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size, side_files)


def load_reference_animation(path: str | Path | None = None, fps: int = FPS) -> np.ndarray:
    """The ARKit weight animation stored in a GLB, resampled to ``fps``: float32 [T, 52].

    facecap.glb holds an 11.2 s real face capture (no audio): a prior for blink and brow
    statistics. Channels the animated rig lacks stay 0. Raises ``ValueError`` if the file has
    no morph-weight animation with ARKit names.
    """
    gltf = _Gltf.open(Path(path) if path is not None else default_face_path())
    with _malformed_as_value_error(gltf.path):
        return _weights_animation(gltf, fps)


def _weights_animation(gltf: "_Gltf", fps: int) -> np.ndarray:
    for animation in gltf.json.get("animations", []):
        for channel in animation["channels"]:
            target = channel["target"]
            if target.get("path") != "weights" or "node" not in target:
                continue
            mesh_index = gltf.json["nodes"][target["node"]].get("mesh")
            names = gltf.target_names(mesh_index) if mesh_index is not None else []
            if not any(canonical_name(n) for n in names):
                continue
            sampler = animation["samplers"][channel["sampler"]]
            times = gltf.accessor(sampler["input"]).ravel()
            values = gltf.accessor(sampler["output"]).reshape(len(times), -1, len(names))
            # CUBICSPLINE stores (in-tangent, value, out-tangent) per key: keep the values.
            values = values[:, 1] if sampler.get("interpolation") == "CUBICSPLINE" else values[:, 0]
            step = sampler.get("interpolation") == "STEP"
            return to_canonical(_resample(times, values, fps, step), names, require_all=False)
    raise ValueError(f"{gltf.path} has no morph-weight animation with ARKit target names")


def _resample(times: np.ndarray, values: np.ndarray, fps: int, step: bool) -> np.ndarray:
    """Keyframes -> a uniform ``fps`` grid from the first key to the last."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    n_frames = int(np.floor((times[-1] - times[0]) * fps + 1e-6)) + 1
    grid = times[0] + np.arange(n_frames) / fps
    if step:
        keys = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, len(times) - 1)
        return values[keys].astype(np.float32)
    return np.stack([np.interp(grid, times, column) for column in values.T], axis=1).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _load_face_mesh_cached(path: str, mtime_ns: int, size: int, side_files: bool = True) -> FaceMesh:
    """Decode once per (path, modification time, size); the key makes edits reload."""
    gltf = _Gltf.open(Path(path), side_files=side_files)
    with _malformed_as_value_error(gltf.path):
        return _face_mesh(gltf)


@contextlib.contextmanager
def _malformed_as_value_error(path: Path):
    """Report a file whose JSON points at missing or too-short data as a ValueError."""
    try:
        yield
    except (KeyError, IndexError, TypeError, struct.error) as err:
        raise ValueError(f"{path} is a malformed glTF file ({type(err).__name__}: {err})") from err


def _face_mesh(gltf: "_Gltf") -> FaceMesh:
    """Every triangle primitive of the default scene, baked into world space and merged."""
    vertices, faces, deltas, parts, found = [], [], [], [], set()
    n_vertices = n_faces = 0
    for node, world in gltf.mesh_nodes():
        mesh_index = gltf.json["nodes"][node]["mesh"]
        names = gltf.target_names(mesh_index)
        primitives = [p for p in gltf.json["meshes"][mesh_index]["primitives"]
                      if p.get("mode", _TRIANGLES) == _TRIANGLES]
        for k, primitive in enumerate(primitives):
            positions = gltf.accessor(primitive["attributes"]["POSITION"]).astype(np.float64)
            count = len(positions)
            index = primitive.get("indices")
            triangles = (gltf.accessor(index).ravel() if index is not None
                         else np.arange(count)).astype(np.int64).reshape(-1, 3)
            part_deltas = np.zeros((NUM_BLENDSHAPES, count, 3))
            for target, name in zip(primitive.get("targets", []), names):
                canon = canonical_name(name)
                if canon is None or "POSITION" not in target:
                    continue
                part_deltas[INDEX[canon]] = gltf.accessor(target["POSITION"])
                found.add(canon)
            vertices.append(positions @ world[:3, :3].T + world[:3, 3])
            deltas.append(part_deltas @ world[:3, :3].T)
            faces.append(triangles + n_vertices)
            name = gltf.node_label(node) + (f".{k}" if len(primitives) > 1 else "")
            parts.append(MeshPart(name, slice(n_vertices, n_vertices + count),
                                  slice(n_faces, n_faces + len(triangles))))
            n_vertices += count
            n_faces += len(triangles)
    if not vertices:
        raise ValueError(f"{gltf.path} contains no triangle mesh")
    if not found:
        raise ValueError(f"{gltf.path} has no morph targets with ARKit names (jawOpen, eyeBlinkLeft "
                         "or eyeBlink_L ...): it cannot be driven by ARKit-52 curves")
    mesh = FaceMesh(
        vertices=np.concatenate(vertices).astype(np.float32),
        faces=np.concatenate(faces).astype(np.int32),
        morph_deltas=np.concatenate(deltas, axis=1).astype(np.float32),
        missing=tuple(n for n in ARKIT_NAMES if n not in found),
        parts=tuple(parts),
    )
    for array in (mesh.vertices, mesh.faces, mesh.morph_deltas):
        array.setflags(write=False)  # shared by every caller of the cache
    return mesh


class _Gltf:
    """Just enough of glTF 2.0 to read meshes, morph targets and animations.

    Handles GLB and .gltf (embedded data URIs or side files), interleaved and sparse
    accessors, normalised integers, and meshopt-compressed buffer views.
    """

    def __init__(self, path: Path, document: dict, buffers: list[bytes | None]):
        self.path, self.json, self._buffers = path, document, buffers
        self._views: dict[int, bytes] = {}

    @classmethod
    def open(cls, path: Path, side_files: bool = True) -> "_Gltf":
        if not path.is_file():
            raise ValueError(f"glTF file not found: {path}")
        data = path.read_bytes()
        binary_chunk = None
        if data[:4] == b"glTF":
            if len(data) < 20:
                raise ValueError(f"{path} is a truncated GLB")
            json_length, _ = struct.unpack_from("<II", data, 12)
            document_bytes = data[20:20 + json_length]
            if len(data) >= 28 + json_length:
                bin_length, _ = struct.unpack_from("<II", data, 20 + json_length)
                binary_chunk = data[28 + json_length:28 + json_length + bin_length]
        else:
            document_bytes = data
        try:
            document = json.loads(document_bytes)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} is neither a GLB nor a glTF JSON file") from err
        asset = document.get("asset") if isinstance(document, dict) else None
        if not isinstance(asset, dict) or not str(asset.get("version", "")).startswith("2"):
            raise ValueError(f"{path} is not a glTF 2.0 file")
        draco = _DRACO in document.get("extensionsUsed", []) + document.get("extensionsRequired", [])
        if draco:
            raise ValueError(f"{path.name} is Draco-compressed ({_DRACO}), which this reader does not decode: "
                             "export it without Draco (meshopt compression or none works)")
        buffers = [cls._buffer_bytes(path, buffer, binary_chunk if i == 0 else None, side_files)
                   for i, buffer in enumerate(document.get("buffers", []))]
        return cls(path, document, buffers)

    @staticmethod
    def _buffer_bytes(path: Path, buffer: dict, binary_chunk: bytes | None, side_files: bool) -> bytes | None:
        uri = buffer.get("uri")
        if uri is None:
            return binary_chunk  # GLB chunk, or a meshopt fallback buffer with no data (None)
        if uri.startswith("data:"):
            return base64.b64decode(uri.split(",", 1)[1])
        if not side_files:
            raise ValueError(f"{path.name} keeps its data in another file ({uri[:60]}): use a .glb, "
                             "or a .gltf with the data embedded")
        side_file = path.parent / uri
        if not side_file.is_file():
            raise ValueError(f"{path} refers to a missing buffer file {side_file}")
        return side_file.read_bytes()

    def view(self, index: int) -> bytes:
        """A buffer view's bytes, decoding EXT_meshopt_compression where present."""
        if index not in self._views:
            view = self.json["bufferViews"][index]
            compressed = view.get("extensions", {}).get("EXT_meshopt_compression")
            if compressed is not None:
                import meshopt  # only compressed files need it

                source = self._slice(compressed)
                decoded = meshopt.decode_gltf_buffer(source, compressed["count"], compressed["byteStride"],
                                                     compressed.get("mode", "ATTRIBUTES"),
                                                     compressed.get("filter", "NONE"))
                self._views[index] = np.ascontiguousarray(decoded).tobytes()
            else:
                self._views[index] = self._slice(view)
        return self._views[index]

    def _slice(self, view: dict) -> bytes:
        data = self._buffers[view["buffer"]]
        if data is None:
            raise ValueError(f"{self.path}: buffer {view['buffer']} has no data")
        start = view.get("byteOffset", 0)
        return data[start:start + view["byteLength"]]

    def accessor(self, index: int) -> np.ndarray:
        """An accessor as an array [count, width] (float32 if normalised, else its own type)."""
        accessor = self.json["accessors"][index]
        dtype = np.dtype(_COMPONENT_DTYPES[accessor["componentType"]]).newbyteorder("<")
        width, count = _TYPE_WIDTHS[accessor["type"]], accessor["count"]
        if "bufferView" in accessor:
            data = self.view(accessor["bufferView"])
            view = self.json["bufferViews"][accessor["bufferView"]]
            stride = view.get("byteStride") or width * dtype.itemsize
            offset = accessor.get("byteOffset", 0)
            if count and offset + (count - 1) * stride + width * dtype.itemsize > len(data):
                raise ValueError(f"{self.path}: accessor {index} runs past the end of its data")
            rows = np.ndarray((count, width), dtype=dtype, buffer=data, offset=offset,
                              strides=(stride, dtype.itemsize))
            values = rows.copy()
        else:
            values = np.zeros((count, width), dtype=dtype)
        sparse = accessor.get("sparse")
        if sparse is not None:
            values[self._sparse_part(sparse["indices"], sparse["count"], 1).ravel()] = \
                self._sparse_part(sparse["values"], sparse["count"], width, dtype)
        if accessor.get("normalized"):
            scale = float(np.iinfo(dtype).max)
            return np.maximum(values / scale, -1.0).astype(np.float32)
        return values

    def _sparse_part(self, part: dict, count: int, width: int, dtype=None) -> np.ndarray:
        dtype = np.dtype(dtype or _COMPONENT_DTYPES[part["componentType"]]).newbyteorder("<")
        data = self.view(part["bufferView"])
        return np.frombuffer(data, dtype=dtype, count=count * width,
                             offset=part.get("byteOffset", 0)).reshape(count, width)

    def target_names(self, mesh_index: int) -> list[str]:
        """Morph target names: ``mesh.extras.targetNames`` (the de-facto convention)."""
        mesh = self.json["meshes"][mesh_index]
        names = mesh.get("extras", {}).get("targetNames")
        if names is None:
            names = mesh["primitives"][0].get("extras", {}).get("targetNames", [])
        return list(names)

    def node_label(self, node: int) -> str:
        """A node's name, else its nearest named ancestor's, else its mesh's, else node<i>."""
        nodes = self.json["nodes"]
        parents = {child: i for i, n in enumerate(nodes) for child in n.get("children", [])}
        current = node
        while current is not None:
            if nodes[current].get("name"):
                return nodes[current]["name"]
            current = parents.get(current)
        mesh = self.json["meshes"][nodes[node]["mesh"]]
        return mesh.get("name") or f"node{node}"

    def mesh_nodes(self) -> list[tuple[int, np.ndarray]]:
        """(node index, world matrix 4x4) for every mesh node of the default scene."""
        nodes = self.json.get("nodes", [])
        scenes = self.json.get("scenes", [])
        if scenes:
            roots = scenes[self.json.get("scene", 0)].get("nodes", [])
        else:
            children = {c for n in nodes for c in n.get("children", [])}
            roots = [i for i in range(len(nodes)) if i not in children]
        found, stack = [], [(root, np.eye(4)) for root in reversed(roots)]
        while stack:
            index, parent = stack.pop()
            world = parent @ _local_matrix(nodes[index])
            if "mesh" in nodes[index]:
                found.append((index, world))
            stack.extend((child, world) for child in reversed(nodes[index].get("children", [])))
        return found


def _local_matrix(node: dict) -> np.ndarray:
    """A node's local transform: its ``matrix`` or translation * rotation * scale."""
    if "matrix" in node:
        return np.asarray(node["matrix"], dtype=np.float64).reshape(4, 4).T  # column-major
    x, y, z, w = node.get("rotation", (0.0, 0.0, 0.0, 1.0))
    rotation = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * np.asarray(node.get("scale", (1.0, 1.0, 1.0)))
    matrix[:3, 3] = node.get("translation", (0.0, 0.0, 0.0))
    return matrix
