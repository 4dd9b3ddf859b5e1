"""The Generate tab: one take; the identity match and the live 3D head first, the files next, the
mp4 and the curves plot only when asked for.

One handler, :func:`generate`, behind both endpoints: the page's ``/generate_live`` (the head plays
as soon as the curves exist; bad input is a message and leaves the last take on the page) and
the API's ``/generate`` (curves, then the video and the files, as before the viewer). Handlers
return ``{component: value}``: what they leave out stays as it is.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import gradio as gr
import pandas as pd

from core.inference.controls import Controls
from core.inputs import MAX_SEED
from demo import plots, viewer
from demo.avatars import AVATAR_SUFFIXES, LIMITS
from demo.formatting import SCORE_COLUMNS, cell_label, identity_summary, scores_table, timings_markdown
from demo.forms import MAX_SAMPLES
from demo.page import (UncheckedSlider, api_only, bind, controls_box, errors_shown, follow_steps, frames_progress,
                       on_page, render_or_warn, viewer_or_warn)
from demo.service import DemoService

DOWNLOADS = (("csv", "Live Link Face CSV"), ("json", "JSON"), ("npy", "NPY"), ("glb", "Animated GLB"),
             ("samples", "All samples (NPY)"))


@dataclass
class GenerateTab:
    """The service and the tab's components (what the handlers read and write)."""
    service: DemoService
    matched: gr.Textbox
    scores: gr.Dataframe
    timings: gr.Markdown
    face: gr.HTML
    video: gr.Video
    files: gr.File
    downloads: list[gr.DownloadButton]
    curves_box: gr.Accordion
    curves: gr.Plot
    take: gr.State
    avatar_id: gr.State
    avatar_status: gr.Markdown


def build(service: DemoService, audio: gr.Audio, identity: gr.Dropdown, concurrency: int) -> GenerateTab:
    """The tab's components and events (inside ``gr.Tab``); ``concurrency``: model calls at once."""
    with gr.Row(equal_height=True):
        # allow_custom_value and no bounds on the number fields: every value reaches demo.forms as sent
        # (API clients too), so "8", 8.7 or -5 get one rule and one plain message, not Gradio's.
        steps = gr.Dropdown(service.steps_choices, value=service.default_steps, label="Diffusion steps",
                            allow_custom_value=True, info="fewer = faster (distilled students)", elem_id="steps")
        with gr.Column(min_width=160):
            seed = gr.Number(0, precision=None, label="Seed", elem_id="seed")
            new_seed = gr.Button("New random seed", size="sm", elem_id="new-seed")
        num_samples = UncheckedSlider(1, MAX_SAMPLES, value=1, step=1, label="Samples",
                                      info="seeds seed .. seed+K-1; the 3D head and the video show sample 1")
    controls = controls_box(service.control_limits(service.default_steps))
    run = gr.Button("Generate", variant="primary", elem_id="generate")
    with gr.Row(equal_height=False):
        with gr.Column():           # the face first: on a phone it comes right under Generate
            face = gr.HTML(**viewer.html_options("face-viewer"), css_template=viewer.CSS,
                           mesh=(viewer_or_warn(service.viewer_head, show=False) or {}).get("mesh"),
                           pauseOn="#generate")   # a new request pauses the shown take
            render_button = gr.Button("Render the video (mp4)", size="sm", elem_id="render-video")
            video = gr.Video(label="Face video (sample 1)", show_label=False, interactive=False, elem_id="face-video")
            with gr.Row(elem_id="downloads"):     # one button per file, all visible once the take exists
                downloads = [gr.DownloadButton(label, visible=False, size="sm", elem_id=f"download-{key}")
                             for key, label in DOWNLOADS]
            files = gr.File(file_count="multiple", visible=False)   # the same files for API clients (/generate)
        with gr.Column():
            matched = gr.Textbox(label="Identity matched from the voice", interactive=False,
                                 elem_id="matched-identity")
            scores = gr.Dataframe(pd.DataFrame(columns=SCORE_COLUMNS), interactive=False, wrap=True,
                                  column_widths=["30%", "118px", "44%", "110px"],   # "similarity" on one line
                                  label="Similarity of the voice to every identity (cosine)",
                                  max_height=320, elem_id="identity-scores")
            timings = gr.Markdown(label="Timings", elem_id="timings")
            with gr.Accordion("Your own avatar", open=False):
                avatar_file = gr.File(label=f"Avatar: {LIMITS}", file_types=list(AVATAR_SUFFIXES),
                                      type="filepath", elem_id="avatar-upload")
                avatar_status = gr.Markdown(elem_id="avatar-status")
    # Drawn when opened: plotly takes the page's main thread for over a second with 52 channels,
    # which froze the head on its first frame while the audio played (RESULTS, "viewer").
    with gr.Accordion("Blendshape curves (52 channels)", open=False, elem_id="curves-box") as curves_box:
        curves = gr.Plot(label="Blendshape curves", show_label=False, elem_id="curves-plot")
    tab = GenerateTab(service, matched, scores, timings, face, video, files, downloads, curves_box, curves,
                      gr.State(), gr.State(), avatar_status)

    new_seed.click(lambda: random.randint(0, MAX_SEED), outputs=seed, queue=False, api_visibility="private")
    follow_steps(controls, steps, service.control_limits)
    inputs = [audio, steps, seed, num_samples, identity, *controls.inputs]
    # Generations and comparisons share one limit: `concurrency` model calls + renders at once.
    run.click(bind(generate, tab, True), inputs=[*inputs, tab.avatar_id],
              outputs=[matched, scores, face, timings, video, files, tab.take, *downloads, curves_box, curves],
              api_name="generate_live", concurrency_id="model", concurrency_limit=concurrency,
              show_progress_on=[matched])
    render_button.click(bind(render, tab), inputs=tab.take, outputs=[video, timings], api_visibility="private",
                        concurrency_id="model", concurrency_limit=concurrency, show_progress_on=[video])
    curves_box.expand(bind(draw_curves, tab), inputs=tab.take, outputs=curves, api_visibility="private")
    avatar_file.change(bind(use_avatar, tab), inputs=[avatar_file, tab.take],
                       outputs=[tab.avatar_id, avatar_status, face], api_visibility="private")
    api_only(bind(generate, tab, False), inputs, [matched, scores, curves, video, timings, files], "generate",
             concurrency)
    return tab


