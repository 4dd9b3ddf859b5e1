"""The Gradio app: speech in; ARKit-52 curves, matched identity, face video and downloads out.

Layout: one audio input (microphone or upload) and a talking-style choice, shared by two tabs,
*Generate* (one take, optionally several seeds) and *Compare* (step counts x seeds side by
side); *Live* streams the microphone to the head (:mod:`demo.live_tab`); *Enroll* adds a new
identity from recordings + Live Link Face CSVs. The
work is done by :class:`demo.service.DemoService`, which knows nothing about Gradio; the
callbacks here only turn its results into component values (:mod:`demo.formatting`,
:mod:`demo.plots`) and its ``ValueError``s into ``gr.Error`` messages, so that bad input never
shows a traceback and the app keeps serving.

Load: at most :data:`MAX_CONCURRENT` generations or comparisons run at once (one queue group;
up to :data:`MAX_QUEUE` wait) and one enrolment. Gradio's cache (the copies of the outputs and
the uploads) is swept by ``delete_cache`` (:data:`DELETE_CACHE`).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import pandas as pd

from core.cpu import limit_numpy_blas
from demo.housekeeping import use_own_gradio_cache

limit_numpy_blas()  # before any request thread calls numpy BLAS (see core.cpu)

# Before gradio is imported: no usage analytics and no Hugging Face telemetry (no outside network),
# and a cache folder of this server's own (uploads, output copies, example clips): servers never
# delete each other's files, and what a killed server left there is swept at the next start.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
use_own_gradio_cache()

import gradio as gr  # noqa: E402

from core.arkit import ARKIT_NAMES, GROUPS  # noqa: E402
from core.inputs import MAX_SEED  # noqa: E402
from demo import plots, viewer  # noqa: E402
from demo.avatars import AVATAR_SUFFIXES, LIMITS  # noqa: E402
from demo.formatting import (SCORE_COLUMNS, cell_label, comparison_summary, identity_summary, scores_table,  # noqa: E402
                             timings_markdown)
from demo.forms import ENROL_ITERATIONS, MAX_SAMPLES  # noqa: E402
from demo.service import (AUTO, MAX_AUDIO_SECONDS, MAX_COMPARE_CELLS, MAX_RENDER_VERTEX_SECONDS,  # noqa: E402
                          MAX_TAKE_SECONDS, DemoService, example_files, load_talker)
from demo.housekeeping import remove_old_files, storage_note  # noqa: E402
from demo.page import (UncheckedSlider, api_only, errors_shown, frames_progress,  # noqa: E402
                       on_page, render_or_warn, viewer_or_warn)
from demo.live_tab import live_tab  # noqa: E402
from demo.fairness import MAX_PER_CLIENT, share_the_queue  # noqa: E402

if TYPE_CHECKING:
    from core.inference.talker import Talker

log = logging.getLogger(__name__)

TITLE = "DiffusionTalker"
MAX_UPLOAD = "25mb"                # launch(max_file_size=...); about 13 min of 16-bit 16 kHz wav
LAUNCH_OPTIONS = {"max_file_size": MAX_UPLOAD}   # pass to demo.launch() (app.py and the tests do)
MAX_CONCURRENT = 2                 # generations + comparisons running at once (one queue group)
MAX_QUEUE = 32                     # requests waiting; more are refused with "queue full"
DELETE_CACHE = (600, 3600)         # every 10 min, delete Gradio cache files (outputs, uploads) over 1 h old
SPEECH_FILE_TYPES = ["audio", ".mov", ".mp4", ".m4a"]   # Enroll tab: recordings (Live Link Face's own .mov)


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
    if warm_up:
        service.warm_up()
    if delete_cache:                  # what an earlier server left in the cache; Gradio sweeps its own
        remove_old_files(os.environ["GRADIO_TEMP_DIR"], delete_cache[1])
    # The viewer's code, vendored three.js and the packed heads are served by the app itself.
    gr.set_static_paths([viewer.STATIC_DIR, service.viewer_assets.folder])
    with gr.Blocks(title=TITLE, delete_cache=delete_cache) as demo:
        header = gr.Markdown(_header(service))
        audio, identity = _shared_inputs(service, example_files() if examples is None else list(examples))
        with gr.Tabs():
            with gr.Tab("Generate"):
                avatar_id = _generate_tab(service, audio, identity)
            with gr.Tab("Compare steps and seeds"):
                _compare_tab(service, audio, identity, avatar_id)
            with gr.Tab("Live"):
                live_tab(service, identity, errors_shown)
            if enroll:
                with gr.Tab("Enroll a new identity"):
                    _enroll_tab(service, identity, header)
        # A page opened after an enrolment elsewhere lists the new identity too.
        demo.load(lambda: _refreshed_identities(service), outputs=[identity, header], queue=False,
                  api_visibility="private")
    demo.queue(default_concurrency_limit=MAX_CONCURRENT, max_size=MAX_QUEUE)
    share_the_queue(demo)             # MAX_PER_CLIENT model requests per visitor, served round-robin
    demo.service = service
    return demo


def _identity_choices(service: DemoService) -> list[tuple[str, str]]:
    return [("matched from voice", AUTO)] + [(service.talker.identity_label(name), name) for name in service.identities]


def _refreshed_identities(service: DemoService):
    return gr.Dropdown(choices=_identity_choices(service)), _header(service)


def _shared_inputs(service: DemoService, examples: list) -> tuple[gr.Audio, gr.Dropdown]:
    """The speech input and the talking-style choice that every tab uses."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            # No `format=`: Gradio would convert non-wav uploads with pydub, which needs a system
            # ffprobe; core.audio.decode.load_audio decodes any format itself (static ffmpeg wheel).
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", elem_id="speech-input",
                             label=f"Speech: record or upload (up to {service.max_seconds:.0f} s and {MAX_UPLOAD}, "
                                   f"4-384 kHz)")
        with gr.Column(scale=2):
            identity = gr.Dropdown(_identity_choices(service), value=AUTO, label="Talking style", allow_custom_value=True,
                                   info="the identity matched from the voice, or any identity "
                                        "of the library (style transfer)")
            if examples:
                gr.Examples([[str(p)] for p in examples], inputs=[audio], label="Example clips",
                            elem_id="example-clips", cache_examples=False, examples_per_page=10)
    return audio, identity


