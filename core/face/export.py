"""Blendshape curve files in and out: Live Link Face CSV, JSON, NPY and an animated GLB head.

Curves are float32 ``[T, 52]`` in canonical ARKit order (:mod:`core.arkit`); the head is float32
``[T, 3]`` yaw/pitch/roll radians (:mod:`core.head_pose`; ``head=None`` exports a still head).
Every format maps channels by name, every reader returns a :class:`Motion` ``(curves, head, fps)``
(head zeros when the file has none) and raises ``ValueError`` with a plain message for a file it
cannot trust, and every writer goes through one temp-file + rename step, so a failed export
never leaves a half-written file behind.

Formats (checked against public sources, see the notes at each section):

* ``.csv``  Live Link Face: ``Timecode, BlendShapeCount``, 52 capitalised names in the app's
  order, then 9 head/eye rotation columns: HeadYaw/HeadPitch/HeadRoll in Live Link Face's own
  unit, degrees / 180 (:func:`core.head_pose.to_livelink`), the eyes as zeros.
* ``.json`` ``{"names": [...], "fps": 30, "frames": [{"time": t, "weights": [...]}]}`` -
  the layout of BEAT's facial files plus an explicit ``fps``; the reader takes both. With a
  head: ``"head_names": ["headYaw", "headPitch", "headRoll"], "head_units": "radians"`` and
  ``"head": [yaw, pitch, roll]`` in every frame.
* ``.npy``  the bare float32 array; the format has no header, so it is 30 fps by convention:
  ``[T, 52]``, or with a head ``[T, 55]``: the 52 curves, then headYaw, headPitch, headRoll radians.
* ``.glb``  the ARKit head of :mod:`core.face.mesh` with 52 morph targets (:mod:`core.face.glb`; ARKit names in
  ``mesh.extras.targetNames``), one LINEAR animation channel on ``weights`` and, with a head,
  one on the ``rotation`` of its "head" joint.

Passing ``audio`` to :func:`export_curves` also writes ``<stem>.wav`` (16 kHz mono) beside
the file: a ``.csv`` + ``.wav`` pair is exactly what :mod:`core.data.livelink` loads.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, NamedTuple, Sequence

import numpy as np

from core.arkit import ARKIT_NAMES, INDEX, NUM_BLENDSHAPES, canonical_name, livelink_name
from core.face.glb import glb_writer, read_glb_weights
from core.head_pose import HEAD_CHANNELS, HEAD_NAMES, check_head, from_livelink, still, to_livelink
from core.rates import FPS

CURVE_SUFFIXES = (".csv", ".json", ".npy")   # curves alone
SUFFIXES = CURVE_SUFFIXES + (".glb",)        # every file export_curves writes (the GLB adds the head)

# Tolerated absences: BEAT's facial JSON has 51 channels (no tongueOut); it stays 0.
OPTIONAL_CHANNELS = ("tongueOut",)
WEIGHT_TOLERANCE = 0.01   # a capture's weights may overshoot [0, 1] by this much (rounding, filters)


class Motion(NamedTuple):
    """What a file holds: curves float32 [T, 52], head float32 [T, 3] radians (zeros: none), fps."""
    curves: np.ndarray
    head: np.ndarray
    fps: float


# --------------------------------------------------------------------------- dispatch

def export_curves(curves, path: str | Path, fps: float = FPS, audio=None, *, face=None, head=None) -> Path:
    """Write ``curves`` [T, 52] to ``path`` in the format its suffix names (.csv/.json/.npy/.glb).

    ``head`` [T, 3] (yaw/pitch/roll radians, :mod:`core.head_pose`) goes in too; None is a
    still head (.json and .npy then have no head columns, as before there were any). ``audio``
    (anything :func:`core.audio.decode.load_audio` accepts) is also written as ``<stem>.wav``
    at 16 kHz; ``face`` (a :class:`~core.face.mesh.FaceMesh` or a GLB path) picks the head for
    ``.glb`` (default: facecap.glb). Returns ``path``.
    """
    path = Path(path)
    writers = {".csv": _livelink_writer, ".json": _json_writer, ".npy": _npy_writer,
               ".glb": functools.partial(glb_writer, face=face)}
    writer = writers.get(path.suffix.lower())
    if writer is None:
        raise ValueError(f"cannot export to '{path.name}': use one of {', '.join(SUFFIXES)}")
    curves = _checked_curves(curves)
    head = None if head is None else check_head(head, len(curves))
    outputs = {path: writer(curves, head, _checked_fps(fps))}
    if audio is not None:
        outputs[path.with_suffix(".wav")] = _wav_writer(audio)
    _write_atomically(outputs)
    return path


def import_motion(path: str | Path) -> Motion:
    """Read any format :func:`export_curves` writes: :class:`Motion` (curves, head, fps)."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"cannot import '{path.name}': use one of {', '.join(SUFFIXES)}")
    return reader(path)


