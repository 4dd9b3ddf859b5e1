"""Takes without Gradio: checks, generation, comparison, exports, renders and the viewer's values.

:class:`DemoService` is what the UI (``demo.ui``) calls and what the tests call directly. Its
``ValueError``s are messages for the user. The other jobs are apart: request folders
(:class:`demo.folders.RequestFolders`, ``service.folders``), enrolment
(:class:`demo.enrolment.Enrolment`, ``service.enrolment``) and the result types
(:mod:`demo.results`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from core.audio.decode import MAX_REQUEST_SECONDS, load_audio
from core.emotion import NEUTRAL
from core.face.export import SUFFIXES as EXPORT_SUFFIXES
from core.inference.controls import Controls, check_honoured, limits
from core.inputs import AUTO_IDENTITY as AUTO, MAX_SEED, shown
from core.rates import FPS, SAMPLE_RATE
from demo import viewer
from demo.avatars import Avatar, AvatarLibrary
from demo.enrolment import Enrolment
from demo.folders import RequestFolders
from demo.formatting import cell_label, controls_stem, grid_label, without_folder
from demo.live import LIVE_STEPS
from demo.forms import parse_samples, parse_seed, parse_seeds
from demo.results import Comparison, Request, Take

if TYPE_CHECKING:  # torch is imported only when a checkpoint is actually loaded
    from core.inference.talker import Generation, Talker

try:  # Hugging Face ZeroGPU attaches a GPU only inside functions wrapped like this
    import spaces
    gpu = spaces.GPU
except ImportError:  # everywhere else: a no-op
    def gpu(fn):
        return fn

log = logging.getLogger(__name__)


EXAMPLES_DIR = Path(__file__).parent / "examples"
MAX_AUDIO_SECONDS = MAX_REQUEST_SECONDS   # longer clips are refused (render time grows with length)
MAX_COMPARE_CELLS = 12             # step counts x seeds in one comparison
# Work of one request: takes (samples, or comparison cells) x seconds of audio. Every take is
# sampled and rendered, so this bounds how long one request holds a model slot (a 12-cell
# comparison of a 120 s clip held one for 608 s): 12 takes of 20 s, or 2 of 120 s.
MAX_TAKE_SECONDS = 240.0
# A video's render time grows with frames x the head's vertices (an 8 s take on a 60,000-vertex
# head: 133 s). Bound: vertex-seconds of video (takes x seconds x vertices) per request; the
# default head (4,368 vertices) fits every request MAX_TAKE_SECONDS allows, a 60,000-vertex avatar
# gets 20 s of video: no avatar makes a render cost more than the default head's longest.
MAX_RENDER_VERTEX_SECONDS = MAX_TAKE_SECONDS * 5_000
VIDEO_SIZE = 512                   # pixels, the single-take video


def example_files(folder: Path | None = None) -> list[Path]:
    """The example clips: every .wav in ``folder`` (default ``demo/examples/``); none is fine."""
    folder = Path(folder or EXAMPLES_DIR)
    return sorted(folder.glob("*.wav")) if folder.is_dir() else []


def load_talker(path: str | Path) -> tuple["Talker | None", str | None]:
    """``(talker, None)``, or ``(None, why)`` when ``path`` holds no usable checkpoint."""
    path = Path(path)
    if not path.is_dir() or not any((path / name).is_file() for name in ("manifest.json", "config.json")):
        return None, f"There is no trained checkpoint in `{path}` yet."
    from core.identities.enrolment import repair_libraries
    from core.inference.talker import Talker
    try:
        talker = Talker.from_pretrained(path)
        broken = talker.check_all()        # every model's checksums now; a damaged one is left out
        if not talker.entries:
            return None, f"None of the checkpoints in `{path}` can be used: {'; '.join(broken.values())}"
        with contextlib.suppress(OSError):          # read-only checkpoints: nothing to repair there
            repair_libraries(path)                  # an enrolment a crash interrupted: finished or undone
        talker.model(talker.steps_available[-1])  # loads the smallest model now, not on the first click
    except (ValueError, OSError) as err:
        return None, f"The checkpoints in `{path}` could not be loaded: {err}"
    for problem in talker.problems():
        log.warning("%s", problem)
    return talker, None


@gpu
def _sample(talker: "Talker", wave: np.ndarray, steps: int, seed: int, identity: str | None, num_samples: int,
            features: np.ndarray | None = None, speech_check=True, controls: Controls | None = None) -> "Generation":
    """The model call, the only part that needs a GPU (``@spaces.GPU`` on ZeroGPU Spaces).
    The app always checks for speech (a warning, and lips closed in pauses; core.audio.speech_check)."""
    return talker.generate(wave, steps=steps, seed=seed, identity=identity, num_samples=num_samples,
                           features=features, speech_check=speech_check, controls=controls)


class DemoService:
    """Everything the demo does, without Gradio: checks, generation, exports and renders."""

    def __init__(self, talker: "Talker", max_seconds: float = MAX_AUDIO_SECONDS, video_size: int = VIDEO_SIZE,
                 workdir: str | Path | None = None, keep_seconds: float = 3600.0):
        self.talker = talker
        self.max_seconds = max_seconds
        self.video_size = video_size
        self._renderers: dict[str, object] = {}   # avatar id -> core.face.render.FaceRenderer, built on first use
        self._renderer_lock = threading.Lock()
        self.folders = RequestFolders(workdir, keep_seconds)
        self.enrolment = Enrolment(talker)
        self.avatars = AvatarLibrary()
        # packed heads and the takes' audio, served as static files
        self.viewer_assets = viewer.ViewerAssets(self.folders.workdir / "viewer", keep_seconds)

    # -- what the controls offer ------------------------------------------------------------------
    @property
    def steps_choices(self) -> list[int]:
        """The step counts offered: those whose upper face still varies with the seed (see withheld_steps)."""
        return [s for s in self.talker.steps_available if s not in self.withheld_steps] or self.talker.steps_available

    @property
    def withheld_steps(self) -> dict[int, str]:
        """Step counts not offered, with why: on validation clips their samples vary across seeds
        much less than their teacher's (``experiments.evaluate upper-face --split val --offer``)."""
        checks = {s: self.talker.seed_check(s) for s in self.talker.steps_available}
        return {s: check["why"] for s, check in checks.items() if check and not check["offered"]}

    @property
    def default_steps(self) -> int:
        return 8 if 8 in self.steps_choices else min(self.steps_choices)

    @property
    def default_live_steps(self) -> int:
        """The Live tab's: 4 where offered and it honours every control the default model does.
        Its decoder costs half of 8 steps', so that the Live stream's worker is no longer busy for a
        whole hop on a 2-core machine and its blocks stop waiting for each other (docs/DECISIONS.md,
        Live); offline its lips are within 3 % of 8 steps'. A 4-step model without, e.g., emotions
        would take them from the tab: then the default step count it is."""
        if LIVE_STEPS in self.steps_choices and \
                set(self.control_limits(LIVE_STEPS)) <= set(self.control_limits(self.default_steps)):
            return LIVE_STEPS
        return self.default_steps

    @property
    def default_compare_steps(self) -> list[int]:
        """The default step count, the fewest, and one well above the default (e.g. 32, 8, 1)."""
        wanted = {self.default_steps, self.steps_choices[-1],
                  max((s for s in self.steps_choices if s <= 4 * self.default_steps), default=self.default_steps)}
        return sorted(wanted, reverse=True)

    @property
    def identities(self) -> list[str]:
        return list(self.talker.identities())

    def check_steps(self, value) -> int:
        steps = self.talker.check_steps(value)
        if steps in self.withheld_steps and steps not in self.steps_choices:
            raise ValueError(f"The {steps}-step model is not offered here: {self.withheld_steps[steps]}. "
                             f"Choose one of {', '.join(map(str, self.steps_choices))}.")
        return steps

    def check_identity(self, value) -> str | None:
        """None for 'matched from the voice', else a library identity."""
        if value in (None, "", AUTO):
            return None
        if value not in self.identities:
            raise ValueError(f"Unknown identity {shown(value)}; choose one from the list.")
        return value

    def control_limits(self, steps_list) -> dict[str, str]:
        """The controls (:class:`Controls` fields) that some of these step counts' models cannot
        honour, each with why ("not available with the 8-step model (trained without emotions)"):
        the page disables them and says so. Read from the models' configs; nothing is loaded."""
        if isinstance(steps_list, (int, str)):
            steps_list = [steps_list]
        steps_list = sorted({self.check_steps(s) for s in steps_list}, reverse=True)
        lacking: dict[str, dict[str, list[int]]] = {}           # control -> why -> step counts
        for steps in steps_list:
            for control, why in limits(self.talker.config(steps)).items():
                lacking.setdefault(control, {}).setdefault(why, []).append(steps)

        def which(counts: list[int]) -> str:
            if len(counts) > 1 and len(counts) == len(steps_list):
                return "these models"
            numbers = [f"{c}-" for c in counts]
            listed = ", ".join(numbers[:-1]) + " and " + numbers[-1] if len(numbers) > 1 else numbers[0]
            return f"the {listed}step model{'s' * (len(counts) > 1)}"
        return {control: "not available with " + "; ".join(f"{which(counts)} ({why})" for why, counts in by_why.items())
                for control, by_why in lacking.items()}

    def check_controls(self, steps: int, controls: Controls) -> Controls:
        """``controls`` if ``steps``' model can honour them, else a plain ValueError before any work."""
        check_honoured(controls, self.talker.config(steps), f"The {steps}-step model")
        return controls

    def check_work(self, takes: int, wave: np.ndarray, what: str) -> None:
        """Refuse a request of more than MAX_TAKE_SECONDS (takes x seconds of audio)."""
        seconds = len(wave) / SAMPLE_RATE
        if takes * seconds > MAX_TAKE_SECONDS:
            raise ValueError(f"{what} of {seconds:.0f} s of speech is more than one request may compute "
                             f"({MAX_TAKE_SECONDS:.0f} take-seconds, e.g. {MAX_COMPARE_CELLS} takes of "
                             f"{MAX_TAKE_SECONDS / MAX_COMPARE_CELLS:.0f} s); use fewer takes or a shorter clip.")

    def check_render(self, takes: int, wave: np.ndarray, avatar: Avatar | None) -> None:
        """Refuse a video of more than MAX_RENDER_VERTEX_SECONDS (takes x seconds x the head's vertices)."""
        seconds, vertices = len(wave) / SAMPLE_RATE, len((avatar or self.avatar()).mesh.vertices)
        if takes * seconds * vertices > MAX_RENDER_VERTEX_SECONDS:
            longest = MAX_RENDER_VERTEX_SECONDS / takes / vertices
            raise ValueError(f"A video of {takes * seconds:.0f} s on a head of {vertices:,} vertices is more than one "
                             f"request may render ({MAX_RENDER_VERTEX_SECONDS / 1e6:.1f} million vertex-seconds: "
                             f"{longest:.0f} s of video on this head); use a shorter clip, fewer takes or a lighter "
                             "avatar. The 3D head and the downloads do not need the video.")

    def load(self, audio) -> np.ndarray:
        """The input as 16 kHz mono (raises ValueError with a plain message)."""
        if audio is None or (isinstance(audio, str) and not audio.strip()):
            raise ValueError("Record or upload some speech first.")
        source = Path(audio) if isinstance(audio, (str, os.PathLike)) else None
        if source is not None and not source.exists():
            raise ValueError(f"The speech file '{source.name}' is no longer on the server (files are kept for an "
                             "hour); choose, upload or record it again.")
        try:
            return load_audio(audio, max_seconds=self.max_seconds)
        except ValueError as err:
            plain = without_folder(str(err), source) if source is not None else str(err)
            if plain == str(err):
                raise
            raise ValueError(plain) from None   # the file's name, not the server's folder

    # -- Generate ---------------------------------------------------------------------------------
    def generate(self, audio, steps=8, seed=0, num_samples=1, identity=AUTO, controls: Controls | None = None) -> Take:
        """Curves, identity scores and timings for one input (no files written yet); ``controls``
        (made by ``Controls.checked`` from the form) default to today's face."""
        return self.run(self.prepare(audio, steps, seed, num_samples, identity, controls))

    def prepare(self, audio, steps=8, seed=0, num_samples=1, identity=AUTO,
                controls: Controls | None = None) -> Request:
        """A Generate request checked and its audio decoded, before the model runs (the page
        sends the audio to the viewer meanwhile: :meth:`viewer_audio`)."""
        steps, seed = self.check_steps(steps), parse_seed(seed)
        num_samples, identity = parse_samples(num_samples), self.check_identity(identity)
        controls = self.check_controls(steps, controls or Controls())
        if seed + num_samples - 1 > MAX_SEED:
            raise ValueError(f"Seeds {seed}..{seed + num_samples - 1} go past {MAX_SEED}; pick a smaller seed.")
        start = time.perf_counter()
        wave = self.load(audio)
        self.check_work(num_samples, wave, f"{num_samples} sample{'s' * (num_samples > 1)}")
        name = _stem(audio, f"{steps}steps_seed{seed}{controls_stem(controls)}")
        return Request(wave, steps, seed, num_samples, identity, controls, name, time.perf_counter() - start)

    def run(self, request: Request) -> Take:
        """The model on a prepared request: its take."""
        generation = _sample(self.talker, request.wave, request.steps, request.seed, request.identity,
                             request.num_samples, controls=request.controls)
        timings = {"decode": request.decode_seconds + generation.timings.get("decode", 0.0)}
        timings.update({k: generation.timings[k] for k in ("speech check", "encoder", "match", "sampling")})
        notes = [generation.speech.warning()] if generation.speech and generation.speech.warning() else []
        return Take(generation, request.wave, request.name, self.folders.new(), timings, str(self.talker.device), notes)

    def export(self, take: Take) -> list[Path]:
        """Sample 1 as Live Link Face CSV, JSON, NPY and GLB (+ every sample as one NPY if K > 1)."""
        from core.face.export import export_curves
        start = time.perf_counter()
        curves, head, fps = take.generation.blendshapes, take.generation.head, take.generation.fps
        files = []
        for suffix in EXPORT_SUFFIXES:
            try:
                files.append(export_curves(curves[0], take.folder / f"{take.name}{suffix}", fps=fps,
                                           face=take.avatar.mesh if take.avatar else None, head=head[0]))
            except Exception as err:  # one failing format (e.g. no face mesh for .glb) must not sink the rest
                log.exception("export to %s failed", suffix)
                take.notes.append(f"Could not write the {suffix} file: {err}")
        if len(curves) > 1:            # [K, T, 55]: each sample's curves, then its head (as the one-sample .npy)
            all_samples = take.folder / f"{take.name}_all_{len(curves)}_samples.npy"
            np.save(all_samples, np.concatenate([curves, head], axis=-1))
            files.append(all_samples)
        take.timings["export"] = time.perf_counter() - start
        return files

    def render(self, take: Take, progress=None) -> Path:
        """The face-mesh mp4 of sample 1 with the input audio, on the take's avatar.

        ``progress(done, total)`` hears of every frame.
        """
        from core.face.render import render_video
        self.check_render(1, take.wave, take.avatar)
        start = time.perf_counter()
        path = render_video(take.generation.blendshapes[0], take.wave, take.folder / f"{take.name}.mp4",
                            fps=take.generation.fps, renderer=self.face_renderer(take.avatar), progress=progress,
                            head=take.generation.head[0])
        take.timings["render"] = time.perf_counter() - start
        return path

    def face_renderer(self, avatar: Avatar | None = None):
        """One :class:`core.face.render.FaceRenderer` per avatar for every request (thread-safe);
        the default head's is kept, of the others only the latest four."""
        avatar = avatar or self.avatars.default()
        with self._renderer_lock:
            if avatar.id not in self._renderers:
                from core.face.render import FaceRenderer  # imports pyrender: slow, so only when needed
                others = [key for key in self._renderers if key != "default"]
                for key in others[:max(0, len(others) - 3)]:
                    self._renderers.pop(key).close()
                self._renderers[avatar.id] = FaceRenderer(avatar.mesh, size=self.video_size)
            return self._renderers[avatar.id]

    # -- the 3D viewer ----------------------------------------------------------------------------
    def avatar(self, avatar_id: str | None = None) -> Avatar:
        return self.avatars.get(avatar_id)

    def viewer_head(self, avatar_id: str | None = None) -> dict:
        """The viewer's value for a head with no take yet (the page's first view, a new avatar)."""
        avatar = self.avatar(avatar_id)
        return {"mesh": self.mesh_url(avatar), "missing": list(avatar.missing), "cells": []}

    def mesh_url(self, avatar: Avatar) -> str:
        """The URL of an avatar's packed head (the default head's file is kept for good)."""
        return self.viewer_assets.mesh_url(avatar.mesh, pin=avatar.id == "default")

    def viewer_audio(self, wave: np.ndarray, avatar_id: str | None = None) -> dict:
        """The viewer's value while a take is computed: its head and the audio to load meanwhile
        (the take's value names the same file, so the head moves as soon as the curves arrive)."""
        return {**self.viewer_head(avatar_id), "audio": self.viewer_assets.audio_url(wave)}

    def viewer_take(self, take: Take) -> dict:
        """The viewer's value for sample 1 of a take: its curves, its head and its audio."""
        avatar = take.avatar or self.avatar()
        generation = take.generation
        label = cell_label(generation.steps, generation.seeds[0], generation.controls)
        return viewer.payload([(label, generation.blendshapes[0], generation.head[0])], generation.fps,
                              self.mesh_url(avatar), self.viewer_assets.audio_url(take.wave),
                              missing=avatar.missing)

    def viewer_grid(self, comparison: Comparison) -> dict:
        """The viewer's value for a comparison: every (steps, emotion, seed) cell on one clock."""
        avatar = comparison.avatar or self.avatar()
        cells = [(grid_label(comparison, cell), comparison.runs[cell], comparison.heads.get(cell))
                 for cell in comparison.cells]
        return viewer.payload(cells, FPS, self.mesh_url(avatar), self.viewer_assets.audio_url(comparison.wave),
                              cols=len(comparison.seeds), missing=avatar.missing)

    # -- Compare ----------------------------------------------------------------------------------
    def compare(self, audio, steps_list: Sequence, seeds, identity=AUTO,
                controls: Sequence[Controls] | None = None) -> Comparison:
        """Curves for every step count x emotion x seed, all from one encoder pass. ``controls``:
        one per emotion to lay side by side (made by ``Controls.checked``), sharing every other
        control; default: today's face."""
        steps_list = sorted({self.check_steps(s) for s in (steps_list or [])}, reverse=True)
        if not steps_list:
            raise ValueError("Pick at least one step count to compare.")
        seeds, identity = parse_seeds(seeds), self.check_identity(identity)
        by_emotion = {c.emotion: c for c in (controls or [Controls()])}
        if len({dataclasses.replace(c, emotion=NEUTRAL) for c in by_emotion.values()}) > 1:
            raise ValueError("The emotions of one comparison share the intensity, strengths and head switch.")
        for steps in steps_list:
            for each in by_emotion.values():
                self.check_controls(steps, each)
        emotions, cells = list(by_emotion), len(steps_list) * len(by_emotion) * len(seeds)
        if cells > MAX_COMPARE_CELLS:
            raise ValueError(f"{len(steps_list)} step counts x {len(seeds)} seeds"
                             f"{f' x {len(emotions)} emotions' * (len(emotions) > 1)} is more than "
                             f"{MAX_COMPARE_CELLS} videos; pick fewer.")
        wave = self.load(audio)
        self.check_work(cells, wave, f"{cells} takes")
        start = time.perf_counter()
        features, _ = self.talker.features(wave)
        from core.audio.speech_check import check_speech
        speech = check_speech(wave)                           # once for every cell
        runs, heads, used = {}, {}, identity
        for steps in steps_list:
            for emotion, each in by_emotion.items():
                for first, count in _consecutive_runs(seeds):   # seed k of a batch is first + k
                    generation = _sample(self.talker, wave, steps, first, identity, count, features, speech, each)
                    used = generation.identity
                    for k in range(count):
                        runs[(steps, emotion, first + k)] = generation.blendshapes[k]
                        heads[(steps, emotion, first + k)] = generation.head[k]
        return Comparison(runs, steps_list, seeds, used, wave, _stem(audio, "compare"), self.folders.new(),
                          time.perf_counter() - start, speech.warning(), emotions=emotions,
                          controls=by_emotion[emotions[0]], heads=heads)

    def render_comparison(self, comparison: Comparison, progress=None) -> Path:
        """One mp4: a row per step count (and emotion), a column per seed, with the input audio."""
        from core.face.render import render_grid_video
        cells = comparison.cells
        self.check_render(len(cells), comparison.wave, comparison.avatar)
        return render_grid_video([comparison.runs[cell] for cell in cells],
                                 [grid_label(comparison, cell) for cell in cells], comparison.wave,
                                 comparison.folder / f"{comparison.name}.mp4", fps=FPS,
                                 cols=len(comparison.seeds), size=384 if len(cells) <= 4 else 256,
                                 mesh=comparison.avatar.mesh if comparison.avatar else None, progress=progress,
                                 heads=[comparison.heads.get(cell) for cell in cells])

    # -- house-keeping ----------------------------------------------------------------------------
    def warm_up(self) -> threading.Thread:
        """Load the speech encoder, the voice-activity detector, the default model (and its ONNX
        Runtime decoder) and the renderer in the background, so the first click is quick.
        Returns the thread doing it."""
        def load():
            for what, step in (("default model and speech encoder", lambda: self.talker.warm_up(self.default_steps)),
                               ("Live tab's model", lambda: self.talker.decoder(self.default_live_steps)),
                               ("face renderer", self.face_renderer)):
                try:
                    step()
                except Exception:  # a real problem will surface, with its message, on the first request
                    log.exception("warm-up of the %s failed", what)
        thread = threading.Thread(target=load, name="warm-up", daemon=True)
        thread.start()
        return thread


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
