"""The ARKit face rig: a neutral mesh plus one morph-target offset per ARKit-52 channel.

The default face is ``facecap.glb`` shipped inside the installed ``openfacefx`` package (read
from there, never copied into this repository); a user's own GLB/glTF avatar works as long as
its morph targets carry ARKit names (``jawOpen``, ``eyeBlink_L``, ``EyeBlinkLeft`` ...). The
file is read by :mod:`core.face.gltf`.

Every primitive of the default scene is baked into one vertex array in world space, so eyes
and teeth that live in separate meshes come along; each keeps its name as a :class:`MeshPart`
so that a renderer can give it its own material.

The head turns (``core.head_pose`` angles) about :attr:`FaceMesh.head_pivot`, each vertex by its
share in :attr:`FaceMesh.head_weights`. A rig with a head bone (a skin joint named like ``Head``,
else like ``Neck``: :func:`head_joint`) turns what that bone and the bones under it move, about
the bone's origin, and the body stays; any other file (facecap.glb included) turns whole, about a
point near the neck found from the face (:func:`neck_pivot`).
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from core.arkit import ARKIT_NAMES, INDEX, NUM_BLENDSHAPES, canonical_name
from core.face.gltf import NO_LIMITS, TRIANGLES, Gltf, Limits, malformed_as_value_error, weights_animation
from core.head_pose import check_head, rotate_points
from core.rates import FPS

# The pictures (mp4 camera, browser view) hold the head turned this far about each axis: talking
# heads rarely turn further, and framing the full model range (30 degrees) would shrink every face.
FRAME_TURN = math.radians(12.0)


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
    head_weights: np.ndarray | None = None   # float32 [V] in 0..1: how much of the head's turn a vertex follows; None: all
    head_pivot: np.ndarray | None = None     # float32 [3]: where the head turns; None: neck_pivot(mesh)

    def __post_init__(self) -> None:
        n = len(self.vertices)
        if self.vertices.shape != (n, 3) or self.morph_deltas.shape != (NUM_BLENDSHAPES, n, 3):
            raise ValueError(f"vertices {self.vertices.shape} and morph_deltas "
                             f"{self.morph_deltas.shape} do not describe one mesh")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces must be [F, 3], got {self.faces.shape}")
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= n):
            raise ValueError(f"faces index vertices outside 0..{n - 1}")
        if self.head_weights is not None:
            w = np.asarray(self.head_weights)
            if w.shape != (n,) or not np.all((w >= 0) & (w <= 1)):
                raise ValueError(f"head_weights must be [{n}] values in 0..1")
        pivot = neck_pivot(self.vertices, self.morph_deltas) if self.head_pivot is None else self.head_pivot
        pivot = np.asarray(pivot, np.float32)
        if pivot.shape != (3,) or not np.isfinite(pivot).all():
            raise ValueError(f"head_pivot must be 3 finite numbers, got {pivot!r}")
        object.__setattr__(self, "head_pivot", pivot)      # frozen: set once, here

    def deform(self, weights: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
        """Vertices [V, 3] for one frame of 52 weights (linear blendshape model), the head turned
        by ``head`` (3 radians) if given."""
        return self.deform_sequence(np.asarray(weights, dtype=np.float32)[None],
                                    None if head is None else np.asarray(head)[None])[0]

    def deform_sequence(self, weights: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
        """Vertices [T, V, 3] for weights [T, 52]: one matrix product for the whole clip, then the
        head turned by ``head`` [T, 3] radians (None: still) about the pivot."""
        weights = np.asarray(weights, dtype=np.float32)
        if weights.ndim != 2 or weights.shape[1] != NUM_BLENDSHAPES:
            raise ValueError(f"weights must be [T, {NUM_BLENDSHAPES}], got {weights.shape}")
        offsets = weights @ self.morph_deltas.reshape(NUM_BLENDSHAPES, -1)
        vertices = self.vertices[None] + offsets.reshape(len(weights), -1, 3)
        if head is not None:
            head = check_head(head, len(weights))
            turned = head.any(axis=1)               # still frames stay exactly as they are, at no cost
            if turned.any():
                vertices[turned] = rotate_points(vertices[turned], head[turned], self.head_pivot, self.head_weights)
        return vertices

    def frame_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) corners [3] of what a picture must hold: the head at rest, with each channel at
        full weight (an open jaw) and turned by :data:`FRAME_TURN` either way about each axis."""
        turns = np.concatenate([np.zeros((1, 3)), np.kron(np.eye(3), [[FRAME_TURN], [-FRAME_TURN]])])
        poses = np.concatenate([self.vertices[None] + self.morph_deltas,
                                rotate_points(np.repeat(self.vertices[None], len(turns), axis=0), turns,
                                              self.head_pivot, self.head_weights)])
        return poses.min(axis=(0, 1)).astype(np.float64), poses.max(axis=(0, 1)).astype(np.float64)

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