def import_curves(path: str | Path) -> tuple[np.ndarray, float]:
    """The face alone of :func:`import_motion`: ``(float32 [T, 52], fps)``."""
    motion = import_motion(path)
    return motion.curves, motion.fps


# --------------------------------------------------------------------------- Live Link Face CSV
# Column order as the app writes it (headers of real captures quoted by Live Link Face
# importers for Blender, Flutter and Unity; note JawRight before JawLeft and MouthRight before
# MouthLeft, unlike core.arkit's order). Timecode is ``HH:MM:SS:FF.fff``: FF.fff is a
# *fractional frame number* at the capture rate, as Unreal's LiveLinkFaceImporter parses it;
# the file stores no rate, so the importer infers 60 fps when a frame number exceeds 30.

_LIVELINK_SWAPS = {"jawLeft": "jawRight", "jawRight": "jawLeft", "mouthLeft": "mouthRight", "mouthRight": "mouthLeft"}
LIVELINK_BLENDSHAPES: tuple[str, ...] = tuple(livelink_name(_LIVELINK_SWAPS.get(n, n)) for n in ARKIT_NAMES)
LIVELINK_ROTATIONS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch",
                      "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
LIVELINK_HEADER = ("Timecode", "BlendShapeCount") + LIVELINK_BLENDSHAPES + LIVELINK_ROTATIONS
LIVELINK_FPS = (30, 60)

_TIMECODE = re.compile(r"^(\d+):(\d\d?):(\d\d?):(\d+(?:\.\d*)?)$")


def read_livelink_csv(path: str | Path, fps: int | None = None) -> Motion:
    """Read a Live Link Face CSV: :class:`Motion` at the capture rate (head from HeadYaw/HeadPitch/
    HeadRoll, converted to radians; zeros if the file lacks those columns).

    The rate is 30 or 60 fps, inferred from the timecodes like Unreal does (``fps`` overrides
    it; takes shorter than half a second at 60 fps are otherwise read as 30 fps). Rows are
    placed by timecode and interpolated onto a uniform grid, so dropped frames do not shift
    the rest of the take. A missing or unknown column, a malformed row, timecodes that go
    backwards or that are not one row per frame at 30/60 fps raise ``ValueError``.
    """
    path = Path(path)
    header, rows = _csv_rows(path)
    if len(header) < 2 or [h.lower() for h in header[:2]] != ["timecode", "blendshapecount"]:
        raise ValueError(f"{path.name} is not a Live Link Face CSV: the first columns must be "
                         f"Timecode, BlendShapeCount (found {', '.join(header[:2]) or 'nothing'})")
    rotations = {r.lower() for r in LIVELINK_ROTATIONS}
    columns = [i for i in range(2, len(header)) if header[i].lower() not in rotations]
    lowered = [h.lower() for h in header]
    head_columns = [lowered.index(n.lower()) for n in LIVELINK_ROTATIONS[:HEAD_CHANNELS] if n.lower() in lowered]
    head_columns = head_columns if len(head_columns) == HEAD_CHANNELS else []
    order = _channel_order([header[i] for i in columns], path.name)
    if not rows:
        raise ValueError(f"{path.name} has a header but no frames")

    values = np.empty((len(rows), len(columns) + len(head_columns)), dtype=np.float64)
    stamps = np.empty((len(rows), 2), dtype=np.float64)   # (whole seconds, frame number)
    for r, (line_no, row) in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"{path.name}, line {line_no}: {len(row)} values for {len(header)} columns")
        stamps[r] = _parse_timecode(row[0], path.name, line_no)
        for what, at in (("blendshape", slice(0, len(columns))), ("head rotation", slice(len(columns), None))):
            try:
                values[r, at] = [float(row[i]) for i in (columns + head_columns)[at]]
            except ValueError:
                raise ValueError(f"{path.name}, line {line_no}: a {what} value is not a number") from None
    values, head = values[:, :len(columns)], values[:, len(columns):]
    for what, part in (("blendshape", values), ("head rotation", head)):
        if not np.all(np.isfinite(part)):
            raise ValueError(f"{path.name} contains NaN or infinite {what} values")
    outside = np.abs(values - 0.5) > 0.5 + WEIGHT_TOLERANCE       # ARKit weights lie in [0, 1]
    if outside.any():
        r, c = np.argwhere(outside)[0]
        raise ValueError(f"{path.name}, line {rows[r][0]}, column {header[columns[c]]}: the value "
                         f"{values[r, c]:g} is outside 0-1, the range of a blendshape weight")

    fps = _livelink_fps(stamps, fps, path.name)
    positions = stamps[:, 0] * fps + stamps[:, 1]          # in frames
    steps = np.diff(positions)
    if np.any(steps <= 0):
        line_no = rows[int(np.argmax(steps <= 0)) + 1][0]
        raise ValueError(f"{path.name}, line {line_no}: the timecode does not advance")
    if len(steps) and not 0.8 <= np.median(steps) <= 1.25:
        raise ValueError(f"{path.name}: rows are {np.median(steps):.2f} frames apart at {fps} fps; "
                         "Live Link Face writes one row per frame at 30 or 60 fps")
    grid = positions[0] + np.arange(int(np.floor(positions[-1] - positions[0] + 1e-6)) + 1)
    uniform = np.stack([np.interp(grid, positions, column) for column in values.T], axis=1)
    head = (from_livelink(np.stack([np.interp(grid, positions, c) for c in head.T], axis=1))
            if head_columns else still(len(grid)))
    return Motion(_in_canonical_order(uniform, order), head, float(fps))


