"""The Gradio demo: speech in; ARKit-52 curves, matched identity, face video and downloads out.

Layout: one audio input (microphone or upload) and a talking-style choice, shared by two tabs,
*Generate* (one take, optionally several seeds) and *Compare* (step counts x seeds side by
side); a third tab, *Enroll*, adds a new identity from recordings + Live Link Face CSVs. The
work is done by :class:`DemoService`, which knows nothing about Gradio and which tests call
directly; the callbacks in :func:`build_demo` only turn its results into component values and
its ``ValueError``s into ``gr.Error`` messages, so that bad input never shows a traceback and
the app keeps serving.

Load and temporary files: at most :data:`MAX_CONCURRENT` generations or comparisons run at
once (one queue group; up to :data:`MAX_QUEUE` wait) and one enrolment. Each request writes its
files into its own folder, which is deleted as soon as Gradio has copied the outputs into its
cache (folders a crashed request left behind go after ``keep_seconds``); Gradio's cache (the
copies and the uploads) is swept by ``delete_cache`` (:data:`DELETE_CACHE`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import pandas as pd

from core.cpu import limit_numpy_blas

limit_numpy_blas()  # before any request thread calls numpy BLAS (see core.cpu)

# Before gradio is imported: no usage analytics and no Hugging Face telemetry (no outside network).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from core.arkit import ARKIT_NAMES, GROUPS, LIP_INDICES, UPPER_INDICES  # noqa: E402
from core.audio import MAX_REQUEST_SECONDS, SAMPLE_RATE, load_audio  # noqa: E402
from demo import plots  # noqa: E402

if TYPE_CHECKING:  # torch is imported only when a checkpoint is actually loaded
    from core.pipeline import Generation, Talker

try:  # Hugging Face ZeroGPU attaches a GPU only inside functions wrapped like this
    import spaces
    gpu = spaces.GPU
except ImportError:  # everywhere else: a no-op
    def gpu(fn):
        return fn

log = logging.getLogger(__name__)

TITLE = "DiffusionTalker"
EXAMPLES_DIR = Path(__file__).parent / "examples"
AUTO = "auto"                      # identity value meaning "the identity matched from the voice"
MAX_AUDIO_SECONDS = MAX_REQUEST_SECONDS   # longer clips are refused (render time grows with length)
MAX_UPLOAD = "25mb"                # launch(max_file_size=...); about 13 min of 16-bit 16 kHz wav
MAX_SEED = 2 ** 31 - 1
MAX_SAMPLES = 4
MAX_COMPARE_CELLS = 12             # step counts x seeds in one comparison
VIDEO_SIZE = 512                   # pixels, the single-take video
EXPORT_SUFFIXES = (".csv", ".json", ".npy", ".glb")
SCORE_COLUMNS = ["identity", "similarity", ""]
LAUNCH_OPTIONS = {"max_file_size": MAX_UPLOAD}   # pass to demo.launch() (app.py and the tests do)
MAX_CONCURRENT = 2                 # generations + comparisons running at once (one queue group)
MAX_QUEUE = 32                     # requests waiting; more are refused with "queue full"
DELETE_CACHE = (600, 3600)         # every 10 min, delete Gradio cache files (outputs, uploads) over 1 h old
ENROL_ITERATIONS = (10, 150, 400)  # the Enroll tab's iterations slider: minimum, default, maximum
SPEECH_FILE_TYPES = ["audio", ".mov", ".mp4", ".m4a"]   # Enroll tab: recordings (Live Link Face's own .mov)


# --------------------------------------------------------------------------- input checks

def parse_seed(value) -> int:
    """A seed from a form field: a whole number in [0, 2**31 - 1]."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("Enter a seed (a whole number), or press 'New random seed'.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"The seed must be a whole number, not {value!r}.") from None
    if not number.is_integer() or not 0 <= number <= MAX_SEED:
        raise ValueError(f"The seed must be a whole number between 0 and {MAX_SEED}, not {value}.")
    return int(number)


def parse_seeds(text: str | Sequence) -> list[int]:
    """Seeds for a comparison from text like ``"0, 1, 2"`` (duplicates dropped, order kept)."""
    items = re.split(r"[,\s;]+", text.strip()) if isinstance(text, str) else list(text or [])
    seeds = list(dict.fromkeys(parse_seed(item) for item in items if str(item).strip()))
    if not seeds:
        raise ValueError("Enter one or more seeds separated by commas, e.g. 0, 1, 2.")
    return seeds