def neck_pivot(vertices: np.ndarray, morph_deltas: np.ndarray) -> np.ndarray:
    """A point near the top of the neck, from the face (the vertices some morph target moves; all
    of them if none does): a quarter of the face's height up from its lowest point and 0.7 of that
    height behind its front, centred left to right. On facecap.glb that is level with the mouth,
    about as deep as the ears (where the skull sits on the spine); it works for a bust or a whole
    body alike, since only the face places it."""
    moved = np.any(morph_deltas != 0, axis=(0, 2))
    face = np.asarray(vertices, np.float64)[moved] if moved.any() else np.asarray(vertices, np.float64)
    if not len(face):
        return np.zeros(3, np.float32)
    low, high = face.min(axis=0), face.max(axis=0)
    height = high[1] - low[1]
    return np.array([(low[0] + high[0]) / 2, low[1] + 0.25 * height, high[2] - 0.7 * height], np.float32)


def head_joint(gltf: Gltf) -> int | None:
    """The rig's head bone: among the skin joints, the one nearest the root whose name holds the
    word "head" (``Head``, ``mixamorig:Head``, ``head_jnt``; words split at case changes and
    non-letters), else the word "neck"; None without one. Joints only: facecap.glb's mesh node
    "head" is a mesh (its eyes and teeth are siblings), not a bone."""
    joints = {j for skin in gltf.json.get("skins", []) for j in skin.get("joints", [])}
    depth = {}
    for joint in joints:
        depth[joint], node = 0, joint
        while node in gltf.parents:
            node, depth[joint] = gltf.parents[node], depth[joint] + 1
    for word in ("head", "neck"):
        found = [j for j in joints if word in _words(gltf.json["nodes"][j].get("name", ""))]
        if found:
            return min(found, key=lambda j: (depth[j], j))
    return None


