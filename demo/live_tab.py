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
logic is in :mod:`demo.live`; this module wires components, and its handlers return
``{component: value}``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

import gradio as gr

from core.inference.controls import Controls
from core.rates import SAMPLE_RATE
from demo import live, viewer
from demo.fairness import client_of
from demo.live import (CHUNK_SECONDS, MAX_LIVE_SECONDS, TURN_SECONDS, LiveLine, LiveSession, live_value,
                       read_microphone_chunk)
from demo.page import bind, controls_box, errors_shown, follow_steps, viewer_or_warn
from demo.service import DemoService

NO_FRAMES = np.zeros((0, 52), np.float32)


@dataclass
class Ticket:
    """A visitor's live stream: their place in the line, what they asked for, their session once it runs."""
    number: int
    steps: int
    identity: str | None
    controls: Controls
    session: LiveSession | None = None
    shown: str = ""                  # the last message in the readout (sent again only when it changes)


@dataclass
class LiveTab:
    """The service, who may stream, and the tab's components (what the handlers read and write)."""
    service: DemoService
    line: LiveLine
    face: gr.HTML
    readout: gr.Markdown
    ticket: gr.State


def build(service: DemoService, identity: gr.Dropdown) -> LiveTab:
    """The tab's components and events (inside ``gr.Tab``); ``identity``: the page's talking-style
    choice (auto = matched from the voice after the first seconds)."""
    from core.inference.streaming import DEFAULT_LOOKAHEAD    # here, not at import: it loads torch
    gr.Markdown("Talk to the face: press **Record** and speak; the head follows with the look-ahead the "
                f"stream needs ({DEFAULT_LOOKAHEAD:.1f} s after the sound) plus the time shown under it. The talking "
                "style above is used from the start, or with *auto* matched from the voice after 3 s. "
                f"**Stop** ends the stream (at most {MAX_LIVE_SECONDS // 60} minutes; "
                f"{TURN_SECONDS / 60:.0f} minutes while others wait for the head). The controls below are "
                "read when Record is pressed.")
    steps = gr.Dropdown(service.steps_choices, value=service.default_steps, label="Diffusion steps",
                        allow_custom_value=True, elem_id="live-steps")
    controls = controls_box(service.control_limits(service.default_steps), "live-")
    follow_steps(controls, steps, service.control_limits)
    with gr.Row(equal_height=False):
        with gr.Column():
            # type="filepath" and no format: the chunk reaches demo.live as the file the page sent,
            # read by the project's bounded reader (Gradio would decode any name with ffmpeg).
            microphone = gr.Audio(sources=["microphone"], streaming=True, type="filepath", format=None,
                                  label="Microphone", elem_id="live-microphone")
            readout = gr.Markdown("Press Record and speak.", elem_id="live-latency")
        with gr.Column():
            face = gr.HTML(**viewer.html_options("live-viewer", module=viewer.LIVE_MODULE),
                           css_template=viewer.CSS, mesh=_mesh_url(service))
    tab = LiveTab(service, LiveLine(limit=live.MAX_LIVE_SESSIONS), face, readout, gr.State())

    outputs = [tab.ticket, face, readout]
    # No Gradio timer in the readout: Gradio 6 still shows one on an output with show_progress="hidden",
    # so the progress goes to the ticket (a State, never drawn).
    quiet = dict(concurrency_limit=None, show_progress="hidden", show_progress_on=[tab.ticket],
                 api_visibility="private")
    asked = [steps, identity, *controls.inputs]
    microphone.start_recording(bind(start, tab), inputs=[*asked, tab.ticket], outputs=outputs, **quiet)
    microphone.stream(bind(chunk, tab), inputs=[microphone, tab.ticket, *asked], outputs=outputs,
                      stream_every=CHUNK_SECONDS, time_limit=MAX_LIVE_SECONDS + 60, concurrency_id="live", **quiet)
    microphone.stop_recording(bind(stop, tab), inputs=[tab.ticket], outputs=outputs, **quiet)
    return tab


def start(tab: LiveTab, steps, identity, emotion, intensity, head_motion, upper_strength, lower_strength,
          ticket: Ticket | None, request: gr.Request):
    """Record: a place in line (a new one: the client's earlier place is withdrawn), and the
    session right away when it is this visitor's turn (the model gets ready while the page starts
    recording)."""
    _close(tab, ticket)
    with errors_shown():
        ticket = _enter(tab, request, steps, identity, emotion, intensity, head_motion, upper_strength, lower_strength)
        place = tab.line.position(ticket.number, chunk=False)     # the recorder has not sent anything yet
        if place == 0:
            ticket.session = LiveSession(tab.service.talker, ticket.steps, ticket.identity, controls=ticket.controls)
    return {tab.ticket: ticket, tab.face: live_value(NO_FRAMES, 0, _mesh_url(tab.service), reset=True),
            **_readout(tab, ticket, place)}