def parse_samples(value) -> int:
    """Number of samples (seeds) for one take: 1 to MAX_SAMPLES."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"The number of samples must be between 1 and {MAX_SAMPLES}.") from None
    if not number.is_integer() or not 1 <= number <= MAX_SAMPLES:
        raise ValueError(f"The number of samples must be between 1 and {MAX_SAMPLES}, not {value}.")
    return int(number)


def example_files(folder: Path | None = None) -> list[Path]:
    """The example clips: every .wav in ``folder`` (default ``demo/examples/``); none is fine."""
    folder = Path(folder or EXAMPLES_DIR)
    return sorted(folder.glob("*.wav")) if folder.is_dir() else []


def pair_takes(speech_files, csv_files) -> list[tuple[Path, Path]]:
    """(speech, CSV) pairs matched by file stem, e.g. ``take1.wav`` + ``take1.csv``.

    Every file must have a partner; a stem given twice on one side is ambiguous. Raises
    ``ValueError`` with a message naming the files.
    """
    speech = [Path(f) for f in _file_list(speech_files)]
    csvs = [Path(f) for f in _file_list(csv_files)]
    if not speech or not csvs:
        raise ValueError("Upload one or more speech recordings and the Live Link Face CSV of each "
                         "(paired by name: take1.wav + take1.csv).")
    for label, files in (("speech recording", speech), ("CSV", csvs)):
        stems = [f.stem for f in files]
        twice = sorted({stem for stem in stems if stems.count(stem) > 1})
        if twice:
            raise ValueError(f"More than one {label} is named {', '.join(map(repr, twice))}; "
                             "give every take its own name.")
    not_csv = [f.name for f in csvs if f.suffix.lower() != ".csv"]
    if not_csv:
        raise ValueError(f"{', '.join(not_csv)}: the animation must be a Live Link Face .csv file.")
    by_stem = {f.stem: f for f in csvs}
    lonely_speech = [f.name for f in speech if f.stem not in by_stem]
    lonely_csv = sorted(f.name for f in csvs if f.stem not in {s.stem for s in speech})
    if lonely_speech or lonely_csv:
        parts = ([f"no CSV named like {', '.join(lonely_speech)}"] if lonely_speech else []) + \
                ([f"no speech recording named like {', '.join(lonely_csv)}"] if lonely_csv else [])
        raise ValueError(f"Every take needs a speech file and a CSV with the same name (take1.wav + take1.csv): "
                         f"{'; '.join(parts)}.")
    return [(f, by_stem[f.stem]) for f in speech]


def _file_list(files) -> list[str]:
    """gr.File(file_count="multiple") values: None, a path, or a list of paths / file objects."""
    if files is None:
        return []
    if not isinstance(files, (list, tuple)):
        files = [files]
    return [str(getattr(f, "name", f)) for f in files if f]


def load_talker(path: str | Path) -> tuple["Talker | None", str | None]:
    """``(talker, None)``, or ``(None, why)`` when ``path`` holds no usable checkpoint."""
    path = Path(path)
    if not path.is_dir() or not any((path / name).is_file() for name in ("manifest.json", "config.json")):
        return None, f"There is no trained checkpoint in `{path}` yet."
    from core.pipeline import Talker
    try:
        talker = Talker.from_pretrained(path)
        talker.identity_names  # loads (and checksums) the smallest model now, not on the first click
    except (ValueError, OSError) as err:
        return None, f"The checkpoints in `{path}` could not be loaded: {err}"
    return talker, None


# --------------------------------------------------------------------------- the service

@gpu
def _sample(talker: "Talker", wave: np.ndarray, steps: int, seed: int, identity: str | None, num_samples: int,
            features: np.ndarray | None = None) -> "Generation":
    """The model call, the only part that needs a GPU (``@spaces.GPU`` on ZeroGPU Spaces)."""
    return talker.generate(wave, steps=steps, seed=seed, identity=identity, num_samples=num_samples,
                           features=features)


@dataclass
class Take:
    """One Generate request: the curves and what the outputs are made from."""
    generation: "Generation"
    wave: np.ndarray                     # 16 kHz mono, what the curves were made from
    name: str                            # file-name stem of the downloads
    folder: Path                         # this request's files
    timings: dict[str, float]            # seconds per stage, in display order
    device: str = "cpu"                  # where the model ran
    notes: list[str] = field(default_factory=list)  # non-fatal problems to show as warnings

    @property
    def model_seconds(self) -> float:
        return sum(self.timings.get(k, 0.0) for k in ("decode", "encoder", "match", "sampling"))


@dataclass
class Comparison:
    """One Compare request: curves for every (steps, seed) cell."""
    runs: dict[tuple[int, int], np.ndarray]   # (steps, seed) -> curves [T, 52]
    steps: list[int]
    seeds: list[int]
    identity: str
    wave: np.ndarray
    name: str
    folder: Path
    seconds: float                            # encoder + sampling of every cell

    def spreads(self) -> dict[int, np.ndarray]:
        """Per-channel spread across seeds for each step count (empty with fewer than 2 seeds)."""
        if len(self.seeds) < 2:
            return {}
        return {s: plots.channel_spread(np.stack([self.runs[(s, seed)] for seed in self.seeds]))
                for s in self.steps}


class DemoService:
    """Everything the demo does, without Gradio: checks, generation, exports and renders."""

    def __init__(self, talker: "Talker", max_seconds: float = MAX_AUDIO_SECONDS, video_size: int = VIDEO_SIZE,
                 workdir: str | Path | None = None, keep_seconds: float = 3600.0):
        self.talker = talker
        self.max_seconds = max_seconds
        self.video_size = video_size
        self._renderer = None                 # demo.render.FaceRenderer, built on first use
        self._renderer_lock = threading.Lock()
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="diffusiontalker-demo-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.keep_seconds = keep_seconds      # request folders left behind longer than this are deleted
        self._enrol_lock = threading.Lock()   # one enrolment at a time (they write the libraries)
        # A folder we made goes when the service is closed or collected, or at exit.
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.workdir), True) if not workdir else None

    # -- what the controls offer ------------------------------------------------------------------
    @property
    def steps_choices(self) -> list[int]:
        return list(self.talker.steps_available)

    @property
    def default_steps(self) -> int:
        return 8 if 8 in self.steps_choices else min(self.steps_choices)

    @property
    def default_compare_steps(self) -> list[int]:
        """The default step count, the fewest, and one well above the default (e.g. 32, 8, 1)."""
        wanted = {self.default_steps, self.steps_choices[-1],
                  max((s for s in self.steps_choices if s <= 4 * self.default_steps), default=self.default_steps)}
        return sorted(wanted, reverse=True)

    @property
    def identities(self) -> list[str]:
        return list(self.talker.identity_names)

    def check_steps(self, value) -> int:
        try:
            steps = int(float(value))
        except (TypeError, ValueError):
            steps = None
        if steps not in self.steps_choices:
            raise ValueError(f"There is no model with {value} steps; choose one of "
                             f"{', '.join(map(str, self.steps_choices))}.")
        return steps

    def check_identity(self, value) -> str | None:
        """None for 'matched from the voice', else a library identity."""
        if value in (None, "", AUTO):
            return None
        if value not in self.identities:
            raise ValueError(f"Unknown identity {value!r}; choose one from the list.")
        return value

    def load(self, audio) -> np.ndarray:
        """The input as 16 kHz mono (raises ValueError with a plain message)."""
        if audio is None or (isinstance(audio, str) and not audio.strip()):
            raise ValueError("Record or upload some speech first.")
        return load_audio(audio, max_seconds=self.max_seconds)

    # -- Generate ---------------------------------------------------------------------------------
    def generate(self, audio, steps=8, seed=0, num_samples=1, identity=AUTO) -> Take:
        """Curves, identity scores and timings for one input (no files written yet)."""
        steps, seed = self.check_steps(steps), parse_seed(seed)
        num_samples, identity = parse_samples(num_samples), self.check_identity(identity)
        if seed + num_samples - 1 > MAX_SEED:
            raise ValueError(f"Seeds {seed}..{seed + num_samples - 1} go past {MAX_SEED}; pick a smaller seed.")
        start = time.perf_counter()
        wave = self.load(audio)
        decode = time.perf_counter() - start
        generation = _sample(self.talker, wave, steps, seed, identity, num_samples)
        timings = {"decode": decode + generation.timings.get("decode", 0.0)}
        timings.update({k: generation.timings[k] for k in ("encoder", "match", "sampling")})
        return Take(generation, wave, _stem(audio, f"{steps}steps_seed{seed}"), self._new_folder(), timings,
                    str(self.talker.device))

    def export(self, take: Take) -> list[Path]:
        """Sample 1 as Live Link Face CSV, JSON, NPY and GLB (+ every sample as one NPY if K > 1)."""
        from core.export import export_curves
        start = time.perf_counter()
        curves, fps = take.generation.blendshapes, take.generation.fps
        files = []
        for suffix in EXPORT_SUFFIXES:
            try:
                files.append(export_curves(curves[0], take.folder / f"{take.name}{suffix}", fps=fps))
            except Exception as err:  # one failing format (e.g. no face mesh for .glb) must not sink the rest
                log.exception("export to %s failed", suffix)
                take.notes.append(f"Could not write the {suffix} file: {err}")
        if len(curves) > 1:
            all_samples = take.folder / f"{take.name}_all_{len(curves)}_samples.npy"
            np.save(all_samples, curves)
            files.append(all_samples)
        take.timings["export"] = time.perf_counter() - start
        return files

    def render(self, take: Take) -> Path:
        """The face-mesh mp4 of sample 1 with the input audio."""
        from demo.render import render_video
        start = time.perf_counter()
        path = render_video(take.generation.blendshapes[0], take.wave, take.folder / f"{take.name}.mp4",
                            fps=take.generation.fps, renderer=self.face_renderer())
        take.timings["render"] = time.perf_counter() - start
        return path

    def face_renderer(self):
        """One :class:`demo.render.FaceRenderer` for every request (safe to share between threads)."""
        with self._renderer_lock:
            if self._renderer is None:
                from demo.render import FaceRenderer  # imports pyrender: slow, so only when needed
                self._renderer = FaceRenderer(size=self.video_size)
            return self._renderer

    # -- Compare ----------------------------------------------------------------------------------
    def compare(self, audio, steps_list: Sequence, seeds, identity=AUTO) -> Comparison:
        """Curves for every step count x seed, all from one encoder pass."""
        steps_list = sorted({self.check_steps(s) for s in (steps_list or [])}, reverse=True)
        if not steps_list:
            raise ValueError("Pick at least one step count to compare.")
        seeds, identity = parse_seeds(seeds), self.check_identity(identity)
        if len(steps_list) * len(seeds) > MAX_COMPARE_CELLS:
            raise ValueError(f"{len(steps_list)} step counts x {len(seeds)} seeds is more than "
                             f"{MAX_COMPARE_CELLS} videos; pick fewer.")
        wave = self.load(audio)
        start = time.perf_counter()
        features, _ = self.talker.features(wave)
        runs, used = {}, identity
        for steps in steps_list:
            for first, count in _consecutive_runs(seeds):   # seed k of a batch is first + k
                generation = _sample(self.talker, wave, steps, first, identity, count, features)
                used = generation.identity
                runs.update({(steps, first + k): generation.blendshapes[k] for k in range(count)})
        return Comparison(runs, steps_list, seeds, used, wave, _stem(audio, "compare"), self._new_folder(),
                          time.perf_counter() - start)

    def render_comparison(self, comparison: Comparison) -> Path:
        """One mp4: a row per step count, a column per seed, with the input audio."""
        from demo.render import render_grid_video
        cells = [(steps, seed) for steps in comparison.steps for seed in comparison.seeds]
        return render_grid_video([comparison.runs[cell] for cell in cells],
                                 [f"{steps} steps, seed {seed}" for steps, seed in cells], comparison.wave,
                                 comparison.folder / f"{comparison.name}.mp4", fps=plots.FPS,
                                 cols=len(comparison.seeds), size=384 if len(cells) <= 4 else 256)

    # -- Enroll -----------------------------------------------------------------------------------
    def enroll(self, speech_files, csv_files, name, iterations=ENROL_ITERATIONS[1], progress=None) -> str:
        """Learn a new identity from (speech, CSV) takes paired by name, in every shipped model.

        The same code as ``python -m core enroll`` (:func:`core.enroll.enroll_pairs`); then the
        models are reloaded so that the new identity is offered and matched at once. Returns a
        status line (markdown).
        """
        from core.enroll import enroll_pairs
        low, _, high = ENROL_ITERATIONS
        try:
            iterations = int(float(iterations))
        except (TypeError, ValueError):
            iterations = None
        if iterations is None or not low <= iterations <= high:
            raise ValueError(f"The number of iterations must be between {low} and {high}.")
        pairs = pair_takes(speech_files, csv_files)
        if self.talker.root is None:
            raise ValueError("These models were not loaded from a checkpoint folder; cannot enrol into them.")
        start = time.perf_counter()
        with self._enrol_lock:
            names = enroll_pairs(self.talker.root, name, pairs, iterations=iterations,
                                 encoder=self.talker.encoder(), progress=progress)
            self.reload()
        added = names[-1]
        return (f"Enrolled **{added}** from {len(pairs)} take{'s' * (len(pairs) > 1)} in "
                f"{time.perf_counter() - start:.1f} s ({iterations} iterations per model). "
                f"The library now holds **{len(names)} identities**: {', '.join(names)}.")

    def reload(self) -> None:
        """Drop the loaded models, so the next request reads the checkpoints (and libraries) again.

        Requests already running keep the model objects they hold.
        """
        self.talker.reload()

    # -- house-keeping ----------------------------------------------------------------------------
    def discard(self, folder: Path | None) -> None:
        """Delete one request's folder (once Gradio has copied its outputs into its cache)."""
        if folder is not None and Path(folder).parent == self.workdir:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        """Delete the work folder if this service made it."""
        if self._cleanup is not None:
            self._cleanup()

    def warm_up(self) -> None:
        """Load the speech encoder, the default model (and its ONNX Runtime decoder) and the
        renderer in the background, so the first click is quick."""
        def load():
            for what, step in (("speech encoder", lambda: self.talker.features(_WARM_UP_TONE)),
                               ("default model", lambda: self.talker.decoder_backend(self.default_steps)),
                               ("face renderer", self.face_renderer)):
                try:
                    step()
                except Exception:  # a real problem will surface, with its message, on the first request
                    log.exception("warm-up of the %s failed", what)
        threading.Thread(target=load, name="warm-up", daemon=True).start()

    def _new_folder(self) -> Path:
        """A fresh folder for one request's files; folders older than ``keep_seconds`` go.

        The app deletes each request's folder itself (:meth:`discard`) once Gradio has copied the
        outputs into its cache; this sweep only catches what a failed request left behind.
        """
        now = time.time()
        for old in self.workdir.glob("req-*"):
            with contextlib.suppress(OSError):  # another request may be deleting it right now
                if now - old.stat().st_mtime > self.keep_seconds:
                    shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix="req-", dir=self.workdir))


