"""The Live tab: the microphone streams to the server, the 3D head moves as the speaker talks.

Gradio's streaming microphone (``gr.Audio(streaming=True)``, a ``.stream`` event every
:data:`demo.live.CHUNK_SECONDS`) uploads the audio as small WAV files; each is read by the
project's own bounded reader (``type="filepath"``: Gradio decodes nothing) and handed to the
session's worker (:class:`demo.live.LiveSession`), and the frames decoded since the last chunk go
to the live head (``demo/static/live_viewer.js``) as a ``live`` value, which it appends and draws
at its own pace, with its readout (microphone-to-face delay, frames drawn, audio skipped, style).

Who streams is :class:`demo.live.LiveLine`'s to say: Gradio runs every stream at once
(``concurrency_limit=None``: no Gradio slot that a tab closed without Stop could hold for the
stream's whole time limit) and a visitor who must wait sees their place in line here. Record
starts a stream, Stop ends it (its last frames come out then, and the face comes to rest). The
logic is in :mod:`demo.live`; this module only wires components.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

import gradio as gr

from core.rates import SAMPLE_RATE
from demo import live, viewer
from demo.live import (CHUNK_SECONDS, MAX_LIVE_SECONDS, TURN_SECONDS, LiveLine, LiveSession, client_of, live_value,
                       read_microphone_chunk)

NO_FRAMES = np.zeros((0, 52), np.float32)
LIVE_CSS = """
.dt-live-readout { font-size: 0.9rem; margin-top: 6px; min-height: 2.6em; font-variant-numeric: tabular-nums; }
"""


@dataclass
class Ticket:
    """A visitor's live stream: their place in the line, what they asked for, their session once it runs."""
    number: int
    steps: int
    identity: str | None
    session: LiveSession | None = None
    shown: str = ""                  # the last message in the readout (sent again only when it changes)


