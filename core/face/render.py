"""Headless rendering of ARKit-52 curves on the face mesh: frames, grids and mp4 videos.

pyrender draws through EGL (Mesa llvmpipe on a CPU-only machine). Two choices keep it fast:

* One GL context serves the whole process from one worker thread (an EGL context cannot
  follow callers across threads) and each renderer builds its scene and camera once; a frame
  only swaps in a new mesh node. Overwriting the vertex buffer in place through pyrender's
  private attributes measured no faster (about 18 ms of CPU per 512² frame either way).
* Lighting is computed per vertex in numpy and drawn with ``RenderFlags.FLAT`` (Gouraud
  shading from vertex colours). On llvmpipe pyrender's PBR fragment shader costs ~70 % of a
  512² frame; a 4k-vertex face lit per vertex looks the same at this size.

Videos stream raw frames into the static ffmpeg of ``imageio-ffmpeg`` (libx264 + aac). The
frame count comes from the curves and the audio is trimmed or padded to exactly that length,
so no ``-shortest`` is needed.

Head motion (``head``: yaw/pitch/roll radians per frame, :mod:`core.head_pose`) turns the
vertices about the mesh's neck pivot before they are lit and drawn
(:meth:`~core.face.mesh.FaceMesh.deform_sequence`); the camera stays, so the light stays too.
"""
from __future__ import annotations

import os

os.environ["PYOPENGL_PLATFORM"] = "egl"  # headless; must precede any OpenGL import

import contextlib
import functools
import itertools
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import imageio_ffmpeg
import numpy as np
import soundfile as sf

if not hasattr(np, "infty"):
    np.infty = np.inf  # pyrender 0.1.45 still uses the alias numpy 2 removed

import pyrender  # noqa: E402  (after the environment and numpy fixes above)
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from core.arkit import NUM_BLENDSHAPES  # noqa: E402
from core.head_pose import check_head  # noqa: E402
from core.face.mesh import FaceMesh, load_face_mesh, vertex_normals  # noqa: E402
from core.face.materials import hidden_at_rest, vertex_materials  # noqa: E402
from core.rates import FPS, SAMPLE_RATE  # noqa: E402

BACKGROUND = (0.16, 0.17, 0.19)
Progress = Callable[[int, int], None]      # (frames done, frames in all)

# Lights in camera space (the camera looks down -Z): ambient, light from above (sky), a key
# from the upper left, a soft fill from the right.
_KEY = np.array([-0.45, 0.55, 1.0]) / np.linalg.norm([-0.45, 0.55, 1.0])
_FILL = np.array([0.7, 0.0, 0.7]) / np.linalg.norm([0.7, 0.0, 0.7])
_HALF = (_KEY + [0.0, 0.0, 1.0]) / np.linalg.norm(_KEY + [0.0, 0.0, 1.0])
_AMBIENT, _SKY, _KEY_POWER, _FILL_POWER, _SHININESS = 0.22, 0.08, 0.95, 0.25, 24.0