_WARM_UP_TONE = (0.1 * np.sin(np.linspace(0, 2000, SAMPLE_RATE))).astype(np.float32)  # 1 s, not silent


def _consecutive_runs(seeds: Sequence[int]) -> list[tuple[int, int]]:
    """``[0, 1, 2, 7]`` -> ``[(0, 3), (7, 1)]``: seeds that one batched call can sample."""
    runs: list[tuple[int, int]] = []
    for seed in seeds:
        if runs and seed == runs[-1][0] + runs[-1][1]:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((seed, 1))
    return runs


def _stem(audio, suffix: str) -> str:
    """A safe download-file stem from the input's name, e.g. ``hello_8steps_seed0``."""
    name = Path(audio).stem if isinstance(audio, (str, os.PathLike)) else "speech"
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:40] or "speech"
    return f"{name}_{suffix}"


# --------------------------------------------------------------------------- output formatting

def scores_table(generation: "Generation") -> pd.DataFrame:
    """Every library identity with its cosine similarity to the voice, best first."""
    rows = []
    for name, score in generation.scores:
        role = [label for label, hit in (("matched", name == generation.matched_identity),
                                         ("style used", name == generation.identity)) if hit]
        rows.append(dict(zip(SCORE_COLUMNS, (name, round(float(score), 3), ", ".join(role)))))
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def identity_summary(generation: "Generation") -> str:
    """The matched identity with its similarity, and the style used if another one was picked."""
    best = dict(generation.scores)[generation.matched_identity]
    text = f"{generation.matched_identity} (similarity {float(best):.3f})"
    if generation.identity != generation.matched_identity:
        text += f"; animated in the style of {generation.identity}"
    return text


