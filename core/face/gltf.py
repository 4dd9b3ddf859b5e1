"""Just enough of glTF 2.0 to read meshes, morph targets and animations (GLB or .gltf).

Written here rather than taken from trimesh because the default face (facecap.glb) is packed by
gltfpack with ``EXT_meshopt_compression`` (decoded with PyPI ``meshopt``) and
``KHR_mesh_quantization`` (integer positions that their node's transform scales back); the same
reader loads a user's own uncompressed GLB/glTF avatar. :mod:`core.face.mesh` bakes what it
reads into a :class:`~core.face.mesh.FaceMesh`.
"""
from __future__ import annotations

import base64
import contextlib
import json
import struct
from pathlib import Path

import numpy as np

from core.arkit import canonical_name, to_canonical

_COMPONENT_DTYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16,
                     5125: np.uint32, 5126: np.float32}
_TYPE_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
TRIANGLES = 4
_DRACO = "KHR_draco_mesh_compression"


@contextlib.contextmanager
def malformed_as_value_error(path: Path):
    """Report a file whose JSON points at missing or too-short data as a ValueError."""
    try:
        yield
    except (KeyError, IndexError, TypeError, struct.error) as err:
        raise ValueError(f"{path} is a malformed glTF file ({type(err).__name__}: {err})") from err


def weights_animation(gltf: "Gltf", fps: int) -> np.ndarray:
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


class Gltf:
    """Just enough of glTF 2.0 to read meshes, morph targets and animations.

    Handles GLB and .gltf (embedded data URIs or side files), interleaved and sparse
    accessors, normalised integers, and meshopt-compressed buffer views.
    """

    def __init__(self, path: Path, document: dict, buffers: list[bytes | None]):
        self.path, self.json, self._buffers = path, document, buffers
        self._views: dict[int, bytes] = {}

    @classmethod
    def open(cls, path: Path, side_files: bool = True) -> "Gltf":
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