class FaceRenderer:
    """Renders ARKit-52 weights on a :class:`FaceMesh`, reusing one scene and GL context.

    Thread-safe: every renderer draws through one GL context on one thread, a frame at a time.
    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, mesh: FaceMesh | None = None, size: int | tuple[int, int] = 512,
                 background: Sequence[float] = BACKGROUND):
        self.mesh = mesh if mesh is not None else load_face_mesh()
        self.width, self.height = _frame_size(size)
        self._weld = self.mesh.welded_positions()
        self._material = pyrender.MetallicRoughnessMaterial(baseColorFactor=(1.0, 1.0, 1.0, 1.0),
                                                            doubleSided=True)
        self._scene = pyrender.Scene(bg_color=[float(c) for c in background] + [1.0],
                                     ambient_light=[0.0, 0.0, 0.0])
        camera, pose = _frame_camera(self.mesh, self.width / self.height)
        self._scene.add(camera, pose=pose)
        self._mesh_node: pyrender.Node | None = None
        self._closed = False
        # What only an open mouth reveals (mouth bag, teeth): hidden from the front, back and sides
        # at rest, as in the browser, so that a turned head shows skin at its back and sides.
        self._albedo, self._specular, self._exposure = vertex_materials(self.mesh, hidden_at_rest(self.mesh))

    def render_frame(self, weights: np.ndarray, head: np.ndarray | None = None) -> np.ndarray:
        """One frame, uint8 [H, W, 3], for 52 weights (clipped to ARKit's [0, 1]) and the head
        turned by ``head`` (3 radians; None: still)."""
        weights = np.asarray(weights, dtype=np.float32)
        if weights.shape != (NUM_BLENDSHAPES,):
            raise ValueError(f"weights must be [{NUM_BLENDSHAPES}], got {weights.shape}")
        return next(self.render_frames(weights[None], head=None if head is None else np.asarray(head)[None]))

    def render_frames(self, weights: np.ndarray, chunk: int = 120, head: np.ndarray | None = None
                      ) -> Iterator[np.ndarray]:
        """Frames for weights [T, 52] and head angles [T, 3] (None: still), deforming ``chunk``
        frames per matrix product."""
        weights = _check_weights(weights)
        head = None if head is None else check_head(head, len(weights))
        for start in range(0, len(weights), chunk):
            turns = None if head is None else head[start:start + chunk]
            for vertices in self.mesh.deform_sequence(weights[start:start + chunk], turns):
                color, _ = self._render(vertices, self._shade(vertices), pyrender.RenderFlags.FLAT)
                yield np.ascontiguousarray(color)

    def _render(self, vertices: np.ndarray, colors: np.ndarray | None, flags: int):
        """Swap the face node for one with these vertices and draw the scene on the GL thread.

        pyrender frees the replaced node's buffers on the next draw.
        """
        if self._closed:
            raise RuntimeError("this FaceRenderer has been closed")
        mesh = pyrender.Mesh([pyrender.Primitive(positions=vertices, color_0=colors,
                                                 indices=self.mesh.faces, material=self._material)])

        def draw():
            if self._mesh_node is not None:
                self._scene.remove_node(self._mesh_node)
            self._mesh_node = self._scene.add(mesh)
            return _gl_context(self.width, self.height).render(self._scene, flags=flags)

        return _GL_THREAD.submit(draw).result()

    def _shade(self, vertices: np.ndarray) -> np.ndarray:
        """Per-vertex RGBA (sRGB): ambient + key + fill + Blinn-Phong highlight.

        The camera looks down -Z unrotated, so world-space normals are camera-space normals.
        """
        normals = vertex_normals(vertices, self.mesh.faces, self._weld)
        key = np.clip(normals @ _KEY, 0.0, None)
        light = (_AMBIENT + _SKY * normals[:, 1] + _KEY_POWER * key
                 + _FILL_POWER * np.clip(normals @ _FILL, 0.0, None))
        highlight = self._specular * (key > 0) * np.clip(normals @ _HALF, 0.0, None) ** _SHININESS
        linear = self._exposure[:, None] * (self._albedo * light[:, None] + highlight[:, None])
        rgba = np.ones((len(vertices), 4))
        rgba[:, :3] = np.clip(linear, 0.0, 1.0) ** (1 / 2.2)
        return rgba

    def close(self) -> None:
        """Drop the scene; the renderer cannot be used afterwards (the GL context lives on)."""
        self._closed = True
        _GL_THREAD.submit(self._scene.clear).result()

    def __enter__(self) -> "FaceRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# pyrender's EGL context stays current in the thread that created it (its make_uncurrent is a
# no-op), so all GL work runs on one worker thread owning the process's one context.
_GL_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="egl-render")


@functools.lru_cache(maxsize=1)
def _shared_offscreen() -> pyrender.OffscreenRenderer:
    return pyrender.OffscreenRenderer(64, 64)


def _gl_context(width: int, height: int) -> pyrender.OffscreenRenderer:
    """The process's one GL context, its framebuffer resized on demand (GL thread only).

    pyrender's EGL teardown terminates the display that all contexts share, so deleting one
    OffscreenRenderer breaks every other: one context kept for the process sidesteps that
    and saves its setup on every new FaceRenderer.
    """
    context = _shared_offscreen()
    context.viewport_width, context.viewport_height = width, height
    return context


def render_frame(weights: np.ndarray, size: int | tuple[int, int] = 512,
                 mesh: FaceMesh | None = None, head: np.ndarray | None = None) -> np.ndarray:
    """One frame uint8 [H, W, 3] with a throw-away renderer (use FaceRenderer for many)."""
    with FaceRenderer(mesh, size) as renderer:
        return renderer.render_frame(weights, head)


def render_video(weights: np.ndarray, audio: np.ndarray | str | Path | None, out_path: str | Path,
                 fps: float = FPS, size: int | tuple[int, int] = 512, mesh: FaceMesh | None = None,
                 renderer: FaceRenderer | None = None, progress: Progress | None = None,
                 head: np.ndarray | None = None) -> Path:
    """Render weights [T, 52] to an mp4 of T frames, with the audio muxed in if given.

    ``audio``: float32 mono at 16 kHz, a sound file path, or None. ``head``: yaw/pitch/roll
    radians [T, 3] (None: a still head). Pass ``renderer`` to reuse one across calls (its size
    wins over ``size``); ``progress(done, total)`` hears of each frame.
    """
    weights = _check_weights(weights)
    head = None if head is None else check_head(head, len(weights))
    with FaceRenderer(mesh, size) if renderer is None else contextlib.nullcontext(renderer) as active:
        return write_video(active.render_frames(weights, head=head), len(weights), audio, out_path, fps, progress)


def render_grid_video(sequences: Sequence[np.ndarray], labels: Sequence[str] | None,
                      audio: np.ndarray | str | Path | None, out_path: str | Path,
                      fps: float = FPS, size: int | tuple[int, int] = 384, cols: int | None = None,
                      mesh: FaceMesh | None = None, progress: Progress | None = None,
                      heads: Sequence[np.ndarray | None] | None = None) -> Path:
    """Several weight sequences side by side in one mp4 (e.g. ground truth vs models).

    ``heads``: each sequence's head angles [T, 3] (None, or a None entry: still). Shorter
    sequences hold their last frame; the video lasts as long as the longest one.
    """
    if not sequences:
        raise ValueError("render_grid_video needs at least one weight sequence")
    sequences = [_check_weights(s) for s in sequences]
    heads = list(heads) if heads is not None else [None] * len(sequences)
    if len(heads) != len(sequences):
        raise ValueError(f"{len(heads)} head sequences for {len(sequences)} weight sequences")
    heads = [check_head(h, len(s)) for h, s in zip(heads, sequences)]
    labels = list(labels) if labels is not None else [""] * len(sequences)
    if len(labels) != len(sequences):
        raise ValueError(f"{len(labels)} labels for {len(sequences)} sequences")
    n_frames = max(len(s) for s in sequences)
    cols = cols or len(sequences)

    def hold(frames: np.ndarray) -> np.ndarray:     # the last frame until the longest sequence ends
        return np.concatenate([frames, np.repeat(frames[-1:], n_frames - len(frames), axis=0)])

    with FaceRenderer(mesh, size) as renderer:
        streams = [renderer.render_frames(hold(s), head=hold(h)) for s, h in zip(sequences, heads)]
        frames = (tile_frames([_captioned(next(stream), text) for stream, text in zip(streams, labels)], cols)
                  for _ in range(n_frames))
        return write_video(frames, n_frames, audio, out_path, fps, progress)


def tile_frames(frames: Sequence[np.ndarray], cols: int) -> np.ndarray:
    """Frames of one shape laid out in a grid, row by row; empty cells are black."""
    if not frames:
        raise ValueError("tile_frames needs at least one frame")
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames):
        raise ValueError(f"all frames must share one shape, got {sorted({f.shape for f in frames})}")
    cols = min(cols, len(frames))
    rows = -(-len(frames) // cols)
    height, width = shape[:2]
    grid = np.zeros((rows * height, cols * width) + shape[2:], dtype=frames[0].dtype)
    for i, frame in enumerate(frames):
        r, c = divmod(i, cols)
        grid[r * height:(r + 1) * height, c * width:(c + 1) * width] = frame
    return grid


def write_video(frames: Iterable[np.ndarray], n_frames: int, audio: np.ndarray | str | Path | None,
                out_path: str | Path, fps: float = FPS, progress: Progress | None = None) -> Path:
    """Stream ``n_frames`` uint8 RGB frames into an H.264 mp4, muxing audio cut to their length.

    ``progress(done, total)`` is called after each frame (e.g. a progress bar)."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if n_frames < 1:
        raise ValueError("a video needs at least one frame")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    if first.ndim != 3 or first.shape[2] != 3 or first.dtype != np.uint8 or width % 2 or height % 2:
        raise ValueError(f"frames must be uint8 [H, W, 3] with even H and W, got {first.shape} {first.dtype}")
    with tempfile.TemporaryDirectory() as tmp:
        audio_path = _audio_track(audio, n_frames / fps, Path(tmp))
        writer = imageio_ffmpeg.write_frames(
            str(out_path), (width, height), fps=fps, codec="libx264", quality=None,
            macro_block_size=2, ffmpeg_log_level="error",
            audio_path=audio_path, audio_codec="aac" if audio_path else None,
            output_params=["-crf", "18", "-preset", "veryfast", "-movflags", "+faststart"])
        writer.send(None)
        written = 0
        try:
            for frame in itertools.chain([first], frames):
                if written == n_frames:
                    break
                if frame.shape != first.shape or frame.dtype != np.uint8:
                    raise ValueError(f"frame {written} is {frame.shape} {frame.dtype}, "
                                     f"not {first.shape} uint8")
                writer.send(np.ascontiguousarray(frame))
                written += 1
                if progress is not None:
                    progress(written, n_frames)
        finally:
            writer.close()
    if written != n_frames:
        raise ValueError(f"expected {n_frames} frames, got {written}")
    return out_path


def benchmark_render(n_frames: int = 150, size: int = 512) -> dict:
    """Frames per second for rendering alone and for rendering + encoding an mp4 (no audio).

    ``cpu_ms_per_frame`` (this process and its GL threads) stays meaningful on a busy machine,
    where wall-clock rates mostly measure the other load.
    """
    rng = np.random.default_rng(0)
    weights = np.clip(rng.normal(0.2, 0.2, (n_frames, NUM_BLENDSHAPES)), 0, 1).astype(np.float32)
    start = time.perf_counter()
    with FaceRenderer(size=size) as renderer:
        setup = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        for _ in renderer.render_frames(weights):
            pass
        render, cpu = time.perf_counter() - start, time.process_time() - cpu
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            render_video(weights, None, Path(tmp) / "bench.mp4", renderer=renderer)
            video = time.perf_counter() - start
    return {"size": size, "frames": n_frames, "setup_s": round(setup, 3),
            "render_fps": round(n_frames / render, 1), "ms_per_frame": round(1000 * render / n_frames, 2),
            "cpu_ms_per_frame": round(1000 * cpu / n_frames, 2), "video_fps": round(n_frames / video, 1)}


def _check_weights(weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float32)
    if weights.ndim != 2 or weights.shape[1] != NUM_BLENDSHAPES or len(weights) == 0:
        raise ValueError(f"weights must be [T>0, {NUM_BLENDSHAPES}], got {weights.shape}")
    if not np.isfinite(weights).all():
        raise ValueError("weights contain NaN or infinity")
    return np.clip(weights, 0.0, 1.0)


def _frame_size(size: int | tuple[int, int]) -> tuple[int, int]:
    width, height = (size, size) if np.isscalar(size) else size
    if int(width) != width or int(height) != height or width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"size must be even and >= 16 pixels (H.264 with yuv420p), got {size}")
    return int(width), int(height)