def _livelink_writer(curves: np.ndarray, head: np.ndarray | None, fps: float) -> Callable[[BinaryIO], None]:
    if fps not in LIVELINK_FPS:
        raise ValueError(f"Live Link Face CSV is recorded at 30 or 60 fps, not {fps:g}; "
                         "resample the curves first")
    fps = int(fps)
    by_column = curves[:, [INDEX[canonical_name(n)] for n in LIVELINK_BLENDSHAPES]]
    rotations = np.zeros((len(curves), len(LIVELINK_ROTATIONS)), np.float32)
    rotations[:, :HEAD_CHANNELS] = to_livelink(check_head(head, len(curves)))

    def write(f: BinaryIO) -> None:
        text = io.StringIO()
        text.write(",".join(LIVELINK_HEADER) + "\n")
        for k, (row, turn) in enumerate(zip(by_column, rotations)):
            seconds, frame = divmod(k, fps)
            timecode = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{frame:02d}.000"
            # 9 significant digits read back to exactly the same float32.
            weights = ",".join("%.9g" % v for v in row)
            angles = ",".join("%.9g" % v if v else "0" for v in turn)
            text.write(f"{timecode},{len(LIVELINK_HEADER) - 2},{weights},{angles}\n")
        f.write(text.getvalue().encode())
    return write