def live_tab(service, identity: gr.Dropdown, errors_shown) -> None:
    """The tab's components and events. ``identity``: the page's talking-style choice (auto =
    matched from the voice after the first seconds); ``errors_shown``: demo.ui's error wrapper."""
    from core.inference.streaming import DEFAULT_LOOKAHEAD    # here, not at import: it loads torch
    line = LiveLine(limit=live.MAX_LIVE_SESSIONS)
    gr.Markdown("Talk to the face: press **Record** and speak; the head follows with the look-ahead the "
                f"stream needs ({DEFAULT_LOOKAHEAD:.1f} s after the sound) plus the time shown under it. The talking "
                "style above is used from the start, or with *auto* matched from the voice after 3 s. "
                f"**Stop** ends the stream (at most {MAX_LIVE_SECONDS // 60} minutes; "
                f"{TURN_SECONDS / 60:.0f} minutes while others wait for the head).")
    steps = gr.Dropdown(service.steps_choices, value=service.default_steps, label="Diffusion steps",
                        allow_custom_value=True, elem_id="live-steps")
    with gr.Row(equal_height=False):
        with gr.Column():
            # type="filepath" and no format: the chunk reaches demo.live as the file the page sent,
            # read by the project's bounded reader (Gradio would decode any name with ffmpeg).
            microphone = gr.Audio(sources=["microphone"], streaming=True, type="filepath", format=None,
                                  label="Microphone", elem_id="live-microphone")
            readout = gr.Markdown("Press Record and speak.", elem_id="live-latency")
        with gr.Column():
            face = gr.HTML(**viewer.html_options("live-viewer", "live", module=viewer.LIVE_MODULE),
                           css_template=viewer.CSS + LIVE_CSS, mesh=_mesh_url(service))
    state = gr.State()

    def close(ticket: Ticket | None):
        """End ``ticket``'s stream: its place and its session; the session's last frames (or None)."""
        if ticket is None:
            return None
        line.leave(ticket.number)
        return ticket.session.stop() if ticket.session is not None else None

    def enter(steps_value, identity_value, request) -> Ticket:
        ticket = Ticket(0, service.check_steps(steps_value), service.check_identity(identity_value))
        ticket.number = line.enter(client_of(request))
        return ticket

    def message(ticket: Ticket, place: int) -> str:
        if place == 0:
            return "Recording: the head follows your voice (its delay is shown under it)."
        return (f"The live head is in use by another visitor. **You are number {place} in line**; your turn comes "
                f"within about {line.turn_ends_in() + (place - 1) * TURN_SECONDS:.0f} s, sooner if they stop. "
                "Keep recording: the head starts following you when it is your turn.")

    def shown(ticket: Ticket, text: str):
        if text == ticket.shown:
            return gr.skip()
        ticket.shown = text
        return text

    def start(steps_value, identity_value, ticket, request: gr.Request):
        close(ticket)
        with errors_shown():
            ticket = enter(steps_value, identity_value, request)
            place = line.position(ticket.number)
            if place == 0:                              # the model gets ready while the page starts recording
                ticket.session = LiveSession(service.talker, ticket.steps, ticket.identity)
        return ticket, live_value(NO_FRAMES, 0, _mesh_url(service), reset=True), shown(ticket, message(ticket, place))

    def chunk(path, ticket, steps_value, identity_value, request: gr.Request):
        arrived = time.time()
        if path is None:
            return gr.skip(), gr.skip(), gr.skip()
        reset = ticket is None                          # the first chunk overtook Record's own event
        try:
            with errors_shown():
                if ticket is None:
                    ticket = enter(steps_value, identity_value, request)
                place = line.position(ticket.number)
                samples, rate = read_microphone_chunk(path)    # bounded before it is decoded
                if not len(samples):                           # an empty chunk: nothing to hear
                    return ticket, gr.skip(), gr.skip()
                if place > 0:
                    return ticket, gr.skip(), shown(ticket, message(ticket, place))
                if ticket.session is None:
                    ticket.session = LiveSession(service.talker, ticket.steps, ticket.identity)
                if not ticket.session.add(rate, samples, arrived) and ticket.session.error is None:
                    return ticket, gr.skip(), gr.skip()       # stopped (Stop's event ran beside this chunk)
                block = ticket.session.take()
        except gr.Error:
            close(ticket)
            raise
        session = ticket.session
        value = live_value(block.curves if block else NO_FRAMES, block.first if block else session.frames_out,
                           _mesh_url(service), reset=reset, info=session.info())
        return ticket, value, shown(ticket, message(ticket, 0))

    def stop(ticket):
        if ticket is None:
            return None, gr.skip(), gr.skip()
        with errors_shown():
            block = close(ticket)
        session = ticket.session
        if session is None:
            return None, live_value(NO_FRAMES, 0, _mesh_url(service), end=True), "Stopped."
        value = live_value(block.curves if block else NO_FRAMES, block.first if block else session.frames_out,
                           _mesh_url(service), end=True, info=session.info())
        return None, value, f"Stopped after {session.heard / SAMPLE_RATE:.1f} s. Press Record to talk again."

    quiet = dict(show_progress="hidden", api_visibility="private")   # no Gradio timer in the readout
    microphone.start_recording(start, inputs=[steps, identity, state], outputs=[state, face, readout],
                               concurrency_limit=None, **quiet)
    microphone.stream(chunk, inputs=[microphone, state, steps, identity], outputs=[state, face, readout],
                      stream_every=CHUNK_SECONDS, time_limit=MAX_LIVE_SECONDS + 60, concurrency_id="live",
                      concurrency_limit=None, **quiet)
    microphone.stop_recording(stop, inputs=[state], outputs=[state, face, readout], concurrency_limit=None, **quiet)


def _mesh_url(service) -> str | None:
    try:
        return service.viewer_head()["mesh"]
    except Exception:        # the head cannot be packed: the readout still works
        return None
