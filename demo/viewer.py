"""The browser viewer's data: each head as one compact binary file, each result as compact curves.

The page draws the head with three.js (``demo/static/viewer.js``: takes and grids of heads on one
clock; ``live_viewer.js``: the Live tab's head; ``stage.js``: one WebGL renderer per component;
``heads.js``: one head; vendored three.js in ``demo/static/vendor/``); everything it needs is
served by the app from static folders, so it works offline and on a Space. A head is packed once
into a file named by its content hash (:meth:`ViewerAssets.mesh_url`), so the browser fetches it
once and keeps it; a result travels as its curves, 52 channels x T frames of uint16 fixed
point (1/65535 steps) in base64, about 33 kB for 8 s, and its head angles (a cell's ``head``:
yaw/pitch/roll radians x T frames, float32 in base64, 3 kB for 8 s; absent: a still head). Every
avatar, the default facecap head included, goes through :func:`core.face.mesh.load_face_mesh`, so
the browser gets morph targets already in canonical ARKit order and never has to map names itself.

Mesh file layout (little-endian): ``b"DTV1"``, uint32 header length, the JSON header (padded to
4 bytes), then the arrays the header lists by offset: float32 positions and normals [V, 3],
float32 linear vertex colours [V, 3], uint16/uint32 triangle indices [F, 3], per animated
channel its moved vertices (index type) and their offsets as int16 times ``scale / 32767``, and,
for a rig whose body stays while the head turns, ``headWeight``: float32 [V], each vertex's share
of the turn (absent: the whole mesh turns). The header's ``headPivot`` is where the head turns;
its ``insideTriangles`` counts the last triangles, those hidden at rest (the mouth's inside), which
the page draws a little deeper so that the skin wins where the two meet (docs/DECISIONS.md "The
dark specks beside the nose").
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import struct
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import soundfile as sf

from core.arkit import ARKIT_NAMES, NUM_BLENDSHAPES
from core.head_pose import HEAD_CHANNELS, check_head
from core.rates import SAMPLE_RATE

STATIC_DIR = Path(__file__).parent / "static"
MODULE = STATIC_DIR / "viewer.js"
LIVE_MODULE = STATIC_DIR / "live_viewer.js"     # the Live tab's head
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


def encode_head(head: np.ndarray, frames: int | None = None) -> str:
    """Head angles [T, 3] radians as base64 little-endian float32, row-major (checked: no NaN)."""
    return base64.b64encode(check_head(head, frames).astype("<f4").tobytes()).decode("ascii")


def decode_head(text: str) -> np.ndarray:
    """The inverse of :func:`encode_head`: float32 [T, 3] (what the browser reads)."""
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(-1, HEAD_CHANNELS).copy()


def payload(cells: list, fps: float, mesh_url: str, audio_url: str | None,
            cols: int = 1, missing: tuple[str, ...] = ()) -> dict:
    """The viewer component's value: one or more labelled takes on one clock (one audio track).

    ``cells``: (label, curves [T, 52]) or (label, curves, head [T, 3] radians or None: still);
    ``cols``: grid columns; ``missing``: ARKit channels the avatar lacks (shown under the viewer).
    """
    cells = [(cell[0], cell[1], cell[2] if len(cell) > 2 else None) for cell in cells]
    frames = max(len(curves) for _, curves, _ in cells)
    shown = []
    for label, curves, head in cells:
        cell = {"label": label, "frames": len(curves), "curves": encode_curves(curves)}
        if head is not None:
            cell["head"] = encode_head(head, len(curves))
        shown.append(cell)
    return {"fps": float(fps), "frames": int(frames), "cols": int(cols), "mesh": mesh_url, "audio": audio_url,
            "missing": list(missing), "cells": shown}


def pack_mesh(mesh) -> bytes:
    """A :class:`core.face.mesh.FaceMesh` as the viewer's binary mesh file (layout above)."""
    from core.face.mesh import vertex_normals
    from core.face.materials import hidden_at_rest, vertex_materials

    hidden = hidden_at_rest(mesh)
    albedo, _, exposure = vertex_materials(mesh, hidden)
    index_type = "<u2" if len(mesh.vertices) < 65536 else "<u4"
    # the mouth's inside last: the page draws it a little behind the skin in depth, so where the
    # moving lips bring it level with the skin the skin is what shows (heads.js)
    inside = hidden[mesh.faces].all(1)
    faces = np.concatenate([mesh.faces[~inside], mesh.faces[inside]])
    arrays: list[tuple[str, np.ndarray]] = [
        ("position", mesh.vertices.astype("<f4")),
        ("normal", vertex_normals(mesh.vertices, mesh.faces, mesh.welded_positions()).astype("<f4")),
        ("color", (albedo * exposure[:, None]).astype("<f4")),
        ("index", faces.astype(index_type)),
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
    if mesh.head_weights is not None:
        arrays.append(("headWeight", mesh.head_weights.astype("<f4")))
    # Framed at rest, with every channel at full weight (an open jaw) and turned a little, as the video is.
    low, high = mesh.frame_bounds()
    header = {"vertices": len(mesh.vertices), "triangles": len(mesh.faces), "indexType": index_type[1:],
              "channels": channels, "missing": list(mesh.missing),
              "parts": [{"name": p.name, "start": p.vertices.start, "count": p.vertices.stop - p.vertices.start}
                        for p in mesh.parts],
              "headPivot": [float(v) for v in mesh.head_pivot], "insideTriangles": int(inside.sum()),
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


def wav_bytes(wave: np.ndarray) -> bytes:
    """16 kHz mono float audio as a 16-bit PCM wav file, which every browser plays."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(np.asarray(wave, np.float32), -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


class ViewerAssets:
    """A folder of packed heads and of the takes' audio, served as static files.

    A head's file is named by the sha256 of its content, and a mesh finds its file through a table
    that forgets the mesh when it is freed (never through ``id(mesh)``, which Python hands to the
    next object: a visitor would be shown another visitor's head). At most ``keep`` head files
    stay besides the pinned ones (the default head): the least recently used go first, and a mesh
    whose file went is packed again when it is next shown.

    The viewer plays the 16 kHz wave the curves were made from (:meth:`audio_url`), not the upload:
    formats the server decodes but browsers cannot play (amr, caf, wv, ac3) stay in sync with
    the head too. Audio files older than ``keep_seconds`` are deleted as new ones are written.
    """

    def __init__(self, folder: str | Path, keep_seconds: float = 3600.0, keep: int = 8):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep_seconds = keep_seconds
        self.keep = keep
        self._paths: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # mesh -> its file
        self._pinned: set[Path] = set()
        self._lock = threading.Lock()

    def audio_url(self, wave: np.ndarray) -> str:
        """The URL of ``wave`` (16 kHz mono) as a wav file, named by its content hash."""
        data = wav_bytes(wave)
        now = time.time()
        for old in self.folder.glob("audio-*.wav"):
            with contextlib.suppress(OSError):      # another request may be deleting it right now
                if now - old.stat().st_mtime > self.keep_seconds:
                    old.unlink()
        return file_url(self._write(f"audio-{hashlib.sha256(data).hexdigest()[:20]}.wav", data))

    def _write(self, name: str, data: bytes) -> Path:
        """``data`` as ``folder/name``, written atomically (a file of that name is the same data;
        it is touched: recently used)."""
        path = self.folder / name
        if path.is_file():
            path.touch()
        else:
            tmp = path.with_name(f"{path.name}.{id(data)}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return path

    def mesh_url(self, mesh, pin: bool = False) -> str:
        """The URL of ``mesh``'s file, written on first use (named by its sha256, so immutable);
        ``pin`` keeps the file for good (the default head, whose URL is in every new page)."""
        with self._lock:
            path = self._paths.get(mesh)
            if path is not None and path.is_file():
                path.touch()                        # recently used: the last to go
            else:
                data = pack_mesh(mesh)
                path = self._paths[mesh] = self._write(f"mesh-{hashlib.sha256(data).hexdigest()[:20]}.bin", data)
            if pin:
                self._pinned.add(path)
            self._forget_old()
            return file_url(path)

    def _forget_old(self) -> None:
        files = sorted((p for p in self.folder.glob("mesh-*.bin") if p not in self._pinned),
                       key=lambda p: p.stat().st_mtime_ns)
        for old in files[:max(0, len(files) - self.keep)]:
            old.unlink(missing_ok=True)


# Scoped to the gr.HTML component (Gradio nests these rules under its id).
CSS = """
.dt-stage { position: relative; }
.dt-gl { position: absolute; inset: 0; width: 100%; height: 100%; display: block; pointer-events: none; }
.dt-cells { display: grid; gap: 10px; }
.dt-cell { margin: 0; min-width: 0; }
.dt-cell figcaption { font-size: 0.9rem; padding: 0 0 4px; color: var(--body-text-color); }
.dt-canvas { aspect-ratio: 1 / 1; width: 100%; max-width: 560px; border-radius: 6px; overflow: hidden;
             background: #292b30; touch-action: none; }
.dt-toolbar { display: flex; gap: 8px; align-items: center; margin-top: 6px; }
.dt-toolbar button { padding: 2px 10px; border: 1px solid var(--border-color-primary); border-radius: 4px;
                     background: var(--button-secondary-background-fill); color: var(--body-text-color); }
.dt-toolbar button:disabled { opacity: 0.5; }
.dt-seek { flex: 1; }
.dt-time { font-variant-numeric: tabular-nums; font-size: 0.85rem; }
.dt-status { font-size: 0.85rem; min-height: 1.2em; margin-top: 4px; }
.dt-live-readout { font-size: 0.9rem; margin-top: 6px; min-height: 2.6em; font-variant-numeric: tabular-nums; }
"""


def html_options(elem_id: str, module: Path = MODULE) -> dict:
    """Keyword arguments of the ``gr.HTML`` that hosts a viewer (the Live tab's head: ``module``
    :data:`LIVE_MODULE`).

    The component's markup never changes, so Gradio keeps the canvas when a new value arrives;
    ``js_on_load`` imports the ES module once and hands it the component's props and ``watch``.
    """
    module = json.dumps(file_url(module))
    return dict(
        value=None, elem_id=elem_id, elem_classes=["dt-viewer-host"], apply_default_css=False,
        html_template='<div class="dt-viewer"></div>',
        js_on_load=("import(new URL(" + module + ", document.baseURI).href)"
                    ".then((m) => m.mount(element.querySelector('.dt-viewer'), props, watch))"
                    ".catch((err) => { element.textContent = 'The 3D viewer could not start: ' + err; });"),
    )
