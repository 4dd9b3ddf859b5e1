"""The browser viewer's data: each head as one compact binary file, each result as compact curves.

The page draws the head with three.js (``demo/static/viewer.js``, vendored three.js in
``demo/static/vendor/``); everything it needs is served by the app from static folders, so it
works offline and on a Space. A head is packed once into a file named by its content hash
(:meth:`ViewerAssets.mesh_url`), so the browser fetches it once and keeps it; a result travels as
its curves only, 52 channels x T frames of uint16 fixed point (1/65535 steps) in base64, about
33 kB for 8 s. Every avatar, the default facecap head included, goes through
:func:`core.face.mesh.load_face_mesh`, so the browser gets morph targets already in canonical
ARKit order and never has to map names itself.

Mesh file layout (little-endian): ``b"DTV1"``, uint32 header length, the JSON header (padded to
4 bytes), then the arrays the header lists by offset: float32 positions and normals [V, 3],
float32 linear vertex colours [V, 3], uint16/uint32 triangle indices [F, 3], and per animated
channel its moved vertices (index type) and their offsets as int16 times ``scale / 32767``.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import threading
import weakref
from pathlib import Path

import numpy as np

from core.arkit import ARKIT_NAMES, NUM_BLENDSHAPES

STATIC_DIR = Path(__file__).parent / "static"
MODULE = STATIC_DIR / "viewer.js"
MESH_MAGIC = b"DTV1"
CURVE_SCALE = 65535


def file_url(path: str | Path) -> str:
    """The page-relative URL under which Gradio serves an allowed or static file."""
    return f"gradio_api/file={Path(path).resolve()}"


def encode_curves(curves: np.ndarray) -> str:
    """Curves [T, 52] in [0, 1] (clipped) as base64 little-endian uint16, row-major."""
    curves = np.asarray(curves, dtype=np.float64)
    if curves.ndim != 2 or curves.shape[1] != NUM_BLENDSHAPES:
        raise ValueError(f"curves must be [T, {NUM_BLENDSHAPES}], got {curves.shape}")
    fixed = np.round(np.clip(curves, 0.0, 1.0) * CURVE_SCALE).astype("<u2")
    return base64.b64encode(fixed.tobytes()).decode("ascii")


def decode_curves(text: str) -> np.ndarray:
    """The inverse of :func:`encode_curves`: float32 [T, 52] (what the browser reads)."""
    fixed = np.frombuffer(base64.b64decode(text), dtype="<u2")
    return (fixed.reshape(-1, NUM_BLENDSHAPES) / CURVE_SCALE).astype(np.float32)


def payload(cells: list[tuple[str, np.ndarray]], fps: float, mesh_url: str, audio_url: str | None,
            cols: int = 1, missing: tuple[str, ...] = ()) -> dict:
    """The viewer component's value: one or more labelled takes on one clock (one audio track).

    ``cells``: (label, curves [T, 52]); ``cols``: grid columns; ``missing``: ARKit channels the
    avatar lacks (shown under the viewer).
    """
    frames = max(len(curves) for _, curves in cells)
    return {"fps": float(fps), "frames": int(frames), "cols": int(cols), "mesh": mesh_url, "audio": audio_url,
            "names": list(ARKIT_NAMES), "missing": list(missing),
            "cells": [{"label": label, "frames": len(curves), "curves": encode_curves(curves)}
                      for label, curves in cells]}


def pack_mesh(mesh) -> bytes:
    """A :class:`core.face.mesh.FaceMesh` as the viewer's binary mesh file (layout above)."""
    from core.face.mesh import vertex_normals
    from core.face.materials import hidden_at_rest, vertex_materials

    albedo, _, exposure = vertex_materials(mesh, hidden_at_rest(mesh))
    index_type = "<u2" if len(mesh.vertices) < 65536 else "<u4"
    arrays: list[tuple[str, np.ndarray]] = [
        ("position", mesh.vertices.astype("<f4")),
        ("normal", vertex_normals(mesh.vertices, mesh.faces, mesh.welded_positions()).astype("<f4")),
        ("color", (albedo * exposure[:, None]).astype("<f4")),
        ("index", mesh.faces.astype(index_type)),
    ]
    channels = []
    for k, name in enumerate(ARKIT_NAMES):
        deltas = mesh.morph_deltas[k]
        moved = np.flatnonzero(np.any(deltas != 0, axis=1))
        if not len(moved):
            continue
        scale = float(np.abs(deltas[moved]).max())
        arrays.append((f"{name}.index", moved.astype(index_type)))
        arrays.append((f"{name}.delta", np.round(deltas[moved] / scale * 32767).astype("<i2")))
        channels.append({"name": name, "index": k, "count": int(len(moved)), "scale": scale})
    # Framed at rest and with every channel at full weight, so an open jaw stays in the picture.
    extremes = np.concatenate([mesh.vertices[None], mesh.vertices[None] + mesh.morph_deltas])
    low, high = extremes.min(axis=(0, 1)), extremes.max(axis=(0, 1))
    header = {"vertices": len(mesh.vertices), "triangles": len(mesh.faces), "indexType": index_type[1:],
              "channels": channels, "missing": list(mesh.missing),
              "parts": [{"name": p.name, "start": p.vertices.start, "count": p.vertices.stop - p.vertices.start}
                        for p in mesh.parts],
              "bounds": {"min": low.tolist(), "max": high.tolist()}, "arrays": {}}
    blob, offset = [], 0
    for name, array in arrays:
        data = np.ascontiguousarray(array).tobytes()
        header["arrays"][name] = {"offset": offset, "type": array.dtype.str[1:], "length": int(array.size)}
        data += b"\0" * (-len(data) % 4)
        blob.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    return MESH_MAGIC + struct.pack("<I", len(text)) + text + b"".join(blob)