def generate(tab: GenerateTab, page: bool, audio, steps, seed, num_samples, identity, emotion="neutral",
             intensity=1.0, head_motion=True, upper_strength=1.0, lower_strength=1.0, avatar=None):
    """One take. On the ``page``: the head, the scores and the timings as soon as the curves exist,
    then the files (bad input: a message, and the last take stays); for the API: the curves
    plot, then the video and the files. The controls' defaults are today's face, so API clients
    that send none get what they always got."""
    service = tab.service
    prepare = lambda: service.prepare(audio, steps, seed, num_samples, identity, Controls.checked(  # noqa: E731
        emotion, intensity, head_motion, upper_strength, lower_strength))
    if page:
        request = on_page(prepare)
        take = None
        if request is not None:   # the viewer loads the audio while the model runs: it plays at once
            yield {tab.face: viewer_or_warn(lambda: service.viewer_audio(request.wave, avatar))}
            take = on_page(lambda: service.run(request))
        if take is None:
            yield gr.skip()   # nothing changes (an empty dict would be an error)
            return
    else:
        with errors_shown():
            take = service.run(prepare())
    try:
        take.avatar = service.avatar(avatar) if page else None
        first = _summary(tab, take)
        if page:   # the last take's files and curves go with it; the plot waits to be opened
            yield {**first, tab.face: viewer_or_warn(lambda: service.viewer_take(take)), tab.take: take,
                   tab.timings: timings_markdown(take), tab.video: None, tab.files: None,
                   **{button: gr.DownloadButton(visible=False) for button in tab.downloads},
                   tab.curves: None, tab.curves_box: gr.Accordion(open=False)}
        else:
            first = {**first, tab.curves: _figure(take)}
            yield {**first, tab.video: None, tab.files: None, tab.timings: timings_markdown(take, rendering=True)}
        with errors_shown(input_errors=False):
            files = service.export(take)
        outputs = {tab.files: [str(f) for f in files]}
        if page:
            outputs.update({tab.take: take, **_buttons(tab, files)})
        else:     # an API client reads the last values only: all of them
            outputs.update({**first, tab.video: render_or_warn(lambda: service.render(take), take.notes)})
        for note in take.notes:
            gr.Warning(note)
        yield {**outputs, tab.timings: timings_markdown(take)}
    finally:  # reached after Gradio has copied the last outputs into its cache (or on failure)
        service.folders.discard(take.folder)


def _summary(tab: GenerateTab, take) -> dict:
    generation, label = take.generation, tab.service.talker.identity_label
    with errors_shown(input_errors=False):
        return {tab.matched: identity_summary(generation, label), tab.scores: scores_table(generation, label)}


def _figure(take):
    generation = take.generation
    with errors_shown(input_errors=False):
        return plots.curves_figure(generation.blendshapes, generation.fps,
                                   cell_label(generation.steps, generation.seeds[0], generation.controls))


def draw_curves(tab: GenerateTab, take):
    """The curves plot of the last take, drawn when its box is opened."""
    return _figure(take) if take is not None else plots.message_figure("Generate first: the plot shows the last take.")


def render(tab: GenerateTab, take, progress=gr.Progress()):
    """The mp4 of the last take, with a progress bar over the video (not over the timings)."""
    service = tab.service
    if take is None:
        raise gr.Error("Generate first: the video shows the last take.", title="Nothing to render")
    with errors_shown():             # refused before anything starts: too long a video for this head
        service.check_render(1, take.wave, take.avatar)
    take = dataclasses.replace(take, folder=service.folders.new())  # its own files: the take's may be going
    progress(0, desc="rendering the video")
    video = render_or_warn(lambda: service.render(take, frames_progress(progress)), take.notes)
    if video is None:
        gr.Warning(take.notes[-1])
    try:
        yield {tab.video: video, tab.timings: timings_markdown(take)}
    finally:  # a generator, so that this runs after Gradio has copied the video
        service.folders.discard(take.folder)


def use_avatar(tab: GenerateTab, path, take):
    """A user's own head for the viewer, the video and the GLB; a file that cannot be used is a
    message, and the head shown stays (no error badge on it)."""
    service = tab.service
    if not path:
        avatar = None
    else:
        avatar = on_page(lambda: service.avatars.add(path))
        if avatar is None:
            return gr.skip()
    if take is not None:
        take.avatar = avatar
    head = service.viewer_head(avatar and avatar.id) if take is None else service.viewer_take(take)
    return {tab.avatar_id: avatar and avatar.id, tab.face: head,
            tab.avatar_status: avatar.summary() if avatar else "Using the default head."}


def _buttons(tab: GenerateTab, files: Sequence[Path]) -> dict:
    """The download buttons' values for a take's files (the all-samples NPY only with K > 1)."""
    by_key = {("samples" if "_all_" in f.name else f.suffix.lstrip(".")): f for f in map(Path, files)}
    return {button: gr.DownloadButton(value=str(by_key[key]), visible=True) if key in by_key else
            gr.DownloadButton(visible=False) for button, (key, _) in zip(tab.downloads, DOWNLOADS)}
