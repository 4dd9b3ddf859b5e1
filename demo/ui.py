"""The Gradio app: speech in; ARKit-52 curves, matched identity, face video and downloads out.

Layout: one audio input (microphone or upload) and a talking-style choice, shared by two tabs,
*Generate* (one take, optionally several seeds) and *Compare* (step counts x seeds side by
side); a third tab, *Enroll*, adds a new identity from recordings + Live Link Face CSVs. The
work is done by :class:`demo.service.DemoService`, which knows nothing about Gradio; the
callbacks here only turn its results into component values (:mod:`demo.formatting`,
:mod:`demo.plots`) and its ``ValueError``s into ``gr.Error`` messages, so that bad input never
shows a traceback and the app keeps serving.

Load: at most :data:`MAX_CONCURRENT` generations or comparisons run at once (one queue group;
up to :data:`MAX_QUEUE` wait) and one enrolment. Gradio's cache (the copies of the outputs and
the uploads) is swept by ``delete_cache`` (:data:`DELETE_CACHE`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import pandas as pd

from core.cpu import limit_numpy_blas

limit_numpy_blas()  # before any request thread calls numpy BLAS (see core.cpu)

# Before gradio is imported: no usage analytics and no Hugging Face telemetry (no outside network),
# and a cache folder of the app's own (uploads, output copies), so that what a server ended by a
# signal left there can be swept at the next start without touching other Gradio apps' files.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(tempfile.gettempdir(), "diffusiontalker-gradio"))

import gradio as gr  # noqa: E402

from core.arkit import ARKIT_NAMES, GROUPS  # noqa: E402
from core.inputs import MAX_SEED  # noqa: E402
from demo import plots  # noqa: E402
from demo.formatting import (SCORE_COLUMNS, comparison_summary, identity_summary, scores_table,  # noqa: E402
                             timings_markdown)
from demo.forms import ENROL_ITERATIONS, MAX_SAMPLES  # noqa: E402
from demo.service import (AUTO, MAX_AUDIO_SECONDS, MAX_COMPARE_CELLS, MAX_TAKE_SECONDS,  # noqa: E402
                          DemoService, example_files, load_talker, remove_old_files, storage_note)

if TYPE_CHECKING:
    from core.pipeline import Talker

log = logging.getLogger(__name__)

TITLE = "DiffusionTalker"
MAX_UPLOAD = "25mb"                # launch(max_file_size=...); about 13 min of 16-bit 16 kHz wav
LAUNCH_OPTIONS = {"max_file_size": MAX_UPLOAD}   # pass to demo.launch() (app.py and the tests do)
MAX_CONCURRENT = 2                 # generations + comparisons running at once (one queue group)
MAX_QUEUE = 32                     # requests waiting; more are refused with "queue full"
DELETE_CACHE = (600, 3600)         # every 10 min, delete Gradio cache files (outputs, uploads) over 1 h old
SPEECH_FILE_TYPES = ["audio", ".mov", ".mp4", ".m4a"]   # Enroll tab: recordings (Live Link Face's own .mov)


class UncheckedSlider(gr.Slider):
    """A slider that hands its value over as sent (Gradio's own check would fail on "2" with
    no message); :mod:`demo.forms` checks it like every other field."""
    is_template = True        # drawn by the Slider front end

    def preprocess(self, payload):
        return payload


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
        if isinstance(err, ValueError) and not getattr(err, "user_error", True):   # e.g. a damaged checkpoint
            log.error("request failed: %s", err)
            raise gr.Error(f"{err} The app is still running; tell whoever runs it.", title="Server problem",
                           print_exception=False) from None
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
    if warm_up:
        service.warm_up()
    if delete_cache:                  # what an earlier server left in the cache; Gradio sweeps its own
        remove_old_files(os.environ["GRADIO_TEMP_DIR"], delete_cache[1])
    with gr.Blocks(title=TITLE, delete_cache=delete_cache) as demo:
        header = gr.Markdown(_header(service))
        audio, identity = _shared_inputs(service, example_files() if examples is None else list(examples))
        with gr.Tabs():
            with gr.Tab("Generate"):
                _generate_tab(service, audio, identity)
            with gr.Tab("Compare steps and seeds"):
                _compare_tab(service, audio, identity)
            if enroll:
                with gr.Tab("Enroll a new identity"):
                    _enroll_tab(service, identity, header)
        # A page opened after an enrolment elsewhere lists the new identity too.
        demo.load(lambda: _refreshed_identities(service), outputs=[identity, header], queue=False,
                  api_visibility="private")
    demo.queue(default_concurrency_limit=MAX_CONCURRENT, max_size=MAX_QUEUE)
    demo.service = service
    return demo


def _identity_choices(service: DemoService) -> list[tuple[str, str]]:
    return [("matched from voice", AUTO)] + [(name, name) for name in service.identities]


def _refreshed_identities(service: DemoService):
    return gr.Dropdown(choices=_identity_choices(service)), _header(service)


def _shared_inputs(service: DemoService, examples: list) -> tuple[gr.Audio, gr.Dropdown]:
    """The speech input and the talking-style choice that every tab uses."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            # No `format=`: Gradio would convert non-wav uploads with pydub, which needs a system
            # ffprobe; core.audio.load_audio decodes any format itself (static ffmpeg wheel).
            audio = gr.Audio(sources=["microphone", "upload"], type="filepath", elem_id="speech-input",
                             label=f"Speech: record or upload (up to {service.max_seconds:.0f} s and {MAX_UPLOAD}, "
                                   f"4-384 kHz)")
        with gr.Column(scale=2):
            identity = gr.Dropdown(_identity_choices(service), value=AUTO, label="Talking style", allow_custom_value=True,
                                   info="the identity matched from the voice, or any identity "
                                        "of the library (style transfer)")
            if examples:
                gr.Examples([[str(p)] for p in examples], inputs=[audio], label="Example clips",
                            cache_examples=False, examples_per_page=10)
    return audio, identity


