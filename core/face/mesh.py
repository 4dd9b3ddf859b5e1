"""The ARKit face rig: a neutral mesh plus one morph-target offset per ARKit-52 channel.

The default face is ``facecap.glb`` shipped inside the installed ``openfacefx`` package (read
from there, never copied into this repository); a user's own GLB/glTF avatar works as long as
its morph targets carry ARKit names (``jawOpen``, ``eyeBlink_L``, ``EyeBlinkLeft`` ...). The
file is read by :mod:`core.face.gltf`.

Every primitive of the default scene is baked into one vertex array in world space, so eyes
and teeth that live in separate meshes come along; each keeps its name as a :class:`MeshPart`
so that a renderer can give it its own material.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from core.arkit import ARKIT_NAMES, INDEX, NUM_BLENDSHAPES, canonical_name
from core.face.gltf import NO_LIMITS, TRIANGLES, Gltf, Limits, malformed_as_value_error, weights_animation
from core.rates import FPS


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


class TooManyVertices(ValueError):
    """A file whose scene holds more vertices than :attr:`Limits.vertices` (found from its header)."""

    def __init__(self, path: Path, vertices: int, instances: int, limit: int):
        self.vertices, self.limit = vertices, limit
        self.counted = f" (counting each of its {instances:,} mesh instances)" if instances > 1 else ""
        super().__init__(f"{path.name} has {vertices:,} vertices{self.counted}; at most {limit:,} are read")


def load_face_mesh(path: str | Path | None = None, *, side_files: bool = True, limits: Limits = NO_LIMITS) -> FaceMesh:
    """Load an ARKit-rigged face from a GLB/glTF file (default: openfacefx's facecap.glb).

    Decoded meshes are cached in memory per file version, and their arrays are read-only.
    Raises ``ValueError`` for a file that is not glTF or has no ARKit-named morph targets.
    ``side_files=False`` (for uploads: a file is data only) refuses a .gltf whose buffers
    point at other files instead of reading them; ``limits`` bound what reading it may cost
    (:class:`core.face.gltf.Limits`: every count is checked from the header before anything is
    allocated; more vertices than ``limits.vertices`` raises :class:`TooManyVertices`).
    """
    path = Path(path) if path is not None else default_face_path()
    if not path.is_file():
        raise ValueError(f"face mesh file not found: {path}")
    stat = path.stat()
    return _load_face_mesh_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size, side_files, limits)


def load_reference_animation(path: str | Path | None = None, fps: int = FPS) -> np.ndarray:
    """The ARKit weight animation stored in a GLB, resampled to ``fps``: float32 [T, 52].

    facecap.glb holds an 11.2 s real face capture (no audio): a prior for blink and brow
    statistics. Channels the animated rig lacks stay 0. Raises ``ValueError`` if the file has
    no morph-weight animation with ARKit names.
    """
    gltf = Gltf.open(Path(path) if path is not None else default_face_path())
    with malformed_as_value_error(gltf.path):
        return weights_animation(gltf, fps)


@functools.lru_cache(maxsize=8)
def _load_face_mesh_cached(path: str, mtime_ns: int, size: int, side_files: bool = True,
                           limits: Limits = NO_LIMITS) -> FaceMesh:
    """Decode once per (path, modification time, size); the key makes edits reload."""
    gltf = Gltf.open(Path(path), side_files=side_files, limits=limits)
    with malformed_as_value_error(gltf.path):
        return _face_mesh(gltf)


def _triangle_primitives(gltf: Gltf) -> list[tuple[int, np.ndarray, int, dict]]:
    """(node, world matrix, primitive number, primitive) for every triangle primitive of every mesh
    instance of the default scene, after checking their vertex count against the limits (from the
    header: nothing is decoded yet)."""
    planned, vertices, instances = [], 0, 0
    for node, world in gltf.mesh_nodes():
        mesh = gltf.json["meshes"][gltf.json["nodes"][node]["mesh"]]
        instances += 1
        for k, primitive in enumerate(p for p in mesh.get("primitives", []) if p.get("mode", TRIANGLES) == TRIANGLES):
            if "POSITION" not in primitive.get("attributes", {}):
                raise ValueError(f"{gltf.path.name}: a triangle primitive of mesh "
                                 f"{gltf.json['nodes'][node]['mesh']} has no POSITION")
            planned.append((node, world, k, primitive))
            vertices += gltf.accessor_count(primitive["attributes"]["POSITION"])
    if gltf.limits.vertices is not None and vertices > gltf.limits.vertices:
        raise TooManyVertices(gltf.path, vertices, instances, gltf.limits.vertices)
    if gltf.limits.parts is not None and len(planned) > gltf.limits.parts:
        raise ValueError(f"{gltf.path.name} has {len(planned):,} mesh pieces (primitives, counting every "
                         f"instance); at most {gltf.limits.parts:,} are read")
    return planned


def _face_mesh(gltf: "Gltf") -> FaceMesh:
    """Every triangle primitive of the default scene, baked into world space and merged."""
    vertices, faces, deltas, parts, found = [], [], [], [], set()
    n_vertices = n_faces = 0
    planned = _triangle_primitives(gltf)
    pieces: dict[int, int] = {}        # triangle primitives per node (numbered in part names if several)
    for node, *_ in planned:
        pieces[node] = pieces.get(node, 0) + 1
    for node, world, k, primitive in planned:
        names = gltf.target_names(gltf.json["nodes"][node]["mesh"])
        positions = gltf.accessor(primitive["attributes"]["POSITION"]).astype(np.float64)
        count = len(positions)
        index = primitive.get("indices")
        triangles = (gltf.accessor(index).ravel() if index is not None else np.arange(count)).astype(np.int64)
        if len(triangles) % 3 or (len(triangles) and (triangles.min() < 0 or triangles.max() >= count)):
            raise ValueError(f"{gltf.path.name}: the triangle indices of node {node} are not triples of its "
                             f"{count:,} vertices")
        with np.errstate(over="ignore", invalid="ignore"):   # what overflows is refused once merged
            rotation = world[:3, :3].T.astype(np.float32)
            part_deltas, used = np.zeros((NUM_BLENDSHAPES, count, 3), np.float32), set()
            for target, name in zip(primitive.get("targets", []), names):
                canon = canonical_name(name)
                if canon is None or canon in used or "POSITION" not in target:   # each channel read once
                    continue
                used.add(canon)
                if gltf.accessor_count(target["POSITION"]) != count:
                    raise ValueError(f"{gltf.path.name}: morph target {name!r} of node {node} moves "
                                     f"{gltf.accessor_count(target['POSITION']):,} vertices, its mesh has {count:,}")
                part_deltas[INDEX[canon]] = gltf.accessor(target["POSITION"]).astype(np.float32) @ rotation
                found.add(canon)
            vertices.append((positions @ world[:3, :3].T + world[:3, 3]).astype(np.float32))
        deltas.append(part_deltas)
        faces.append(triangles.reshape(-1, 3) + n_vertices)
        name = gltf.node_label(node) + (f".{k}" if pieces[node] > 1 else "")
        parts.append(MeshPart(name, slice(n_vertices, n_vertices + count),
                              slice(n_faces, n_faces + len(triangles) // 3)))
        n_vertices += count
        n_faces += len(triangles) // 3
    if not vertices:
        raise ValueError(f"{gltf.path.name} contains no triangle mesh")
    if not found:
        raise ValueError(f"{gltf.path.name} has no morph targets with ARKit names (jawOpen, eyeBlinkLeft "
                         "or eyeBlink_L ...): it cannot be driven by ARKit-52 curves")
    mesh = FaceMesh(
        vertices=np.concatenate(vertices),
        faces=np.concatenate(faces).astype(np.int32),
        morph_deltas=np.concatenate(deltas, axis=1),
        missing=tuple(n for n in ARKIT_NAMES if n not in found),
        parts=tuple(parts),
    )
    if not (np.isfinite(mesh.vertices).all() and np.isfinite(mesh.morph_deltas).all()):
        raise ValueError(f"{gltf.path.name} has vertex positions or morph targets that are not finite numbers "
                         "(NaN or infinity, or too large once transformed)")
    for array in (mesh.vertices, mesh.faces, mesh.morph_deltas):
        array.setflags(write=False)  # shared by every caller of the cache
    return mesh