def _words(name: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", name)]


def _head_share(gltf: Gltf, joint: int, node: int, primitive: dict, count: int) -> np.ndarray:
    """Float [count]: how much of the head bone's turn each vertex of one primitive follows: all
    of it under the bone, else its skin weights on the bone and the bones below it."""
    if _descends(gltf, node, joint):
        return np.ones(count)
    attributes, skin = primitive.get("attributes", {}), gltf.json["nodes"][node].get("skin")
    if skin is None or "JOINTS_0" not in attributes or "WEIGHTS_0" not in attributes:
        return np.zeros(count)
    joints = np.asarray(gltf.json["skins"][skin]["joints"])
    turning = np.array([_descends(gltf, j, joint) for j in joints] + [False])
    ids, weights = gltf.accessor(attributes["JOINTS_0"]), gltf.accessor(attributes["WEIGHTS_0"])
    if ids.shape != (count, 4) or weights.shape != (count, 4) or ids.dtype.kind not in "iu":
        raise ValueError(f"{gltf.path.name}: the skin of node {node} does not give 4 joints and weights per vertex")
    if weights.dtype.kind in "iu":                 # integer weights that are not marked normalized
        weights = weights / float(np.iinfo(weights.dtype).max)
    on_head = turning[np.where((ids >= 0) & (ids < len(joints)), ids, len(joints))]   # a bad index: not the head
    total = np.maximum(weights.sum(axis=1), 1e-12)
    return np.clip((weights * on_head).sum(axis=1) / total, 0.0, 1.0)


def _descends(gltf: Gltf, node: int, ancestor: int) -> bool:
    while node is not None:
        if node == ancestor:
            return True
        node = gltf.parents.get(node)
    return False


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


def _triangles(gltf: "Gltf", node: int, primitive: dict, count: int) -> np.ndarray:
    """A primitive's vertex indices [3 * triangles], checked: triples of its ``count`` vertices."""
    index = primitive.get("indices")
    triangles = (gltf.accessor(index).ravel() if index is not None else np.arange(count)).astype(np.int64)
    if len(triangles) % 3 or (len(triangles) and (triangles.min() < 0 or triangles.max() >= count)):
        raise ValueError(f"{gltf.path.name}: the triangle indices of node {node} are not triples of its "
                         f"{count:,} vertices")
    return triangles


def _morph_deltas(gltf: "Gltf", node: int, primitive: dict, count: int,
                  rotation: np.ndarray) -> tuple[np.ndarray, set[str]]:
    """A primitive's morph targets as ARKit channels [52, count, 3], turned by ``rotation`` (the
    node's world rotation, transposed), and the channels it has. Targets without an ARKit name are
    skipped, and a channel named twice is read once."""
    part_deltas, used = np.zeros((NUM_BLENDSHAPES, count, 3), np.float32), set()
    names = gltf.target_names(gltf.json["nodes"][node]["mesh"])
    for target, name in zip(primitive.get("targets", []), names):
        canon = canonical_name(name)
        if canon is None or canon in used or "POSITION" not in target:
            continue
        used.add(canon)
        if gltf.accessor_count(target["POSITION"]) != count:
            raise ValueError(f"{gltf.path.name}: morph target {name!r} of node {node} moves "
                             f"{gltf.accessor_count(target['POSITION']):,} vertices, its mesh has {count:,}")
        part_deltas[INDEX[canon]] = gltf.accessor(target["POSITION"]).astype(np.float32) @ rotation
    return part_deltas, used


def _face_mesh(gltf: "Gltf") -> FaceMesh:
    """Every triangle primitive of the default scene, baked into world space and merged."""
    vertices, faces, deltas, parts, found, shares = [], [], [], [], set(), []
    n_vertices = n_faces = 0
    planned = _triangle_primitives(gltf)
    joint = head_joint(gltf)
    pieces: dict[int, int] = {}        # triangle primitives per node (numbered in part names if several)
    for node, *_ in planned:
        pieces[node] = pieces.get(node, 0) + 1
    for node, world, k, primitive in planned:
        positions = gltf.accessor(primitive["attributes"]["POSITION"]).astype(np.float64)
        count = len(positions)
        triangles = _triangles(gltf, node, primitive, count)
        with np.errstate(over="ignore", invalid="ignore"):   # what overflows is refused once merged
            part_deltas, used = _morph_deltas(gltf, node, primitive, count, world[:3, :3].T.astype(np.float32))
            vertices.append((positions @ world[:3, :3].T + world[:3, 3]).astype(np.float32))
        found |= used
        deltas.append(part_deltas)
        if joint is not None:
            shares.append(_head_share(gltf, joint, node, primitive, count))
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
    vertices, morph_deltas = np.concatenate(vertices), np.concatenate(deltas, axis=1)
    if not (np.isfinite(vertices).all() and np.isfinite(morph_deltas).all()):
        raise ValueError(f"{gltf.path.name} has vertex positions or morph targets that are not finite numbers "
                         "(NaN or infinity, or too large once transformed)")
    head_weights = pivot = None            # no head bone, or one that moves nothing: the whole mesh turns
    if shares and np.concatenate(shares).max() > 0:
        head_weights = np.concatenate(shares).astype(np.float32)
        pivot = gltf.world_matrix(joint)[:3, 3].astype(np.float32)
        if head_weights.min() >= 1.0:
            head_weights = None
    mesh = FaceMesh(
        vertices=vertices,
        faces=np.concatenate(faces).astype(np.int32),
        morph_deltas=morph_deltas,
        missing=tuple(n for n in ARKIT_NAMES if n not in found),
        parts=tuple(parts),
        head_weights=head_weights,
        head_pivot=pivot,
    )
    for array in (mesh.vertices, mesh.faces, mesh.morph_deltas, mesh.head_pivot) + (
            () if mesh.head_weights is None else (mesh.head_weights,)):
        array.setflags(write=False)  # shared by every caller of the cache
    return mesh
