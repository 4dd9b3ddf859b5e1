"""Just enough of glTF 2.0 to read meshes, morph targets and animations (GLB or .gltf).

Written here rather than taken from trimesh because the default face (facecap.glb) is packed by
gltfpack with ``EXT_meshopt_compression`` (decoded with PyPI ``meshopt``) and
``KHR_mesh_quantization`` (integer positions that their node's transform scales back); the same
reader loads a user's own uncompressed GLB/glTF avatar. :mod:`core.face.mesh` bakes what it
reads into a :class:`~core.face.mesh.FaceMesh`. Uploads come from strangers: the document is
checked on opening (:mod:`core.face.gltf_check`) and what reading it may cost is bounded by
:class:`Limits`, each count checked from the header before anything is allocated.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.arkit import canonical_name, to_canonical
from core.face.gltf_check import COMPONENT_DTYPES, TYPE_WIDTHS, check_document

TRIANGLES = 4
_DRACO = "KHR_draco_mesh_compression"
_GLB_JSON, _GLB_BIN = 0x4E4F534A, 0x004E4942


@dataclass(frozen=True)
class Limits:
    """What reading one file may cost (None: no limit). Every count and size in a file's header is
    checked against these, and against the data actually present, before anything is allocated."""

    nodes: int | None = None           # nodes in the file
    vertices: int | None = None        # mesh vertices over every instance of every mesh in the scene
    parts: int | None = None           # mesh primitives over every instance
    decoded_bytes: int | None = None   # accessors read and compressed buffer views decoded, in all
    json_items: int | None = None      # JSON objects, arrays and list items (each costs memory once parsed)


NO_LIMITS = Limits()


@contextlib.contextmanager
def malformed_as_value_error(path: Path):
    """Report a file whose JSON points at missing or too-short data as a ValueError."""
    try:
        yield
    except (KeyError, IndexError, TypeError, AttributeError, struct.error, OverflowError) as err:
        raise ValueError(f"{path.name} is a malformed glTF file ({type(err).__name__}: {err})") from None


def _split_glb(path: Path, data: bytes) -> tuple[bytes, bytes | None]:
    """(JSON text, binary chunk or None) of a GLB; a .gltf is all JSON."""
    if data[:4] != b"glTF":
        return data, None
    if len(data) < 20:
        raise ValueError(f"{path.name} is a truncated GLB")
    json_length, json_type = struct.unpack_from("<II", data, 12)
    if json_type != _GLB_JSON or 20 + json_length > len(data):
        raise ValueError(f"{path.name} is a truncated or damaged GLB (its JSON chunk does not fit the file)")
    binary_chunk = None
    if len(data) >= 28 + json_length:
        bin_length, bin_type = struct.unpack_from("<II", data, 20 + json_length)
        if bin_type == _GLB_BIN:
            binary_chunk = data[28 + json_length:28 + json_length + bin_length]
    return data[20:20 + json_length], binary_chunk


def _parse_json(path: Path, text: bytes, limits: Limits) -> dict:
    if limits.json_items is not None:     # counted on the bytes, before parsing builds the objects
        items = text.count(b"{") + text.count(b"[") + text.count(b",")
        if items > limits.json_items:
            raise ValueError(f"{path.name} has a JSON part of about {items:,} items; at most "
                             f"{limits.json_items:,} are read")
    try:
        document = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path.name} is neither a GLB nor a glTF JSON file") from err
    except RecursionError:
        raise ValueError(f"{path.name}: its JSON is nested too deeply to be a glTF file") from None
    asset = document.get("asset") if isinstance(document, dict) else None
    if not isinstance(asset, dict) or not str(asset.get("version", "")).startswith("2"):
        raise ValueError(f"{path.name} is not a glTF 2.0 file")
    return document


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
    accessors, normalised integers, and meshopt-compressed buffer views. The document's
    structure (the type of every field read, indices in range, a node graph that is a forest,
    finite transforms) is checked when the file is opened; every count and size is checked
    against the data and against ``limits`` before anything is allocated.
    """

    def __init__(self, path: Path, document: dict, buffers: list[bytes | None], limits: Limits = NO_LIMITS,
                 parents: dict[int, int] | None = None):
        self.path, self.json, self._buffers, self.limits = path, document, buffers, limits
        self._views: dict[int, memoryview] = {}
        self._spent = 0                  # bytes decoded so far (limits.decoded_bytes)
        self._ancestors: dict[int, int | None] = {}     # node -> its nearest named node (node_label)
        # node -> its parent (raises for a malformed document)
        self.parents = check_document(document) if parents is None else parents

    @classmethod
    def open(cls, path: Path, side_files: bool = True, limits: Limits = NO_LIMITS) -> "Gltf":
        if not path.is_file():
            raise ValueError(f"glTF file not found: {path}")
        data = path.read_bytes()
        with malformed_as_value_error(path):
            document_bytes, binary_chunk = _split_glb(path, data)
            document = _parse_json(path, document_bytes, limits)
            nodes = document.get("nodes")
            if limits.nodes is not None and isinstance(nodes, list) and len(nodes) > limits.nodes:
                raise ValueError(f"{path.name} has {len(nodes):,} nodes; at most {limits.nodes:,} are read")
            try:
                parents = check_document(document)
            except ValueError as err:
                raise ValueError(f"{path.name} is a malformed glTF file: {err}") from None
            used = document.get("extensionsUsed", []) + document.get("extensionsRequired", [])
            if _DRACO in used:
                raise ValueError(f"{path.name} is Draco-compressed ({_DRACO}), which this reader does not decode: "
                                 "export it without Draco (meshopt compression or none works)")
            buffers = [cls._buffer_bytes(path, buffer, binary_chunk if i == 0 else None, side_files)
                       for i, buffer in enumerate(document.get("buffers", []))]
            return cls(path, document, buffers, limits, parents)

    @staticmethod
    def _buffer_bytes(path: Path, buffer: dict, binary_chunk: bytes | None, side_files: bool) -> bytes | None:
        uri = buffer.get("uri")
        if uri is None:
            return binary_chunk  # GLB chunk, or a meshopt fallback buffer with no data (None)
        if uri.startswith("data:"):
            header, comma, text = uri.partition(",")
            if not comma or not header.endswith(";base64"):
                raise ValueError(f"{path.name} has a data URI that is not base64 data ({uri[:40]}...)")
            try:
                return base64.b64decode(text)
            except binascii.Error as err:
                raise ValueError(f"{path.name} has a data URI whose base64 data is damaged ({err})") from None
        if not side_files:
            raise ValueError(f"{path.name} keeps its data in another file ({uri[:60]}): use a .glb, "
                             "or a .gltf with the data embedded")
        side_file = path.parent / uri
        if not side_file.is_file():
            raise ValueError(f"{path} refers to a missing buffer file {side_file}")
        return side_file.read_bytes()

    def _spend(self, size: int, what: str) -> None:
        """Count ``size`` bytes about to be allocated against ``limits.decoded_bytes``."""
        self._spent += size
        budget = self.limits.decoded_bytes
        if budget is not None and self._spent > budget:
            raise ValueError(f"{self.path.name} needs more than {budget / 2 ** 20:.0f} MB of decoded data "
                             f"({what} alone is {size / 2 ** 20:.1f} MB)")

    def view(self, index: int) -> memoryview:
        """A buffer view's bytes, decoding EXT_meshopt_compression where present."""
        if index not in self._views:
            view = self.json["bufferViews"][index]
            compressed = view.get("extensions", {}).get("EXT_meshopt_compression")
            if compressed is not None:
                import meshopt  # only compressed files need it

                count, stride = compressed["count"], compressed["byteStride"]
                self._spend(count * stride, f"compressed buffer view {index} ({count:,} rows of {stride} bytes)")
                decoded = meshopt.decode_gltf_buffer(self._slice(compressed), count, stride,
                                                     compressed.get("mode", "ATTRIBUTES"),
                                                     compressed.get("filter", "NONE"))
                self._views[index] = memoryview(np.ascontiguousarray(decoded)).cast("B")
            else:
                self._views[index] = self._slice(view)
        return self._views[index]

    def _slice(self, view: dict) -> memoryview:
        data = self._buffers[view["buffer"]]
        if data is None:
            raise ValueError(f"{self.path.name}: buffer {view['buffer']} has no data")
        start, length = view.get("byteOffset", 0), view["byteLength"]
        if start + length > len(data):
            raise ValueError(f"{self.path.name}: a buffer view runs past the end of its buffer "
                             f"({start + length:,} > {len(data):,} bytes)")
        return memoryview(data)[start:start + length]

    def accessor_count(self, index: int) -> int:
        """An accessor's element count, from the header (nothing is read)."""
        return self.json["accessors"][index]["count"]

    def accessor(self, index: int) -> np.ndarray:
        """An accessor as an array [count, width] (float32 if normalised, else its own type)."""
        accessor = self.json["accessors"][index]
        dtype = np.dtype(COMPONENT_DTYPES[accessor["componentType"]]).newbyteorder("<")
        width, count = TYPE_WIDTHS[accessor["type"]], accessor["count"]
        self._spend(count * width * dtype.itemsize, f"accessor {index} ({count:,} x {accessor['type']})")
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
            if sparse["count"] > count:
                raise ValueError(f"{self.path.name}: accessor {index} replaces {sparse['count']:,} of its "
                                 f"{count:,} elements")
            at = self._sparse_part(sparse["indices"], sparse["count"], 1).ravel()
            if len(at) and int(at.max()) >= count:
                raise ValueError(f"{self.path.name}: accessor {index}'s sparse indices go past its {count:,} elements")
            values[at] = self._sparse_part(sparse["values"], sparse["count"], width, dtype)
        if accessor.get("normalized"):
            scale = float(np.iinfo(dtype).max)
            return np.maximum(values / scale, -1.0).astype(np.float32)
        return values

    def _sparse_part(self, part: dict, count: int, width: int, dtype=None) -> np.ndarray:
        dtype = np.dtype(dtype or COMPONENT_DTYPES[part["componentType"]]).newbyteorder("<")
        data, offset = self.view(part["bufferView"]), part.get("byteOffset", 0)
        if offset + count * width * dtype.itemsize > len(data):
            raise ValueError(f"{self.path}: a sparse accessor runs past the end of its data")
        return np.frombuffer(data, dtype=dtype, count=count * width, offset=offset).reshape(count, width)

    def target_names(self, mesh_index: int) -> list[str]:
        """Morph target names: ``mesh.extras.targetNames`` (the de-facto convention)."""
        mesh = self.json["meshes"][mesh_index]
        names = mesh.get("extras", {}).get("targetNames")
        if names is None:
            primitives = mesh.get("primitives", [])
            names = primitives[0].get("extras", {}).get("targetNames", []) if primitives else []
        return list(names)

    def node_label(self, node: int) -> str:
        """A node's name, else its nearest named ancestor's, else its mesh's, else node<i>."""
        nodes = self.json["nodes"]
        named = self._named_ancestor(node)
        if named is not None:
            return nodes[named]["name"]
        mesh = self.json["meshes"][nodes[node]["mesh"]]
        return mesh.get("name") or f"node{node}"

    def _named_ancestor(self, node: int) -> int | None:
        """The nearest named node from ``node`` up (itself included), or None; each node is
        walked once per file (the answers are kept), so labelling every node costs O(nodes)."""
        nodes, path, current = self.json["nodes"], [], node
        while current is not None and current not in self._ancestors and not nodes[current].get("name"):
            path.append(current)
            current = self.parents.get(current)   # the graph is a forest (checked on opening): this ends
        found = self._ancestors.get(current, current) if current is not None else None
        self._ancestors.update(dict.fromkeys(path, found))
        return found

    def world_matrix(self, node: int) -> np.ndarray:
        """A node's world transform 4x4 (its parents' transforms and its own)."""
        world = np.eye(4)
        while node is not None:
            local = _local_matrix(self.json["nodes"][node])
            world = world if local is None else local @ world
            node = self.parents.get(node)
        return world

    def mesh_nodes(self) -> list[tuple[int, np.ndarray]]:
        """(node index, world matrix 4x4) for every mesh node of the default scene."""
        nodes = self.json.get("nodes", [])
        scenes = self.json.get("scenes", [])
        if scenes:
            roots = scenes[self.json.get("scene", 0)].get("nodes", [])
        else:
            roots = [i for i in range(len(nodes)) if i not in self.parents]
        found, seen, stack = [], set(), [(root, np.eye(4)) for root in reversed(roots)]
        while stack:
            index, parent = stack.pop()
            if index in seen:
                raise ValueError(f"{self.path.name}: node {index} is reached twice from the scene "
                                 "(a glTF node graph must be a tree)")
            seen.add(index)
            local = _local_matrix(nodes[index])
            with np.errstate(over="ignore", invalid="ignore"):     # an overflow is refused just below
                world = parent if local is None else parent @ local
            if not np.isfinite(world).all():
                raise ValueError(f"{self.path.name}: node {index}'s transform overflows (not a finite number)")
            if "mesh" in nodes[index]:
                found.append((index, world))
            stack.extend((child, world) for child in reversed(nodes[index].get("children", [])))
        return found


def _local_matrix(node: dict) -> np.ndarray | None:
    """A node's local transform: its ``matrix`` or translation * rotation * scale (None: none)."""
    if not any(key in node for key in ("matrix", "rotation", "scale", "translation")):
        return None
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
