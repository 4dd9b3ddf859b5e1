"""The Gradio app: speech in; ARKit-52 curves, matched identity, face video and downloads out.

Layout: one audio input (microphone or upload) and a talking-style choice, shared by the tabs:
*Generate* (one take, optionally several seeds; :mod:`demo.generate_tab`), *Compare* (step
counts x seeds side by side; :mod:`demo.compare_tab`), *Live* (the microphone streams to the
head; :mod:`demo.live_tab`) and *Enroll* (a new identity from recordings + Live Link Face CSVs;
:mod:`demo.enroll_tab`). The work is done by :class:`demo.service.DemoService`, which knows
nothing about Gradio; each tab's handlers are module-level functions that turn its results into
``{component: value}`` and its ``ValueError``s into messages (:mod:`demo.page`), so that bad
input never shows a traceback and the app keeps serving.

Load: at most :data:`MAX_CONCURRENT` generations or comparisons run at once (one queue group;
up to :data:`MAX_QUEUE` wait; each visitor at most :data:`demo.fairness.MAX_PER_CLIENT` of them,
served round-robin) and one enrolment. Gradio's cache (the copies of the outputs and
the uploads) is swept by ``delete_cache`` (:data:`DELETE_CACHE`). Importing this module changes
nothing in the process: ``app.main`` sets the environment and threads up first
(:func:`demo.housekeeping.configure_process`).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import gradio as gr

from demo import compare_tab, enroll_tab, generate_tab, live_tab, viewer
from demo.fairness import MAX_PER_CLIENT, share_the_queue
from demo.housekeeping import remove_old_files
from demo.service import (AUTO, MAX_AUDIO_SECONDS, MAX_COMPARE_CELLS, MAX_RENDER_VERTEX_SECONDS, MAX_TAKE_SECONDS,
                          DemoService, example_files, load_talker)

if TYPE_CHECKING:
    from core.inference.talker import Talker

log = logging.getLogger(__name__)

TITLE = "DiffusionTalker"
MAX_UPLOAD = "25mb"                # launch(max_file_size=...); about 13 min of 16-bit 16 kHz wav
LAUNCH_OPTIONS = {"max_file_size": MAX_UPLOAD}   # demo.launch()'s, given by launch()
MAX_CONCURRENT = 2                 # generations + comparisons running at once (one queue group)
MAX_QUEUE = 32                     # requests waiting; more are refused with "queue full"
DELETE_CACHE = (600, 3600)         # every 10 min, delete Gradio cache files (outputs, uploads) over 1 h old


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
    if delete_cache and os.environ.get("GRADIO_TEMP_DIR"):  # what an earlier server left in the app's own cache
        remove_old_files(os.environ["GRADIO_TEMP_DIR"], delete_cache[1])
    # The viewer's code, vendored three.js, the packed heads and the takes' audio are served by the app itself.
    gr.set_static_paths([viewer.STATIC_DIR, service.viewer_assets.folder])
    with gr.Blocks(title=TITLE, delete_cache=delete_cache) as demo:
        header = gr.Markdown(_header(service), elem_id="header")
        audio, identity = _shared_inputs(service, example_files() if examples is None else list(examples))

        def refreshed() -> dict:
            return {identity: gr.Dropdown(choices=_identity_choices(service)), header: _header(service)}
        with gr.Tabs():
            with gr.Tab("Generate"):
                generated = generate_tab.build(service, audio, identity, MAX_CONCURRENT)
            with gr.Tab("Compare steps and seeds"):
                compare_tab.build(service, audio, identity, generated.avatar_id, MAX_CONCURRENT)
            with gr.Tab("Live"):
                live = live_tab.build(service, identity)
            lists, outputs = refreshed, [identity, header]
            if enroll:
                with gr.Tab("Enroll a new identity"):
                    enrolment = enroll_tab.build(service, identity, refreshed, outputs,
                                                 lambda: _identity_choices(service))
                lists, outputs = (lambda: enroll_tab.identity_lists(enrolment)), [*outputs, enrolment.to_remove]
        # A page opened after an enrolment elsewhere lists the new identity too (the lists' first
        # values are those of the server's start).
        demo.load(lists, outputs=outputs, queue=False, api_visibility="private")
    demo.queue(default_concurrency_limit=MAX_CONCURRENT, max_size=MAX_QUEUE)
    share_the_queue(demo)             # MAX_PER_CLIENT model requests per visitor, served round-robin
    demo.service = service
    demo.extra_routes = live_tab.routes(live)     # the Live tab's microphone uploads (served by launch())
    return demo


def launch(demo: gr.Blocks, **options):
    """``demo.launch(**options)`` with the app's options and its own routes beside Gradio's (app.py,
    the tests and the experiments start the app this way)."""
    return demo.launch(**LAUNCH_OPTIONS, app_kwargs={"routes": list(getattr(demo, "extra_routes", []))}, **options)


def _identity_choices(service: DemoService) -> list[tuple[str, str]]:
    return [("matched from voice", AUTO)] + [(service.talker.identity_label(name), name) for name in service.identities]


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


def _withheld_note(withheld: dict[int, str]) -> str:
    """Why some step counts are not offered (one line per reason)."""
    by_reason: dict[str, list[int]] = {}
    for steps, why in sorted(withheld.items(), reverse=True):
        by_reason.setdefault(why, []).append(steps)
    return "".join(f" Not offered: {', '.join(map(str, counts))} steps, because {why}."
                   for why, counts in by_reason.items())


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
            f"Models: {steps} diffusion steps; running on **{service.talker.device}**."
            + _withheld_note(service.withheld_steps) + f" {request_cost()}"
            + "".join(f"\n\n> ⚠ {problem}" for problem in service.talker.problems()))