def _generate_tab(service: DemoService, audio: gr.Audio, identity: gr.Dropdown) -> None:
    """One take: identity match and curves first (streamed), then the face video and downloads."""
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

    def generate(audio, steps, seed, num_samples, identity):
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

    new_seed.click(lambda: random.randint(0, MAX_SEED), outputs=seed, queue=False, api_visibility="private")
    # Generations and comparisons share one limit: MAX_CONCURRENT model calls + renders at once.
    run.click(generate, inputs=[audio, steps, seed, num_samples, identity],
              outputs=[matched, scores, curves, video, timings, files], api_name="generate",
              concurrency_id="model", concurrency_limit=MAX_CONCURRENT)


def _compare_tab(service: DemoService, audio: gr.Audio, identity: gr.Dropdown) -> None:
    """Every step count x seed: overlaid curves and spread across seeds first, then a tiled video."""
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
        compare_video = gr.Video(label="Rows: step counts, columns: seeds", interactive=False,
                                 elem_id="compare-video")
        summary = gr.Markdown()
    compare_curves = gr.Plot(label="Curves overlaid")
    spread = gr.Plot(label="Spread across seeds")
    runs = gr.State()

    def compare(audio, steps_list, seeds, channels, identity):
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

    run_compare.click(compare, inputs=[audio, compare_steps, compare_seeds, channels, identity],
                      outputs=[compare_video, compare_curves, spread, summary, runs], api_name="compare",
                      concurrency_id="model", concurrency_limit=MAX_CONCURRENT)
    channels.change(replot, inputs=[runs, channels], outputs=compare_curves, api_visibility="private")


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
        enrol_iterations = gr.Slider(low, high, value=default, step=1, label="Iterations",
                                     info="more = a closer fit, slower")
    enrol_button = gr.Button("Enroll", variant="primary", elem_id="enroll")
    enrol_status = gr.Markdown(elem_id="enroll-status")
    with gr.Row(equal_height=True):
        to_remove = gr.Dropdown(service.enrolled(), value=None, label="Enrolled identity to remove",
                                allow_custom_value=True, elem_id="remove-name")
        remove_button = gr.Button("Remove from the library", variant="stop", elem_id="remove")

    def enroll_identity(speech_files, csv_files, name, iterations, progress=gr.Progress()):
        with _errors_shown():
            status = service.enroll(speech_files, csv_files, name, iterations,
                                    progress=lambda line: progress(None, desc=line))
        # The shared dropdown is what new sessions and API clients are checked against; the
        # browser that enrolled updates its own copy in _refreshed_identities (chained below).
        with _errors_shown(input_errors=False):
            identity.choices = _identity_choices(service)
        return status

    def remove_identity(name):
        with _errors_shown():
            status = service.remove(name)
        with _errors_shown(input_errors=False):
            identity.choices = _identity_choices(service)
        return status

    def refreshed():
        return *_refreshed_identities(service), gr.Dropdown(choices=service.enrolled(), value=None)

    enrol_button.click(enroll_identity, inputs=[enrol_speech, enrol_csvs, enrol_name, enrol_iterations],
                       outputs=enrol_status, api_name="enroll", concurrency_id="enroll",
                       concurrency_limit=1).success(
        refreshed, outputs=[identity, header, to_remove], queue=False, api_visibility="private")
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
            f"Models: {steps} diffusion steps; running on **{service.talker.device}**."
            + "".join(f"\n\n> ⚠ {problem}" for problem in service.talker.problems()))