def _frame_camera(mesh: FaceMesh, aspect: float, yfov_deg: float = 20.0, margin: float = 1.06):
    """A camera on +Z framing the whole head at rest, with each channel at full weight (an open
    jaw stays in the picture) and turned a little (:meth:`FaceMesh.frame_bounds`), with a small
    margin all round."""
    low, high = mesh.frame_bounds()
    centre, half = (low + high) / 2, (high - low) / 2 * margin
    tan = np.tan(np.radians(yfov_deg) / 2)
    distance = max(half[1] / tan, half[0] / (tan * aspect))
    pose = np.eye(4)
    pose[:3, 3] = (centre[0], centre[1], high[2] + distance)
    camera = pyrender.PerspectiveCamera(yfov=np.radians(yfov_deg), aspectRatio=aspect,
                                        znear=distance * 0.05, zfar=distance * 20)
    return camera, pose


def _captioned(frame: np.ndarray, text: str) -> np.ndarray:
    """The frame under a caption strip of its own (the caption never covers the face)."""
    height = 2 * max(12, frame.shape[0] // 16)           # even, so that tiled frames stay even
    strip = Image.new("RGB", (frame.shape[1], height), tuple(int(255 * c) for c in BACKGROUND))
    draw = ImageDraw.Draw(strip)
    font = _font(max(12, int(height * 0.55)))
    width = draw.textlength(text, font=font)
    draw.text(((frame.shape[1] - width) / 2, height * 0.2), text, fill=(235, 235, 235), font=font)
    return np.concatenate([np.asarray(strip), frame], axis=0)


@functools.lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _audio_track(audio: np.ndarray | str | Path | None, seconds: float, folder: Path) -> str | None:
    """A WAV of exactly ``seconds`` (trimmed or padded with silence), or None without audio."""
    if audio is None:
        return None
    if isinstance(audio, (str, Path)):
        if not Path(audio).is_file():
            raise ValueError(f"audio file not found: {audio}")
        samples, rate = sf.read(str(audio), dtype="float32", always_2d=True)
        samples = samples.mean(axis=1)
    else:
        samples, rate = np.asarray(audio, dtype=np.float32), SAMPLE_RATE
        if samples.ndim != 1:
            raise ValueError(f"audio must be mono [samples] at {SAMPLE_RATE} Hz, got shape {samples.shape}")
        if not np.isfinite(samples).all():
            raise ValueError("audio contains NaN or infinity")
    n = int(round(seconds * rate))
    samples = np.pad(samples[:n], (0, max(0, n - len(samples))))
    path = folder / "audio.wav"
    sf.write(str(path), np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16")
    return str(path)