_STAGES = (("decode", "decode audio"), ("encoder", "speech encoder"), ("match", "identity matching"),
           ("sampling", "diffusion sampling"), ("export", "export files"), ("render", "render video"))


_DECODERS = {"onnx": "ONNX Runtime", "torch": "PyTorch"}


def timings_markdown(take: Take, rendering: bool = False) -> str:
    """The timing readout: seconds per stage and the inference time per frame (ITF)."""
    generation = take.generation
    frames, samples = generation.frames, len(generation.blendshapes)
    lines = ["| stage | seconds |", "|---|---:|"]
    for key, label in _STAGES:
        if key == "sampling":
            label += f" ({generation.steps} steps x {samples} sample{'s' * (samples > 1)})"
        if key in take.timings:
            lines.append(f"| {label} | {take.timings[key]:.3f} |")
        elif key == "render" and rendering:
            lines.append(f"| {label} | running ... |")
    itf_ms = 1000 * take.model_seconds / max(1, frames)
    lines.append(f"\n**ITF {itf_ms:.2f} ms per frame** (decode + encoder + matching + sampling, "
                 f"{frames} frames = {frames / generation.fps:.2f} s at {generation.fps} fps, "
                 f"on {take.device}, decoder on {_DECODERS.get(generation.decoder, generation.decoder)})")
    return "\n".join(lines)