def _csv_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header cells and ``(line number, cells)`` for each non-blank data row."""
    if not path.is_file():
        raise ValueError(f"CSV file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path.name} is not a text CSV file") from None
    lines = [(n, row) for n, row in enumerate(csv.reader(io.StringIO(text)), 1)
             if any(cell.strip() for cell in row)]
    if not lines:
        raise ValueError(f"{path.name} is empty")
    header = [cell.strip() for cell in lines[0][1]]
    return header, [(n, [cell.strip() for cell in row]) for n, row in lines[1:]]


def _parse_timecode(text: str, name: str, line_no: int) -> tuple[int, float]:
    match = _TIMECODE.match(text)
    if match is None:
        raise ValueError(f"{name}, line {line_no}: timecode {text!r} is not HH:MM:SS:FF.fff")
    hours, minutes, seconds, frame = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds), float(frame)


def _livelink_fps(stamps: np.ndarray, fps: int | None, name: str) -> int:
    """The capture rate: given, or 60 when any frame number reaches 30 (Unreal's rule).

    Frame numbering at another rate (24, 25, 50 fps) is caught by whole seconds inside the
    take whose frame numbers stop short of the rate.
    """
    frames = stamps[:, 1]
    if fps is None:
        fps = 60 if frames.max() >= 30 else 30
    if fps not in LIVELINK_FPS:
        raise ValueError(f"{name}: Live Link Face records at 30 or 60 fps, not {fps}")
    if frames.max() >= fps:
        raise ValueError(f"{name}: frame number {frames.max():g} does not exist at {fps} fps")
    inner = (stamps[:, 0] > stamps[0, 0]) & (stamps[:, 0] < stamps[-1, 0])
    if inner.any() and frames[inner].max() < fps - 2:
        raise ValueError(f"{name}: frame numbers within a second stop at {frames[inner].max():g}, "
                         f"so the take is not at {fps} fps; Live Link Face records at 30 or 60 fps")
    return fps


# --------------------------------------------------------------------------- JSON


def read_json(path: str | Path, assume_fps: float | None = None) -> Motion:
    """Read this project's JSON or a BEAT facial JSON: :class:`Motion` (head zeros without one).

    The rate comes from ``"fps"``, else from the frames' ``"time"`` stamps, else from
    ``assume_fps``. Channels are mapped by name; only ``tongueOut`` may be absent (BEAT has
    51 channels), any other missing or unknown name raises ``ValueError``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"JSON file not found: {path}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path.name} is not a JSON file ({err})") from None
    if not isinstance(document, dict) or not isinstance(document.get("names"), list) \
            or not isinstance(document.get("frames"), list):
        raise ValueError(f"{path.name}: expected an object with 'names' and 'frames' lists")
    names, frames = document["names"], document["frames"]
    if not frames:
        raise ValueError(f"{path.name} has no frames")
    order = _channel_order([str(n) for n in names], path.name, optional=OPTIONAL_CHANNELS)
    try:
        values = np.array([frame["weights"] for frame in frames], dtype=np.float64)
    except (TypeError, KeyError, ValueError):
        raise ValueError(f"{path.name}: every frame needs a 'weights' list of numbers") from None
    if values.shape != (len(frames), len(names)):
        raise ValueError(f"{path.name}: every frame needs {len(names)} weights, one per name")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{path.name} contains NaN or infinite weights")
    return Motion(_in_canonical_order(values, order), _json_head(document, frames, path.name),
                  _json_fps(document, frames, assume_fps, path.name))


def _json_head(document: dict, frames: list, name: str) -> np.ndarray:
    """The frames' ``"head"`` angles in :data:`HEAD_NAMES` order (zeros for a file without them)."""
    names = document.get("head_names")
    if names is None:
        return still(len(frames))
    if not isinstance(names, list) or sorted(map(str, names)) != sorted(HEAD_NAMES):
        raise ValueError(f"{name}: 'head_names' must list {', '.join(HEAD_NAMES)}")
    if document.get("head_units", "radians") != "radians":
        raise ValueError(f"{name}: head angles must be in radians, not {document['head_units']!r}")
    try:
        angles = np.array([frame["head"] for frame in frames], dtype=np.float64)
    except (TypeError, KeyError, ValueError):
        raise ValueError(f"{name}: every frame needs a 'head' list of {HEAD_CHANNELS} numbers") from None
    if angles.shape != (len(frames), HEAD_CHANNELS):
        raise ValueError(f"{name}: every frame needs a 'head' list of {HEAD_CHANNELS} numbers")
    return check_head(angles[:, [names.index(n) for n in HEAD_NAMES]], name=name)


def _json_writer(curves: np.ndarray, head: np.ndarray | None, fps: float) -> Callable[[BinaryIO], None]:
    def write(f: BinaryIO) -> None:
        # float(float32) prints the shortest decimal that reads back to the same float32.
        frames = [{"time": round(k / fps, 6), "weights": [float(v) for v in row]} for k, row in enumerate(curves)]
        document = {"names": list(ARKIT_NAMES), "fps": int(fps) if float(fps).is_integer() else fps}
        if head is not None:
            document.update(head_names=list(HEAD_NAMES), head_units="radians")
            for frame, angles in zip(frames, head):
                frame["head"] = [float(v) for v in angles]
        document["frames"] = frames
        f.write(json.dumps(document, separators=(",", ":")).encode())
    return write


def _json_fps(document: dict, frames: list, assume_fps: float | None, name: str) -> float:
    if "fps" in document:
        return _checked_fps(document["fps"], name)
    times = [frame.get("time") for frame in frames]
    if len(frames) > 1 and all(isinstance(t, (int, float)) for t in times):
        step = float(np.median(np.diff(times)))
        if step <= 0:
            raise ValueError(f"{name}: frame times do not increase")
        fps = 1.0 / step
        return float(round(fps)) if abs(fps - round(fps)) < 0.01 * fps else fps
    if assume_fps is None:
        raise ValueError(f"{name} states no frame rate ('fps' or per-frame 'time')")
    return _checked_fps(assume_fps, name)