def _generate_tab(service: DemoService, audio: gr.Audio, identity: gr.Dropdown) -> gr.State:
    """One take: identity match, curves and the live 3D head first; the mp4 only when asked for.
    Returns the session's avatar (its id), which the Compare tab uses too."""
    with gr.Row(equal_height=True):
        # allow_custom_value and no bounds on the number fields: every value reaches demo.forms as sent
        # (API clients too), so "8", 8.7 or -5 get one rule and one plain message, not Gradio's.
        steps = gr.Dropdown(service.steps_choices, value=service.default_steps, label="Diffusion steps",
                            allow_custom_value=True,
                            info="fewer = faster (distilled students)", elem_id="steps")
        with gr.Column(min_width=160):
            seed = gr.Number(0, precision=None, label="Seed", elem_id="seed")
            new_seed = gr.Button("New random seed", size="sm", elem_id="new-seed")
        num_samples = UncheckedSlider(1, MAX_SAMPLES, value=1, step=1, label="Samples",
                                      info="seeds seed .. seed+K-1; the 3D head and the video show sample 1")
    run = gr.Button("Generate", variant="primary", elem_id="generate")
    avatar_id, take_state = gr.State(), gr.State()
    with gr.Row(equal_height=False):
        with gr.Column():
            matched = gr.Textbox(label="Identity matched from the voice", interactive=False,
                                 elem_id="matched-identity")
            scores = gr.Dataframe(pd.DataFrame(columns=SCORE_COLUMNS), interactive=False,
                                  label="Similarity of the voice to every identity (cosine)",
                                  max_height=320, elem_id="identity-scores")
            timings = gr.Markdown(label="Timings")
            with gr.Accordion("Your own avatar", open=False):
                avatar_file = gr.File(label=f"Avatar: {LIMITS}", file_types=list(AVATAR_SUFFIXES),
                                      type="filepath", elem_id="avatar-upload")
                avatar_status = gr.Markdown(elem_id="avatar-status")
        with gr.Column():
            face = gr.HTML(**viewer.html_options("face-viewer", "take"), css_template=viewer.CSS,
                           mesh=(viewer_or_warn(service.viewer_head, show=False) or {}).get("mesh"))
            render_button = gr.Button("Render the video (mp4)", size="sm", elem_id="render-video")
            video = gr.Video(label="Face video (sample 1)", show_label=False, interactive=False, elem_id="face-video")
            with gr.Row(elem_id="downloads"):     # one button per file, all visible once the take exists
                downloads = [gr.DownloadButton(label, visible=False, size="sm", elem_id=f"download-{key}")
                             for key, label in DOWNLOADS]
            files = gr.File(file_count="multiple", visible=False)   # the same files for API clients (/generate)
    curves = gr.Plot(label="Blendshape curves", show_label=False, elem_id="curves-plot")   # the figure has its title

    def first_outputs(take):
        generation = take.generation
        with errors_shown(input_errors=False):
            label = service.talker.identity_label
            return [identity_summary(generation, label), scores_table(generation, label),
                    plots.curves_figure(generation.blendshapes, generation.fps,
                                        cell_label(generation.steps, generation.seeds[0]))]

    def generate(audio, steps, seed, num_samples, identity):
        """The API's /generate: curves first, then the video and the files (as before the viewer)."""
        with errors_shown():
            take = service.generate(audio, steps, seed, num_samples, identity)
        try:
            outputs = first_outputs(take)
            yield *outputs, None, timings_markdown(take, rendering=True), None
            with errors_shown(input_errors=False):
                files = service.export(take)
            video = render_or_warn(lambda: service.render(take), take.notes)
            for note in take.notes:
                gr.Warning(note)
            yield *outputs, video, timings_markdown(take), [str(f) for f in files]
        finally:  # reached after Gradio has copied the last outputs into its cache (or on failure)
            service.discard(take.folder)

    def generate_live(audio, steps, seed, num_samples, identity, avatar):
        """The page's Generate: the 3D head plays as soon as the curves exist; then the files.
        Bad input is a message and leaves every earlier result as it was."""
        take = on_page(lambda: service.generate(audio, steps, seed, num_samples, identity))
        if take is None:
            yield *[gr.skip()] * (8 + len(DOWNLOADS)),
            return
        take.avatar = service.avatar(avatar)
        try:
            head = viewer_or_warn(lambda: service.viewer_take(take))
            hidden = [gr.DownloadButton(visible=False)] * len(DOWNLOADS)   # the last take's files go with it
            yield *first_outputs(take), head, timings_markdown(take), None, None, take, *hidden
            with errors_shown(input_errors=False):
                files = service.export(take)
            for note in take.notes:
                gr.Warning(note)
            yield *[gr.skip()] * 4, timings_markdown(take), None, [str(f) for f in files], take, *_buttons(files)
        finally:
            service.discard(take.folder)

    def render(take, progress=gr.Progress()):
        if take is None:
            raise gr.Error("Generate first: the video shows the last take.", title="Nothing to render")
        with errors_shown():             # refused before anything starts: too long a video for this head
            service.check_render(1, take.wave, take.avatar)
        take = dataclasses.replace(take, folder=service.new_folder())  # its own files: the take's may be going
        progress(0, desc="rendering the video")
        video = render_or_warn(lambda: service.render(take, frames_progress(progress)), take.notes)
        if video is None:
            gr.Warning(take.notes[-1])
        try:
            yield video, timings_markdown(take)
        finally:  # a generator, so that this runs after Gradio has copied the video
            service.discard(take.folder)

    def use_avatar(path, take):
        if not path:
            return None, "Using the default head.", service.viewer_head() if take is None else _retake(take, None)
        with errors_shown():
            avatar = service.avatars.add(path)
        return avatar.id, avatar.summary(), service.viewer_head(avatar.id) if take is None else _retake(take, avatar)

    def _retake(take, avatar):
        take.avatar = avatar
        return service.viewer_take(take)

    new_seed.click(lambda: random.randint(0, MAX_SEED), outputs=seed, queue=False, api_visibility="private")
    # Generations and comparisons share one limit: MAX_CONCURRENT model calls + renders at once.
    run.click(generate_live, inputs=[audio, steps, seed, num_samples, identity, avatar_id],
              outputs=[matched, scores, curves, face, timings, video, files, take_state, *downloads],
              api_name="generate_live",
              concurrency_id="model", concurrency_limit=MAX_CONCURRENT, show_progress_on=[matched])
    render_button.click(render, inputs=take_state, outputs=[video, timings], api_visibility="private",
                        concurrency_id="model", concurrency_limit=MAX_CONCURRENT)
    avatar_file.change(use_avatar, inputs=[avatar_file, take_state], outputs=[avatar_id, avatar_status, face],
                       api_visibility="private")
    api_only(generate, [audio, steps, seed, num_samples, identity], [matched, scores, curves, video, timings, files],
             "generate", MAX_CONCURRENT)
    return avatar_id