def comparison_summary(comparison: Comparison) -> str:
    """What was compared, and the mean spread across seeds of the upper face vs the lips."""
    spreads = comparison.spreads()
    text = (f"{len(comparison.runs)} takes of {len(comparison.wave) / SAMPLE_RATE:.2f} s in "
            f"{comparison.seconds:.2f} s (encoder once, then sampling), style: **{comparison.identity}**.")
    if spreads:
        rows = [f"| {steps} | {s[list(UPPER_INDICES)].mean():.4f} | {s[list(LIP_INDICES)].mean():.4f} |"
                for steps, s in spreads.items()]
        text += ("\n\n| steps | spread, upper face | spread, lips |\n|---:|---:|---:|\n" + "\n".join(rows)
                 + "\n\nSpread = std across seeds, averaged over time and channels.")
    return text


# --------------------------------------------------------------------------- the Blocks

@contextlib.contextmanager
def _errors_shown(input_errors: bool = True) -> Iterator[None]:
    """Turn exceptions into ``gr.Error`` pop-ups (no traceback reaches the page).

    With ``input_errors``, a ``ValueError`` (``core.audio.AudioError`` included) is a problem
    with the input and its message, written for the user, is shown as is; anything else is
    logged with its traceback and reported briefly.
    """
    try:
        yield
    except gr.Error:
        raise
    except Exception as err:
        if input_errors and isinstance(err, ValueError):
            raise gr.Error(str(err), title="Cannot use this input", print_exception=False) from None
        log.exception("request failed")
        raise gr.Error(f"Something went wrong ({type(err).__name__}: {err}). The app is still running; "
                       "please try again.", title="Internal error", print_exception=False) from None