# --------------------------------------------------------------------------- NPY


def read_npy(path: str | Path) -> Motion:
    """Read a ``[T, 52]`` array in canonical order, or ``[T, 55]`` with the head's radians last;
    its rate is the project's 30 fps."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"NPY file not found: {path}")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"{path.name} is not a NumPy array file ({err})") from None
    if array.ndim == 2 and array.shape[1] == NUM_BLENDSHAPES + HEAD_CHANNELS:
        curves = _checked_curves(array[:, :NUM_BLENDSHAPES], path.name)
        return Motion(curves, check_head(array[:, NUM_BLENDSHAPES:], name=path.name), float(FPS))
    if array.ndim != 2 or array.shape[1] != NUM_BLENDSHAPES:
        raise ValueError(f"{path.name}: expected [frames, {NUM_BLENDSHAPES}] curves, or "
                         f"[frames, {NUM_BLENDSHAPES + HEAD_CHANNELS}] curves and head, got shape {array.shape}")
    curves = _checked_curves(array, path.name)
    return Motion(curves, still(len(curves)), float(FPS))


def _npy_writer(curves: np.ndarray, head: np.ndarray | None, fps: float) -> Callable[[BinaryIO], None]:
    if fps != FPS:
        raise ValueError(f"an .npy file stores no frame rate and is read as {FPS} fps; "
                         f"resample the curves from {fps:g} fps or use .json")
    array = curves if head is None else np.concatenate([curves, head], axis=1)
    return lambda f: np.save(f, array)


# --------------------------------------------------------------------------- shared helpers

def _checked_curves(curves, name: str = "curves") -> np.ndarray:
    """float32 ``[T >= 1, 52]`` with finite values, or a ``ValueError`` saying what is wrong."""
    array = np.asarray(curves)
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{name}: expected numbers, got {array.dtype}")
    if array.ndim != 2 or array.shape[1] != NUM_BLENDSHAPES:
        raise ValueError(f"{name}: expected [frames, {NUM_BLENDSHAPES}] curves, got shape {array.shape}")
    if len(array) == 0:
        raise ValueError(f"{name}: no frames")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array.astype(np.float32)


def _checked_fps(fps, name: str = "fps") -> float:
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) \
            or not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"{name}: the frame rate must be a positive number, got {fps!r}")
    return float(fps)


def _channel_order(names: Sequence[str], where: str, optional: Sequence[str] = ()) -> list[int]:
    """Canonical index of each named column; unknown, repeated or missing names raise."""
    unknown = [n for n in names if canonical_name(n) is None]
    if unknown:
        raise ValueError(f"{where}: unknown column{'s' * (len(unknown) > 1)} " + ", ".join(unknown[:8]))
    order = [INDEX[canonical_name(n)] for n in names]
    repeated = sorted({ARKIT_NAMES[i] for i in order if order.count(i) > 1})
    if repeated:
        raise ValueError(f"{where}: blendshape listed twice: " + ", ".join(repeated))
    missing = [n for n in ARKIT_NAMES if INDEX[n] not in order and n not in optional]
    if missing:
        raise ValueError(f"{where}: missing blendshape column{'s' * (len(missing) > 1)} "
                         + ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""))
    return order


def _in_canonical_order(values: np.ndarray, order: list[int]) -> np.ndarray:
    out = np.zeros((len(values), NUM_BLENDSHAPES), dtype=np.float32)
    out[:, order] = values
    return out


def _wav_writer(audio) -> Callable[[BinaryIO], None]:
    import soundfile as sf

    from core.audio.decode import load_audio
    from core.rates import SAMPLE_RATE

    samples = load_audio(audio)
    return lambda f: sf.write(f, samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")


def _write_atomically(outputs: dict[Path, Callable[[BinaryIO], None]]) -> None:
    """Write every file to a temp file beside it, then rename them all into place.

    Any failure (bad input found late, full disk) removes the temp files and leaves the
    destinations as they were.
    """
    temps: dict[Path, Path] = {}
    try:
        for path, write in outputs.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps[path] = Path(temp)
            with os.fdopen(handle, "wb") as f:
                write(f)
            os.chmod(temp, 0o644)
        for path, temp in temps.items():
            os.replace(temp, path)
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)


_READERS = {".csv": read_livelink_csv, ".json": read_json, ".npy": read_npy,
            ".glb": lambda path: Motion(*read_glb_weights(path))}
