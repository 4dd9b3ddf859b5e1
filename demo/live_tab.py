"""The Live tab: the microphone streams to the server, the 3D head moves as the speaker talks.

Gradio's streaming microphone (``gr.Audio(streaming=True)``, a ``.stream`` event every
:data:`demo.live.CHUNK_SECONDS`) carries the audio; each chunk goes through the session's
:class:`demo.live.LiveSession` and the new frames go to the viewer as a ``live`` value, which it
appends (``demo/static/viewer.js``, ``showLive``). Gradio keeps only the newest chunk of a
stream while its handler is busy, so a server slower than real time skips audio (the face
stays current rather than falling behind); the readout says how much. Record starts a stream, Stop ends it (its last
frames come out then). The logic is in :mod:`demo.live`; this module only wires components.
"""
from __future__ import annotations

import numpy as np

import gradio as gr

from demo import viewer
from demo.live import CHUNK_SECONDS, MAX_LIVE_SECONDS, LiveSession, LiveSlots, live_value

NO_FRAMES = np.zeros((0, 52), np.float32)


def live_tab(service, identity: gr.Dropdown, errors_shown) -> None:
    """The tab's components and events. ``identity``: the page's talking-style choice (auto =
    matched from the voice after the first seconds); ``errors_shown``: demo.ui's error wrapper."""
    from core.inference.streaming import DEFAULT_LOOKAHEAD    # here, not at import: it loads torch
    slots = LiveSlots()
    gr.Markdown("Talk to the face: press **Record** and speak; the head follows with the look-ahead the "
                f"stream needs ({DEFAULT_LOOKAHEAD:.1f} s after the sound) plus the time shown below. The talking style "
                "above is used from the start, or with *auto* matched from the voice after 3 s. "
                f"**Stop** ends the stream (at most {MAX_LIVE_SECONDS // 60} minutes).")
    steps = gr.Dropdown(service.steps_choices, value=service.default_steps, label="Diffusion steps",
                        allow_custom_value=True, elem_id="live-steps")
    with gr.Row(equal_height=False):
        with gr.Column():
            microphone = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="Microphone",
                                  elem_id="live-microphone")
            readout = gr.Markdown("Press Record and speak.", elem_id="live-latency")
        with gr.Column():
            face = gr.HTML(**viewer.html_options("live-viewer"), css_template=viewer.CSS,
                           mesh=_mesh_url(service))
    session = gr.State()

    def begin(steps_value, identity_value) -> LiveSession:
        live = LiveSession(service.talker, service.check_steps(steps_value), service.check_identity(identity_value))
        slots.take(live)
        return live

    def start(steps_value, identity_value, live):
        if live is not None:
            slots.release(live)
        with errors_shown():
            live = begin(steps_value, identity_value)
        return live, live_value(NO_FRAMES, 0, _mesh_url(service), reset=True), live.readout()

    def chunk(audio, live, steps_value, identity_value):
        if audio is None:
            return gr.skip(), gr.skip(), gr.skip()
        rate, samples = audio
        reset = live is None                 # the first chunk overtook Record's own event
        with errors_shown():
            live = live or begin(steps_value, identity_value)
            slots.touch(live)
            first, curves = live.frames(rate, samples)
        frames = live_value(curves, first, _mesh_url(service), reset=reset) if len(curves) or reset else gr.skip()
        return live, frames, live.readout()

    def stop(live):
        if live is None:
            return None, gr.skip(), gr.skip()
        slots.release(live)
        with errors_shown():
            first, curves = live.frames(live.rate or 16000, NO_FRAMES[:, 0], final=True)
        return None, live_value(curves, first, _mesh_url(service)), "Stopped. " + live.readout()

    microphone.start_recording(start, inputs=[steps, identity, session], outputs=[session, face, readout],
                               api_visibility="private")
    microphone.stream(chunk, inputs=[microphone, session, steps, identity], outputs=[session, face, readout],
                      stream_every=CHUNK_SECONDS, time_limit=MAX_LIVE_SECONDS, concurrency_id="live",
                      concurrency_limit=slots.limit, show_progress="hidden", api_visibility="private")
    microphone.stop_recording(stop, inputs=[session], outputs=[session, face, readout], api_visibility="private")


def _mesh_url(service) -> str | None:
    try:
        return service.viewer_head()["mesh"]
    except Exception:        # the head cannot be packed: the readout still works
        return None