def chunk(tab: LiveTab, path, ticket: Ticket | None, steps, identity, emotion, intensity, head_motion, upper_strength,
          lower_strength, request: gr.Request):
    """One chunk of the microphone: handed to the session's worker; the frames decoded since the
    last chunk go to the head. A visitor still in line is told their place."""
    arrived = time.time()
    if path is None:
        return gr.skip()
    reset = ticket is None                          # the first chunk overtook Record's own event
    try:
        with errors_shown():
            if ticket is None:
                ticket = _enter(tab, request, steps, identity, emotion, intensity, head_motion, upper_strength,
                                lower_strength)
            place = tab.line.position(ticket.number)
            samples, rate = read_microphone_chunk(path)    # bounded before it is decoded
            if not len(samples):                           # an empty chunk: nothing to hear
                return {tab.ticket: ticket}
            if place > 0:
                return {tab.ticket: ticket, **_readout(tab, ticket, place)}
            if ticket.session is None:
                ticket.session = LiveSession(tab.service.talker, ticket.steps, ticket.identity, controls=ticket.controls)
            if not ticket.session.add(rate, samples, arrived) and ticket.session.error is None:
                return {tab.ticket: ticket}                # stopped (Stop's event ran beside this chunk)
            block = ticket.session.take()
    except gr.Error:
        _close(tab, ticket)
        raise
    return {tab.ticket: ticket, tab.face: _frames(tab, ticket.session, block, reset=reset),
            **_readout(tab, ticket, 0)}


def stop(tab: LiveTab, ticket: Ticket | None):
    """Stop: the place in line goes, the session's last frames come out and the face comes to rest."""
    if ticket is None:
        return {tab.ticket: None}
    with errors_shown():
        block = _close(tab, ticket)
    session = ticket.session
    if session is None:
        return {tab.ticket: None, tab.face: live_value(NO_FRAMES, 0, _mesh_url(tab.service), end=True),
                tab.readout: "Stopped."}
    return {tab.ticket: None, tab.face: _frames(tab, session, block, end=True),
            tab.readout: f"Stopped after {session.heard / SAMPLE_RATE:.1f} s. Press Record to talk again."}


def _enter(tab: LiveTab, request, steps, identity, *controls) -> Ticket:
    """A place in line for what the visitor asked for, each value checked first (one message, no place)."""
    service = tab.service
    steps = service.check_steps(steps)
    ticket = Ticket(0, steps, service.check_identity(identity), service.check_controls(steps, Controls.checked(*controls)))
    ticket.number = tab.line.enter(client_of(request))
    return ticket


def _close(tab: LiveTab, ticket: Ticket | None):
    """End ``ticket``'s stream: its place and its session; the session's last frames (or None)."""
    if ticket is None:
        return None
    tab.line.leave(ticket.number)
    return ticket.session.stop() if ticket.session is not None else None


def _frames(tab: LiveTab, session: LiveSession, block, reset: bool = False, end: bool = False) -> dict:
    """The head's value for a block of frames (or none) of ``session``."""
    curves, first = (block.curves, block.first) if block else (NO_FRAMES, session.frames_out)
    return live_value(curves, first, _mesh_url(tab.service), reset=reset, end=end, info=session.info(),
                      head=block.head if block else None)


def _readout(tab: LiveTab, ticket: Ticket, place: int) -> dict:
    """The readout's new text for a visitor at ``place`` (0: streaming), or nothing if it is shown already."""
    if place == 0:
        text = "Recording: the head follows your voice (its delay is shown under it)."
        if ticket.controls != Controls():
            text += f" Controls: {ticket.controls.describe()}."
    else:
        text = (f"The live head is in use by another visitor. **You are number {place} in line**; your turn comes "
                f"within about {tab.line.turn_ends_in() + (place - 1) * TURN_SECONDS:.0f} s, sooner if they stop. "
                "Keep recording: the head starts following you when it is your turn.")
    if text == ticket.shown:
        return {}
    ticket.shown = text
    return {tab.readout: text}


def _mesh_url(service: DemoService) -> str | None:
    """The default head's file (None if it cannot be packed: the readout still works)."""
    return (viewer_or_warn(service.viewer_head, show=False) or {}).get("mesh")