def _compare_tab(service: DemoService, audio: gr.Audio, identity: gr.Dropdown, avatar_id: gr.State) -> None:
    """Every step count x seed: the heads on one clock, overlaid curves and spread first; the tiled
    video only when asked for."""
    with gr.Row(equal_height=True):
        compare_steps = gr.Dropdown(service.steps_choices, value=service.default_compare_steps, allow_custom_value=True,
                                    multiselect=True, label="Step counts")
        compare_seeds = gr.Textbox("0, 1, 2", label="Seeds",
                                   info=f"comma-separated; at most {MAX_COMPARE_CELLS} takes and "
                                        f"{MAX_TAKE_SECONDS:.0f} take-seconds (takes x clip length)")
        channels = gr.Dropdown(list(GROUPS) + list(ARKIT_NAMES), value="jaw/lips",
                               label="Channels to overlay", info="a group or one channel")
    run_compare = gr.Button("Compare", variant="primary", elem_id="compare")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            grid = gr.HTML(**viewer.html_options("compare-viewer", "grid"), css_template=viewer.CSS)
            render_button = gr.Button("Render the grid video (mp4)", size="sm", elem_id="render-compare")
            compare_video = gr.Video(label="Rows: step counts, columns: seeds", show_label=False, interactive=False,
                                     elem_id="compare-video")
        summary = gr.Markdown()
    compare_curves = gr.Plot(label="Curves overlaid", show_label=False)
    spread = gr.Plot(label="Spread across seeds", show_label=False)
    runs, comparison_state = gr.State(), gr.State()

    def figures(audio, steps_list, seeds, channels, identity):
        with errors_shown():
            comparison = service.compare(audio, steps_list, seeds, identity)
            curves = plots.compare_figure(comparison.runs, channels)  # raises for an unknown channel name
        with errors_shown(input_errors=False):
            return comparison, curves, plots.spread_figure(comparison.spreads()), comparison_summary(comparison)

    def compare(audio, steps_list, seeds, channels, identity):
        """The API's /compare: figures first, then the tiled video."""
        comparison, curves, spread, summary = figures(audio, steps_list, seeds, channels, identity)
        try:
            yield None, curves, spread, summary, comparison.runs
            with errors_shown(input_errors=False):
                video = service.render_comparison(comparison)
            yield video, curves, spread, summary, comparison.runs
        finally:
            service.discard(comparison.folder)

    def compare_live(audio, steps_list, seeds, channels, identity, avatar):
        shown = on_page(lambda: figures(audio, steps_list, seeds, channels, identity))
        if shown is None:                 # bad input: a message, and the last comparison stays as it was
            return (gr.skip(),) * 7
        comparison, curves, spread, summary = shown
        service.discard(comparison.folder)
        comparison.avatar = service.avatar(avatar)
        heads = viewer_or_warn(lambda: service.viewer_grid(comparison))
        return heads, None, curves, spread, summary, comparison.runs, comparison

    def render(comparison, progress=gr.Progress()):
        if comparison is None:
            raise gr.Error("Compare first: the video shows the last comparison.", title="Nothing to render")
        with errors_shown():
            service.check_render(len(comparison.cells), comparison.wave, comparison.avatar)
        comparison = dataclasses.replace(comparison, folder=service.new_folder())
        progress(0, desc="rendering the grid video")
        try:
            with errors_shown(input_errors=False):
                yield service.render_comparison(comparison, frames_progress(progress))
        finally:
            service.discard(comparison.folder)

    def replot(runs, channels):
        with errors_shown():
            return plots.compare_figure(runs or {}, channels)

    run_compare.click(compare_live, inputs=[audio, compare_steps, compare_seeds, channels, identity, avatar_id],
                      outputs=[grid, compare_video, compare_curves, spread, summary, runs, comparison_state],
                      api_name="compare_live", concurrency_id="model", concurrency_limit=MAX_CONCURRENT,
                      show_progress_on=[summary])
    render_button.click(render, inputs=comparison_state, outputs=compare_video, api_visibility="private",
                        concurrency_id="model", concurrency_limit=MAX_CONCURRENT)
    channels.change(replot, inputs=[runs, channels], outputs=compare_curves, api_visibility="private")
    api_only(compare, [audio, compare_steps, compare_seeds, channels, identity],
             [compare_video, compare_curves, spread, summary, runs], "compare", MAX_CONCURRENT)