def build_demo(checkpoints: str | Path = "checkpoints", talker: "Talker | None" = None,
               max_seconds: float = MAX_AUDIO_SECONDS, examples: Sequence[str | Path] | None = None,
               warm_up: bool = True, service: DemoService | None = None, enroll: bool = True,
               delete_cache: tuple[int, int] | None = DELETE_CACHE) -> gr.Blocks:
    """The app's Blocks (queue enabled). Without a usable checkpoint: a page saying how to train one.

    ``talker`` overrides ``checkpoints`` and ``service`` (a :class:`DemoService`, e.g. with its own
    work folder) overrides both; ``examples`` (wav paths) default to :func:`example_files`;
    ``warm_up`` loads the encoder and renderer in the background right away; ``enroll`` adds the
    Enroll tab (it writes the identity libraries beside the checkpoints); ``delete_cache`` is
    Gradio's (frequency, age) sweep of its file cache. The service is ``demo.service``.
    """
    if service is None:
        if talker is None:
            talker, problem = load_talker(checkpoints)
            if talker is None:
                return missing_checkpoint_page(problem)
        service = DemoService(talker, max_seconds)
    max_seconds = service.max_seconds
    if warm_up:
        service.warm_up()

    def identity_choices() -> list[tuple[str, str]]:
        return [("matched from voice", AUTO)] + [(name, name) for name in service.identities]

    def generate(audio, steps, seed, num_samples, identity):
        """Animate speech: identity match, curves (yielded first), then the face video and files."""
        with _errors_shown():
            take = service.generate(audio, steps, seed, num_samples, identity)
        try:
            generation = take.generation
            with _errors_shown(input_errors=False):
                outputs = [identity_summary(generation), scores_table(generation),
                           plots.curves_figure(generation.blendshapes, generation.fps,
                                               f"{generation.steps} steps, seed {generation.seeds[0]}")]
            yield *outputs, None, timings_markdown(take, rendering=True), None
            with _errors_shown(input_errors=False):
                files = service.export(take)
            try:
                video = service.render(take)
            except Exception as err:  # the curves stand without the video: warn, do not fail
                log.exception("rendering failed")
                video = None
                take.notes.append(f"Could not render the face video: {err}")
            for note in take.notes:
                gr.Warning(note)
            yield *outputs, video, timings_markdown(take), [str(f) for f in files]
        finally:  # reached after Gradio has copied the last outputs into its cache (or on failure)
            service.discard(take.folder)

    def compare(audio, steps_list, seeds, channels, identity):
        """Every step count x seed: overlaid curves and spread across seeds first, then a tiled video."""
        with _errors_shown():
            comparison = service.compare(audio, steps_list, seeds, identity)
            curves = plots.compare_figure(comparison.runs, channels)  # raises for an unknown channel name
        try:
            with _errors_shown(input_errors=False):
                spread, summary = plots.spread_figure(comparison.spreads()), comparison_summary(comparison)
            yield None, curves, spread, summary, comparison.runs
            with _errors_shown(input_errors=False):
                video = service.render_comparison(comparison)
            yield video, curves, spread, summary, comparison.runs
        finally:
            service.discard(comparison.folder)

    def replot(runs, channels):
        with _errors_shown():
            return plots.compare_figure(runs or {}, channels)

    def enroll_identity(speech_files, csv_files, name, iterations, progress=gr.Progress()):
        """Learn a new identity from the takes; every session (and the API) can use it at once."""
        with _errors_shown():
            status = service.enroll(speech_files, csv_files, name, iterations,
                                    progress=lambda line: progress(None, desc=line))
        # The shared dropdown is what new sessions and API clients are checked against; the
        # browser that enrolled updates its own copy in refresh_identities (chained below).
        with _errors_shown(input_errors=False):
            identity.choices = identity_choices()
        return status

    def refresh_identities():
        return gr.Dropdown(choices=identity_choices()), _header(service)

    with gr.Blocks(title=TITLE, delete_cache=delete_cache) as demo:
        header = gr.Markdown(_header(service))
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                # No `format=`: Gradio would convert non-wav uploads with pydub, which needs a system
                # ffprobe; core.audio.load_audio decodes any format itself (static ffmpeg wheel).
                audio = gr.Audio(sources=["microphone", "upload"], type="filepath", elem_id="speech-input",
                                 label=f"Speech: record or upload (up to {max_seconds:.0f} s)")
            with gr.Column(scale=2):
                identity = gr.Dropdown(identity_choices(), value=AUTO, label="Talking style",
                                       info="the identity matched from the voice, or any identity "
                                            "of the library (style transfer)")
                examples = example_files() if examples is None else list(examples)
                if examples:
                    gr.Examples([[str(p)] for p in examples], inputs=[audio], label="Example clips",
                                cache_examples=False, examples_per_page=10)
        with gr.Tabs():
            with gr.Tab("Generate"):
                with gr.Row(equal_height=True):
                    steps = gr.Dropdown(service.steps_choices, value=service.default_steps, label="Diffusion steps",
                                        info="fewer = faster (distilled students)", elem_id="steps")
                    with gr.Column(min_width=160):
                        seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", elem_id="seed")
                        new_seed = gr.Button("New random seed", size="sm", elem_id="new-seed")
                    num_samples = gr.Slider(1, MAX_SAMPLES, value=1, step=1, label="Samples",
                                            info="seeds seed .. seed+K-1; the video shows sample 1")
                run = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Row(equal_height=False):
                    with gr.Column():
                        matched = gr.Textbox(label="Identity matched from the voice", interactive=False,
                                             elem_id="matched-identity")
                        scores = gr.Dataframe(pd.DataFrame(columns=SCORE_COLUMNS), interactive=False,
                                              label="Similarity of the voice to every identity (cosine)",
                                              max_height=320, elem_id="identity-scores")
                        timings = gr.Markdown(label="Timings")
                    with gr.Column():
                        video = gr.Video(label="Face (sample 1)", interactive=False, elem_id="face-video")
                        files = gr.File(label="Downloads: Live Link Face CSV, JSON, NPY, GLB", file_count="multiple",
                                        interactive=False, height=230, elem_id="downloads")
                curves = gr.Plot(label="Blendshape curves", elem_id="curves-plot")
            with gr.Tab("Compare steps and seeds"):
                with gr.Row(equal_height=True):
                    compare_steps = gr.Dropdown(service.steps_choices, value=service.default_compare_steps,
                                                multiselect=True, label="Step counts")
                    compare_seeds = gr.Textbox("0, 1, 2", label="Seeds", info="comma-separated")
                    channels = gr.Dropdown(list(GROUPS) + list(ARKIT_NAMES), value="jaw/lips",
                                           label="Channels to overlay", info="a group or one channel")
                run_compare = gr.Button("Compare", variant="primary", elem_id="compare")
                with gr.Row(equal_height=False):
                    compare_video = gr.Video(label="Rows: step counts, columns: seeds", interactive=False,
                                             elem_id="compare-video")
                    summary = gr.Markdown()
                compare_curves = gr.Plot(label="Curves overlaid")
                spread = gr.Plot(label="Spread across seeds")
                runs = gr.State()
            if enroll:
                with gr.Tab("Enroll a new identity"):
                    gr.Markdown("Add a talking style to the library from recordings of one person: each "
                                "speech file with the Live Link Face CSV captured with it, **paired by file "
                                "name** (`take1.wav` + `take1.csv`), at least 2 s each. The models stay "
                                "frozen; only the new identity's embedding is learned, in every model.")
                    with gr.Row(equal_height=True):
                        enrol_speech = gr.File(label="Speech recordings", file_count="multiple", type="filepath",
                                               file_types=SPEECH_FILE_TYPES, elem_id="enroll-speech")
                        enrol_csvs = gr.File(label="Live Link Face CSVs (same names)", file_count="multiple",
                                             type="filepath", file_types=[".csv"], elem_id="enroll-csv")
                    with gr.Row(equal_height=True):
                        enrol_name = gr.Textbox(label="Name of the new identity", max_lines=1, max_length=64,
                                                elem_id="enroll-name")
                        low, default, high = ENROL_ITERATIONS
                        enrol_iterations = gr.Slider(low, high, value=default, step=1, label="Iterations",
                                                     info="more = a closer fit, slower")
                    enrol_button = gr.Button("Enroll", variant="primary", elem_id="enroll")
                    enrol_status = gr.Markdown(elem_id="enroll-status")

        new_seed.click(lambda: random.randint(0, MAX_SEED), outputs=seed, queue=False, api_visibility="private")
        # Generations and comparisons share one limit: MAX_CONCURRENT model calls + renders at once.
        run.click(generate, inputs=[audio, steps, seed, num_samples, identity],
                  outputs=[matched, scores, curves, video, timings, files], api_name="generate",
                  concurrency_id="model", concurrency_limit=MAX_CONCURRENT)
        run_compare.click(compare, inputs=[audio, compare_steps, compare_seeds, channels, identity],
                          outputs=[compare_video, compare_curves, spread, summary, runs], api_name="compare",
                          concurrency_id="model", concurrency_limit=MAX_CONCURRENT)
        channels.change(replot, inputs=[runs, channels], outputs=compare_curves, api_visibility="private")
        if enroll:
            enrol_button.click(enroll_identity, inputs=[enrol_speech, enrol_csvs, enrol_name, enrol_iterations],
                               outputs=enrol_status, api_name="enroll", concurrency_id="enroll",
                               concurrency_limit=1).success(
                refresh_identities, outputs=[identity, header], queue=False, api_visibility="private")
        # A page opened after an enrolment elsewhere lists the new identity too.
        demo.load(refresh_identities, outputs=[identity, header], queue=False, api_visibility="private")
    demo.queue(default_concurrency_limit=MAX_CONCURRENT, max_size=MAX_QUEUE)
    demo.service = service
    return demo


def missing_checkpoint_page(problem: str) -> gr.Blocks:
    """Served instead of the demo when no model is trained yet."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"""# {TITLE}

## No trained checkpoint yet

{problem} Run the training commands in the README (*Further commands*), then restart the app:

```bash
python -m core.data.synth --out corpus/default --seed 0 --size default
python -m core.train --data corpus/default --out checkpoints/teacher-256 --steps 256 --epochs 40
python -m core.distill --teacher checkpoints/teacher-256 --data corpus/default --out-root checkpoints --down-to 1
python -m core.manifest checkpoints --fp16
```

Or start the app on another folder: `python app.py --checkpoints PATH`.
""")
    return demo


def _header(service: DemoService) -> str:
    steps = ", ".join(map(str, service.steps_choices))
    return (f"# {TITLE}\n"
            "Speech in, 52 ARKit blendshape curves at 30 fps out, from a distilled diffusion model. "
            f"The voice is matched against a library of {len(service.identities)} talking styles. "
            f"Models: {steps} diffusion steps; running on **{service.talker.device}**.")
