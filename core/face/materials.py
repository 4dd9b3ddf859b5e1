"""What each vertex of an ARKit head is made of: skin, eyes, teeth, tongue, the mouth's inside.

Shared by the headless renderer (``core.face.render``) and the browser viewer (``demo.viewer``),
which both find the mouth's inside with :func:`hidden_at_rest` (numpy only), so that the mp4 and
the WebGL head look alike, turned heads included.
"""
from __future__ import annotations

import numpy as np

from core.face.mesh import FaceMesh, vertex_normals

# Linear-space albedos and specular strengths of the materials told apart by part name.
_SKIN, _SKIN_SPEC = (0.70, 0.42, 0.32), 0.10
_SCLERA, _IRIS, _PUPIL, _EYE_SPEC = (0.80, 0.78, 0.74), (0.10, 0.16, 0.22), (0.01, 0.01, 0.01), 0.50
_TEETH, _TEETH_SPEC = (0.72, 0.68, 0.58), 0.25
_TONGUE = (0.55, 0.16, 0.16)
_MOUTH, _MOUTH_EXPOSURE, _TEETH_EXPOSURE = (0.45, 0.10, 0.10), 0.35, 0.8
_IRIS_COS, _PUPIL_COS = np.cos(np.radians(24.0)), np.cos(np.radians(11.0))


def vertex_materials(mesh: FaceMesh, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-vertex albedo [V, 3], specular strength [V] and exposure [V], by part name.

    Eyeballs get a sclera with an iris and pupil around +Z (glTF's forward), so that blinks
    read clearly without the rig's texture. Skin hidden at rest is the mouth's inside: dark
    red and dimmed, as are hidden teeth, so that an open mouth reads as an opening.
    """
    hidden = hidden.copy()
    albedo = np.tile(np.asarray(_SKIN), (len(mesh.vertices), 1))
    specular = np.full(len(mesh.vertices), _SKIN_SPEC)
    skin = np.ones(len(mesh.vertices), dtype=bool)
    for part in mesh.parts:
        name = part.name.lower()
        if "teeth" in name or "tooth" in name:
            albedo[part.vertices], specular[part.vertices] = _TEETH, _TEETH_SPEC
        elif "tongue" in name:
            albedo[part.vertices] = _TONGUE
        elif "eye" in name and not any(word in name for word in ("lash", "brow", "lid")):
            points = mesh.vertices[part.vertices].astype(np.float64)
            centre = (points.min(axis=0) + points.max(axis=0)) / 2
            offsets = points - centre
            forward = offsets[:, 2] / np.maximum(np.linalg.norm(offsets, axis=1), 1e-12)
            albedo[part.vertices] = np.where(forward[:, None] > _PUPIL_COS, _PUPIL,
                                             np.where(forward[:, None] > _IRIS_COS, _IRIS, _SCLERA))
            specular[part.vertices] = _EYE_SPEC
            hidden[part.vertices] = False  # eyelids hide them at rest, blinks do not reveal
        else:
            continue
        skin[part.vertices] = False
    albedo[hidden & skin] = _MOUTH
    exposure = np.where(hidden, np.where(skin, _MOUTH_EXPOSURE, _TEETH_EXPOSURE), 1.0)
    return albedo, specular, exposure


def hidden_at_rest(mesh: FaceMesh, resolution: int = 192, tolerance: float = 0.03) -> np.ndarray:
    """Boolean [V]: vertices that the neutral head shows neither from the front, the back nor
    either side, a vertex counting as shown only where its surface faces the onlooker.

    That is what lies inside the head (the mouth's inside, the teeth), which only an open jaw
    reveals; the back of the head is not hidden, so a head turned round in the viewer or by the
    head motion keeps its skin. Facing matters: through facecap.glb's open neck the back view
    sees the mouth's inside from behind, which must stay the mouth's inside.
    Numpy only: see :func:`_hidden_from_front`.
    """
    vertices = mesh.vertices.astype(np.float64)
    normals = vertex_normals(mesh.vertices, mesh.faces, mesh.welded_positions()).astype(np.float64)
    hidden = np.ones(len(vertices), dtype=bool)
    for turn in (np.eye(3), np.diag([-1.0, 1.0, -1.0]), np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]]),
                 np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])):  # look from +Z, -Z, +X, -X
        facing = (normals @ turn.T)[:, 2] > 0
        hidden &= _hidden_from_front(vertices @ turn.T, mesh.faces, resolution, tolerance) | ~facing
    return hidden


def _hidden_from_front(vertices: np.ndarray, faces: np.ndarray, resolution: int, tolerance: float) -> np.ndarray:
    """Vertices more than ``tolerance`` (a fraction of the size) behind the surface seen from +Z.

    A coarse orthographic depth buffer is filled with points sampled on every triangle.
    """
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    scale = (resolution - 1) / (float((high - low)[:2].max()) or 1.0)
    steps = np.linspace(0.0, 1.0, 7)        # barycentric samples: neighbours touch at this resolution
    a, b = np.meshgrid(steps, steps)
    keep = a + b <= 1.0
    weights = np.column_stack([1 - a[keep] - b[keep], a[keep], b[keep]])
    points = np.einsum("sk,fkd->fsd", weights, vertices[faces]).reshape(-1, 3)

    def pixels(p):
        return tuple(np.clip(((p[:, k] - low[k]) * scale).astype(int), 0, resolution - 1) for k in (1, 0))

    depth = np.full((resolution, resolution), -np.inf)
    np.maximum.at(depth, pixels(points), points[:, 2])
    return vertices[:, 2] < depth[pixels(vertices)] - tolerance * float((high - low).max())