DOWNLOADS = (("csv", "Live Link Face CSV"), ("json", "JSON"), ("npy", "NPY"), ("glb", "Animated GLB"),
             ("samples", "All samples (NPY)"))


def _buttons(files: Sequence[Path]) -> list:
    """The download buttons' values for a take's files (the all-samples NPY only with K > 1)."""
    by_key = {("samples" if "_all_" in f.name else f.suffix.lstrip(".")): f for f in map(Path, files)}
    return [gr.DownloadButton(value=str(by_key[key]), visible=True) if key in by_key else
            gr.DownloadButton(visible=False) for key, _ in DOWNLOADS]


def _enroll_tab(service: DemoService, identity: gr.Dropdown, header: gr.Markdown) -> None:
    """A new identity from (speech, Live Link Face CSV) takes; every session can use it at once."""
    gr.Markdown("Add a talking style to the library from recordings of one person: each "
                "speech file with the Live Link Face CSV captured with it, **paired by file "
                "name** (`take1.wav` + `take1.csv`), at least 2 s each. The models stay "
                "frozen; only the new identity's embedding is learned, in every model. " + storage_note())
    with gr.Row(equal_height=True):
        enrol_speech = gr.File(label="Speech recordings", file_count="multiple", type="filepath",
                               file_types=SPEECH_FILE_TYPES, elem_id="enroll-speech")
        enrol_csvs = gr.File(label="Live Link Face CSVs (same names)", file_count="multiple",
                             type="filepath", file_types=[".csv"], elem_id="enroll-csv")
    with gr.Row(equal_height=True):
        enrol_name = gr.Textbox(label="Name of the new identity", max_lines=1, max_length=64,
                                elem_id="enroll-name")
        low, default, high = ENROL_ITERATIONS
        enrol_iterations = gr.Slider(low, high, value=default, step=1, label="Iterations", elem_id="enroll-iterations",
                                     info="more = a closer fit, slower")
    enrol_button = gr.Button("Enroll", variant="primary", elem_id="enroll")
    enrol_status = gr.Markdown("*The enrolment's progress and result appear here.*", elem_id="enroll-status",
                               min_height=60)
    with gr.Row(equal_height=True):
        to_remove = gr.Dropdown(service.enrolled(), value=None, label="Enrolled identity to remove",
                                allow_custom_value=True, elem_id="remove-name")
        remove_button = gr.Button("Remove from the library", variant="stop", elem_id="remove")

    def enroll_identity(speech_files, csv_files, name, iterations, progress=gr.Progress()):
        with errors_shown():
            status = service.enroll(speech_files, csv_files, name, iterations,
                                    progress=lambda done, line: progress(done, desc=line))
        # The shared dropdown is what new sessions and API clients are checked against; the
        # browser that enrolled updates its own copy in _refreshed_identities (chained below).
        with errors_shown(input_errors=False):
            identity.choices = _identity_choices(service)
        return status

    def remove_identity(name):
        with errors_shown():
            status = service.remove(name)
        with errors_shown(input_errors=False):
            identity.choices = _identity_choices(service)
        return status

    def refreshed():
        return *_refreshed_identities(service), gr.Dropdown(choices=service.enrolled(), value=None)

    # The button is off while an enrolment runs (it takes a minute); on again however it ended.
    enrol_button.click(lambda: gr.Button(interactive=False), outputs=enrol_button, queue=False,
                       api_visibility="private").then(
        enroll_identity, inputs=[enrol_speech, enrol_csvs, enrol_name, enrol_iterations],
        outputs=enrol_status, api_name="enroll", concurrency_id="enroll", concurrency_limit=1).then(
        lambda: (gr.Button(interactive=True), *refreshed()), outputs=[enrol_button, identity, header, to_remove],
        queue=False, api_visibility="private")
    remove_button.click(remove_identity, inputs=[to_remove], outputs=enrol_status, api_name="remove_identity",
                        concurrency_id="enroll", concurrency_limit=1).success(
        refreshed, outputs=[identity, header, to_remove], queue=False, api_visibility="private")


