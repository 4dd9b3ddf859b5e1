"""The Compare tab: every step count x emotion x seed, the heads on one clock, overlaid curves and
spread first; the tiled video only when asked for.

One handler, :func:`compare`, behind both endpoints: the page's ``/compare_live`` (the grid of
heads; bad input is a message and the last comparison stays) and the API's ``/compare``
(figures, then the tiled video). Handlers return ``{component: value}``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import gradio as gr

from core.arkit import ARKIT_NAMES, GROUPS
from core.inference.controls import Controls
from demo import plots, viewer
from demo.formatting import comparison_summary, plotted
from demo.forms import parse_emotions
from demo.page import api_only, bind, controls_box, errors_shown, follow_steps, frames_progress, on_page, viewer_or_warn
from demo.service import MAX_COMPARE_CELLS, MAX_TAKE_SECONDS, DemoService


@dataclass
class CompareTab:
    """The service and the tab's components (what the handlers read and write)."""
    service: DemoService
    grid: gr.HTML
    video: gr.Video
    curves: gr.Plot
    spread: gr.Plot
    summary: gr.Markdown
    runs: gr.State
    comparison: gr.State


def build(service: DemoService, audio: gr.Audio, identity: gr.Dropdown, avatar_id: gr.State,
          concurrency: int) -> CompareTab:
    """The tab's components and events (inside ``gr.Tab``); ``avatar_id``: the Generate tab's avatar."""
    with gr.Row(equal_height=True):
        steps = gr.Dropdown(service.steps_choices, value=service.default_compare_steps, allow_custom_value=True,
                            multiselect=True, label="Step counts", elem_id="compare-steps")
        seeds = gr.Textbox("0, 1, 2", label="Seeds",
                           info=f"comma-separated; at most {MAX_COMPARE_CELLS} takes and "
                                f"{MAX_TAKE_SECONDS:.0f} take-seconds (takes x clip length)")
        channels = gr.Dropdown(list(GROUPS) + list(ARKIT_NAMES), value="jawOpen", label="Channels to overlay",
                               info=f"one channel, or a group (its {plots.MAX_OVERLAID} that move most)")
    controls = controls_box(service.control_limits(service.default_compare_steps), "compare-", several=True)
    follow_steps(controls, steps, service.control_limits)
    run = gr.Button("Compare", variant="primary", elem_id="compare")
    grid = gr.HTML(**viewer.html_options("compare-viewer"), css_template=viewer.CSS, pauseOn="#compare")
    render_button = gr.Button("Render the grid video (mp4)", size="sm", elem_id="render-compare")
    video = gr.Video(label="Rows: step counts (and emotions), columns: seeds", show_label=False, interactive=False,
                     elem_id="compare-video")
    summary = gr.Markdown(elem_id="compare-summary")   # the page's width: its table's headers stay whole words
    curves = gr.Plot(label="Curves overlaid", show_label=False, elem_id="compare-curves")
    spread = gr.Plot(label="Spread across seeds", show_label=False)
    tab = CompareTab(service, grid, video, curves, spread, summary, gr.State(), gr.State())

    inputs = [audio, steps, seeds, channels, identity, *controls.inputs]
    run.click(bind(compare, tab, True), inputs=[*inputs, avatar_id],
              outputs=[grid, video, curves, spread, summary, tab.runs, tab.comparison],
              api_name="compare_live", concurrency_id="model", concurrency_limit=concurrency,
              show_progress_on=[summary])
    render_button.click(bind(render, tab), inputs=tab.comparison, outputs=video, api_visibility="private",
                        concurrency_id="model", concurrency_limit=concurrency)
    channels.change(bind(replot, tab), inputs=[tab.runs, channels], outputs=curves, api_visibility="private")
    api_only(bind(compare, tab, False), inputs, [video, curves, spread, summary, tab.runs], "compare", concurrency)
    return tab


def compare(tab: CompareTab, page: bool, audio, steps_list, seeds, channels, identity, emotions=("neutral",),
            intensity=1.0, head_motion=True, upper_strength=1.0, lower_strength=1.0, avatar=None):
    """Every (steps, emotion, seed) cell of one clip. On the ``page``: the grid of heads and the
    figures (bad input: a message, and the last comparison stays); for the API: the figures, then
    the tiled video. ``emotions``: a list, or text like "neutral, happy" (default: neutral alone,
    what API clients that send none always got)."""
    service = tab.service

    def figures():
        controls = [Controls.checked(emotion, intensity, head_motion, upper_strength, lower_strength)
                    for emotion in parse_emotions(emotions)]
        comparison = service.compare(audio, steps_list, seeds, identity, controls)
        return comparison, plots.compare_figure(plotted(comparison)[0], channels)  # raises for an unknown channel name
    if page:
        made = on_page(figures)
        if made is None:
            yield gr.skip()   # nothing changes
            return
    else:
        with errors_shown():
            made = figures()
    comparison, curves = made
    try:
        with errors_shown(input_errors=False):
            runs, spreads = plotted(comparison)
            shown = {tab.curves: curves, tab.spread: plots.spread_figure(spreads),
                     tab.summary: comparison_summary(comparison), tab.runs: runs, tab.video: None}
        if page:
            comparison.avatar = service.avatar(avatar)
            yield {**shown, tab.grid: viewer_or_warn(lambda: service.viewer_grid(comparison)),
                   tab.comparison: comparison}
            return
        yield shown
        with errors_shown(input_errors=False):
            yield {**shown, tab.video: service.render_comparison(comparison)}
    finally:
        service.folders.discard(comparison.folder)


def render(tab: CompareTab, comparison, progress=gr.Progress()):
    """The tiled mp4 of the last comparison."""
    service = tab.service
    if comparison is None:
        raise gr.Error("Compare first: the video shows the last comparison.", title="Nothing to render")
    with errors_shown():             # refused before anything starts: too long a video for this head
        service.check_render(len(comparison.cells), comparison.wave, comparison.avatar)
    comparison = dataclasses.replace(comparison, folder=service.folders.new())
    progress(0, desc="rendering the grid video")
    try:
        with errors_shown(input_errors=False):
            yield {tab.video: service.render_comparison(comparison, frames_progress(progress))}
    finally:
        service.folders.discard(comparison.folder)


def replot(tab: CompareTab, runs, channels):
    with errors_shown():
        return {tab.curves: plots.compare_figure(runs or {}, channels)}