def read_mesh_header(data: bytes) -> dict:
    """The JSON header of a packed mesh file (for checks and tests)."""
    if data[:4] != MESH_MAGIC:
        raise ValueError("not a viewer mesh file")
    (length,) = struct.unpack_from("<I", data, 4)
    return json.loads(data[8:8 + length])


class ViewerAssets:
    """A folder of packed heads, served as static files; one file per distinct mesh.

    A file is named by the sha256 of its content, and a mesh finds its file through a table that
    forgets the mesh when it is freed (never through ``id(mesh)``, which Python hands to the next
    object: a visitor would be shown another visitor's head). At most ``keep`` files stay besides
    the pinned ones (the default head): the least recently used go first, and a mesh whose file
    went is packed again when it is next shown.
    """

    def __init__(self, folder: str | Path, keep: int = 8):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._paths: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # mesh -> its file
        self._pinned: set[Path] = set()
        self._lock = threading.Lock()

    def mesh_url(self, mesh, pin: bool = False) -> str:
        """The URL of ``mesh``'s file, written on first use (named by its sha256, so immutable);
        ``pin`` keeps the file for good (the default head, whose URL is in every new page)."""
        with self._lock:
            path = self._paths.get(mesh)
            if path is None or not path.is_file():
                data = pack_mesh(mesh)
                path = self.folder / f"mesh-{hashlib.sha256(data).hexdigest()[:20]}.bin"
                if not path.is_file():
                    tmp = path.with_suffix(".tmp")
                    tmp.write_bytes(data)
                    tmp.replace(path)
                self._paths[mesh] = path
            if pin:
                self._pinned.add(path)
            os.utime(path)                          # recently used: the last to go
            self._forget_old()
            return file_url(path)

    def _forget_old(self) -> None:
        files = sorted((p for p in self.folder.glob("mesh-*.bin") if p not in self._pinned),
                       key=lambda p: p.stat().st_mtime_ns)
        for old in files[:max(0, len(files) - self.keep)]:
            old.unlink(missing_ok=True)


# Scoped to the gr.HTML component (Gradio nests these rules under its id).
CSS = """
.dt-cells { display: grid; gap: 10px; }
.dt-cell { margin: 0; min-width: 0; }
.dt-cell figcaption { font-size: 0.9rem; padding: 0 0 4px; color: var(--body-text-color); }
.dt-canvas { aspect-ratio: 1 / 1; width: 100%; max-width: 560px; border-radius: 6px; overflow: hidden;
             background: #292b30; }
.dt-canvas canvas { display: block; width: 100% !important; height: 100% !important; touch-action: none; }
.dt-toolbar { display: flex; gap: 8px; align-items: center; margin-top: 6px; }
.dt-toolbar button { padding: 2px 10px; border: 1px solid var(--border-color-primary); border-radius: 4px;
                     background: var(--button-secondary-background-fill); color: var(--body-text-color); }
.dt-toolbar button:disabled { opacity: 0.5; }
.dt-seek { flex: 1; }
.dt-time { font-variant-numeric: tabular-nums; font-size: 0.85rem; }
.dt-status { font-size: 0.85rem; min-height: 1.2em; margin-top: 4px; }
"""


def html_options(elem_id: str, role: str) -> dict:
    """Keyword arguments of the ``gr.HTML`` that hosts a viewer (``role``: "take" or "grid").

    The component's markup never changes, so Gradio keeps the canvas when a new value arrives;
    ``js_on_load`` imports the ES module once and hands it the component's props and ``watch``.
    """
    module = json.dumps(file_url(MODULE))
    return dict(
        value=None, elem_id=elem_id, elem_classes=["dt-viewer-host"], apply_default_css=False,
        html_template=f'<div class="dt-viewer" data-role="{role}"></div>',
        js_on_load=("import(new URL(" + module + ", document.baseURI).href)"
                    ".then((m) => m.mount(element.querySelector('.dt-viewer'), props, watch))"
                    ".catch((err) => { element.textContent = 'The 3D viewer could not start: ' + err; });"),
    )
