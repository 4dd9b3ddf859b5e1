"""Users' own heads: an uploaded GLB/glTF with ARKit-named morph targets, checked and kept.

An upload is data only: its size and vertex count are limited, a .gltf may not point at other
files, Draco is refused with a reason (``core.face.mesh`` reads meshopt and quantised files).
Names are mapped by :func:`core.arkit.canonical_name` (``jawOpen``, ``JawOpen``, ``eyeBlink_L``,
``eyeBlinkLeft``, ``head.jawOpen`` ...); a partial set works and the missing channels are listed.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from core.arkit import NUM_BLENDSHAPES
from demo.formatting import as_text, without_folder

MAX_AVATAR_MB = 20
MAX_AVATAR_VERTICES = 60_000       # over every instance of every mesh in the scene
MAX_AVATAR_NODES = 10_000          # nodes of the file (a rigged head has tens to hundreds)
MAX_AVATAR_PARTS = 256             # mesh primitives, counting every instance
MAX_AVATAR_DECODED_MB = 160        # accessors read + compressed views decoded (a 60k-vertex head with 52 targets: ~40)
MAX_AVATAR_JSON_ITEMS = 1_000_000  # JSON objects, arrays and list items (a head's JSON has a few thousand)
AVATAR_SUFFIXES = (".glb", ".gltf")
LIMITS = (f"GLB or glTF (data embedded), up to {MAX_AVATAR_MB} MB and {MAX_AVATAR_VERTICES:,} vertices, "
          "with morph targets named after the ARKit blendshapes")


@dataclass(frozen=True, eq=False)
class Avatar:
    """A head the viewer, the video and the GLB export can use."""
    id: str                 # sha256 of the file (the default head: "default")
    name: str               # file name, for messages
    mesh: object            # core.face.mesh.FaceMesh

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(self.mesh.missing)

    def summary(self) -> str:
        """A line for the page: what the avatar animates and what it lacks."""
        have = NUM_BLENDSHAPES - len(self.missing)
        text = (f"**{as_text(self.name)}**: {len(self.mesh.vertices):,} vertices, {have} of the {NUM_BLENDSHAPES} "
                "ARKit channels")
        if self.missing:
            text += f"; missing (left still): {', '.join(self.missing)}"
        return text + "."


def read_avatar(path: str | Path) -> Avatar:
    """Check and load an uploaded head; ``ValueError`` with a plain message if it cannot be used."""
    from core.face.mesh import TooManyVertices, load_face_mesh

    path = Path(path)
    if path.suffix.lower() not in AVATAR_SUFFIXES:
        raise ValueError(f"'{path.name}' is not a .glb or .gltf file. Avatars: {LIMITS}.")
    size = path.stat().st_size
    if size > MAX_AVATAR_MB * 1024 * 1024:
        raise ValueError(f"'{path.name}' is {size / 1024 / 1024:.1f} MB; avatars may be up to {MAX_AVATAR_MB} MB.")
    data = path.read_bytes()
    try:
        mesh = load_face_mesh(path, side_files=False, limits=upload_limits())
    except TooManyVertices as err:
        raise ValueError(f"'{path.name}' has {err.vertices:,} vertices{err.counted}; avatars may have up to "
                         f"{MAX_AVATAR_VERTICES:,} (decimate it, keeping the morph targets).") from None
    except ValueError as err:
        raise ValueError(f"'{path.name}' cannot be used as an avatar: {without_folder(str(err), path)}") from None
    return Avatar(hashlib.sha256(data).hexdigest()[:16], path.name, mesh)


def upload_limits():
    """What reading one upload may cost (:class:`core.face.gltf.Limits`), checked from the file's
    header before anything is decoded."""
    from core.face.gltf import Limits
    return Limits(nodes=MAX_AVATAR_NODES, vertices=MAX_AVATAR_VERTICES, parts=MAX_AVATAR_PARTS, decoded_bytes=MAX_AVATAR_DECODED_MB << 20,
                  json_items=MAX_AVATAR_JSON_ITEMS)


class AvatarLibrary:
    """The default head and the most recent uploads (bounded), by id; thread-safe."""

    def __init__(self, keep: int = 16):
        self.keep = keep
        self._avatars: OrderedDict[str, Avatar] = OrderedDict()
        self._default: Avatar | None = None
        self._lock = threading.Lock()

    def default(self) -> Avatar:
        with self._lock:
            if self._default is None:
                from core.face.mesh import load_face_mesh
                self._default = Avatar("default", "facecap (default)", load_face_mesh())
            return self._default

    def add(self, path: str | Path) -> Avatar:
        avatar = read_avatar(path)
        with self._lock:
            self._avatars[avatar.id] = avatar
            self._avatars.move_to_end(avatar.id)
            while len(self._avatars) > self.keep:
                self._avatars.popitem(last=False)
        return avatar

    def get(self, avatar_id: str | None) -> Avatar:
        """The avatar with this id; the default head for None, "default" or one dropped since."""
        with self._lock:
            found = self._avatars.get(avatar_id) if avatar_id else None
        return found or self.default()