def missing_checkpoint_page(problem: str) -> gr.Blocks:
    """Served instead of the demo when no model is trained yet."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"""# {TITLE}

## No trained checkpoint yet

{problem} Run the training commands in the README (*Further commands*), then restart the app:

```bash
python -m core.data.synth --out corpus/default --seed 0 --size default
python -m core.training.train --data corpus/default --out checkpoints/teacher-256 --steps 256 --epochs 40
python -m core.training.distill --teacher checkpoints/teacher-256 --data corpus/default --out-root checkpoints --down-to 1
python -m core.model.manifest checkpoints --fp16
```

Or start the app on another folder: `python app.py --checkpoints PATH`.
""")
    return demo


def request_cost() -> str:
    """What one request may cost, as the page states it (every bound is enforced with a message)."""
    return (f"One request may compute at most {MAX_TAKE_SECONDS:.0f} take-seconds (samples or compared takes x "
            f"seconds of speech, at most {MAX_COMPARE_CELLS} takes) and render a video of at most "
            f"{MAX_RENDER_VERTEX_SECONDS / 1e6:.1f} million vertex-seconds (seconds x the head's vertices); "
            f"each visitor may have {MAX_PER_CLIENT} requests waiting or running, served in turn with everyone else's.")


def _header(service: DemoService) -> str:
    steps = ", ".join(map(str, service.steps_choices))
    return (f"# {TITLE}\n"
            "Speech in, 52 ARKit blendshape curves at 30 fps out, from a distilled diffusion model. "
            f"The voice is matched against a library of {len(service.identities)} talking styles; they are "
            "synthetic (text-to-speech voices with generated faces), not recordings of real people. "
            f"Models: {steps} diffusion steps; running on **{service.talker.device}**. "
            f"{request_cost()}"
            + "".join(f"\n\n> ⚠ {problem}" for problem in service.talker.problems()))
