"""The Live tab: the page records the microphone and uploads it, the 3D head moves as the speaker talks.

**Record** (a Gradio event) takes a place in line with the visitor's settings and answers the live
head with an upload address, ``live/audio/<token>``; the head's page module starts the microphone
at the click (``demo/static/microphone.js``) and uploads the audio there, one upload at a time
(:func:`receive_audio`, a plain HTTP route: :func:`routes`), each answered with the frames decoded
since the last (:class:`demo.live.LiveSession`), which the head appends and draws at its own pace
with its readout (microphone-to-face delay, frames drawn, audio skipped, style, the visitor's
place in line). **Stop** ends the stream: its last frames come out and the face comes to rest.

Why not Gradio's streaming microphone: Gradio keeps only the newest slice of those that reach a
stream while its handler runs, and on a busy 2-core machine half the audio was lost on the way
(RESULTS.md, Live). The token is the only key to a stream: unguessable, made per Record, gone at
Stop; an upload is raw 16-bit PCM (nothing in it is parsed as a file, a name or a length).

Who streams is :class:`demo.live.LiveLine`'s to say. The logic is in :mod:`demo.live`; this module
wires components and the route, and its Gradio handlers return ``{component: value}``.
"""
from __future__ import annotations

import asyncio
import secrets
import threading
import time
from dataclasses import dataclass, field

import numpy as np

import gradio as gr

from core.inference.controls import Controls
from core.rates import SAMPLE_RATE
from demo import live, viewer
from demo.fairness import client_of
from demo.live import (MAX_LIVE_SECONDS, MAX_UPLOAD_BYTES, TURN_SECONDS, LiveLine, LiveSession, live_value,
                       read_upload)
from demo.page import bind, controls_box, errors_shown, follow_steps, viewer_or_warn
from demo.service import DemoService

NO_FRAMES = np.zeros((0, 52), np.float32)
UPLOAD_PATH = "live/audio/"          # + the stream's token: where the page uploads (page-relative)
FOLLOW_PATH = "live/frames/"         # + the stream's token: where the page asks for frames as they come
FOLLOW_SECONDS = 2.0                 # a request for frames is answered within this, frames or none
FOLLOW_CHECK = 0.01                  # ... checking for new frames this often (no thread is held meanwhile)
RECORD_ID, STOP_ID = "live-record", "live-stop"


@dataclass
class Ticket:
    """A visitor's live stream: their place in the line, what they asked for, their session once it
    runs, and the token its uploads name."""
    number: int
    steps: int
    identity: str | None
    controls: Controls
    session: LiveSession | None = None
    token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)   # one upload at a time


@dataclass
class LiveTab:
    """The service, who may stream, the streams by token, and the tab's components (what the
    handlers read and write)."""
    service: DemoService
    line: LiveLine
    face: gr.HTML
    readout: gr.Markdown
    ticket: gr.State
    streams: dict[str, Ticket] = field(default_factory=dict)
    streams_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def build(service: DemoService, identity: gr.Dropdown) -> LiveTab:
    """The tab's components and events (inside ``gr.Tab``); ``identity``: the page's talking-style
    choice (auto = matched from the voice after the first seconds). Serve :func:`routes` beside it."""
    from core.inference.streaming import DEFAULT_LOOKAHEAD    # here, not at import: it loads torch
    gr.Markdown("Talk to the face: press **Record** and speak; the head follows with the look-ahead the "
                f"stream needs ({DEFAULT_LOOKAHEAD:g} s after the sound) plus the time shown under it. The talking "
                "style above is used from the start, or with *auto* matched from the voice after 3 s. "
                f"**Stop** ends the stream (at most {MAX_LIVE_SECONDS // 60} minutes; "
                f"{TURN_SECONDS / 60:.0f} minutes while others wait for the head). The controls below are "
                f"read when Record is pressed; {service.default_live_steps} diffusion steps keep the delay short.")
    steps = gr.Dropdown(service.steps_choices, value=service.default_live_steps, label="Diffusion steps",
                        allow_custom_value=True, elem_id="live-steps")
    controls = controls_box(service.control_limits(service.default_live_steps), "live-")
    follow_steps(controls, steps, service.control_limits)
    with gr.Row(equal_height=False):
        with gr.Column():
            with gr.Row():
                record = gr.Button("Record", variant="primary", elem_id=RECORD_ID)
                stop_button = gr.Button("Stop", elem_id=STOP_ID)
            readout = gr.Markdown("Press Record and speak (the browser asks for the microphone).",
                                  elem_id="live-latency")
        with gr.Column():
            face = gr.HTML(**viewer.html_options("live-viewer", module=viewer.LIVE_MODULE),
                           css_template=viewer.CSS, mesh=_mesh_url(service), record=f"#{RECORD_ID}",
                           stop=f"#{STOP_ID}")
    tab = LiveTab(service, LiveLine(limit=live.MAX_LIVE_SESSIONS), face, readout, gr.State())

    outputs = [tab.ticket, face, readout]
    # No Gradio timer in the readout: Gradio 6 still shows one on an output with show_progress="hidden",
    # so the progress goes to the ticket (a State, never drawn).
    quiet = dict(concurrency_limit=None, show_progress="hidden", show_progress_on=[tab.ticket],
                 api_visibility="private")
    record.click(bind(start, tab), inputs=[steps, identity, *controls.inputs, tab.ticket], outputs=outputs, **quiet)
    stop_button.click(bind(stop, tab), inputs=[tab.ticket], outputs=outputs, **quiet)
    return tab


def start(tab: LiveTab, steps, identity, emotion, intensity, head_motion, upper_strength, lower_strength,
          ticket: Ticket | None, request: gr.Request):
    """Record: a place in line (a new one: the client's earlier place is withdrawn), the session
    right away when it is this visitor's turn (the model gets ready while the page starts
    recording), and the address the page uploads the microphone's audio to."""
    _close(tab, ticket)
    _sweep(tab)
    with errors_shown():
        ticket = _enter(tab, request, steps, identity, emotion, intensity, head_motion, upper_strength, lower_strength)
        place = tab.line.position(ticket.number, chunk=False)     # the recorder has not sent anything yet
        if place == 0:
            ticket.session = LiveSession(tab.service.talker, ticket.steps, ticket.identity, controls=ticket.controls)
    with tab.streams_lock:
        tab.streams[ticket.token] = ticket
    text = _readout_text(tab, ticket, place)
    return {tab.ticket: ticket, tab.readout: text,
            tab.face: live_value(NO_FRAMES, 0, _mesh_url(tab.service), reset=True, upload=UPLOAD_PATH + ticket.token,
                                 follow=FOLLOW_PATH + ticket.token, message=text if place else None)}


def stop(tab: LiveTab, ticket: Ticket | None):
    """Stop: the place in line goes, the session's last frames come out and the face comes to rest."""
    if ticket is None:
        return {tab.ticket: None, tab.face: live_value(NO_FRAMES, 0, _mesh_url(tab.service), end=True)}
    with errors_shown():
        block = _close(tab, ticket)
    session = ticket.session
    if session is None:
        return {tab.ticket: None, tab.face: live_value(NO_FRAMES, 0, _mesh_url(tab.service), end=True),
                tab.readout: "Stopped."}
    return {tab.ticket: None, tab.face: _frames(tab, session, block, end=True),
            tab.readout: f"Stopped after {session.heard / SAMPLE_RATE:.1f} s. Press Record to talk again."}


def receive_audio(tab: LiveTab, token: str, data: bytes, rate, start) -> dict:
    """One upload of the page's microphone (raw 16-bit PCM at ``rate``; ``start``: its first sample's
    place in the recording): handed to the session's worker; answers the frames decoded since the
    last upload, or the visitor's place in line. ``gr.Error``: a message for the visitor (the
    stream has ended)."""
    with tab.streams_lock:
        ticket = tab.streams.get(token)
    if ticket is None:
        raise gr.Error("This live stream has ended; press Record to talk again.", print_exception=False)
    with ticket.lock:
        try:
            with errors_shown():
                place = tab.line.position(ticket.number)
                samples, rate = read_upload(data, rate)
                start = None if start is None else _sample_index(start)
                if place > 0:
                    return live_value(NO_FRAMES, 0, None, message=_readout_text(tab, ticket, place))
                if ticket.session is None:
                    ticket.session = LiveSession(tab.service.talker, ticket.steps, ticket.identity,
                                                 controls=ticket.controls)
                if not ticket.session.add(rate, samples, start) and ticket.session.error is None:
                    return live_value(NO_FRAMES, ticket.session.frames_out, None, end=True)   # Stop ran beside it
                block = ticket.session.take()
        except gr.Error:
            _close(tab, ticket)
            raise
    return _frames(tab, ticket.session, block, mesh=False)


async def follow_frames(tab: LiveTab, token: str) -> dict:
    """The frames decoded since they were last taken, as soon as there are some (or none after
    :data:`FOLLOW_SECONDS`): the page asks again at once, so a block reaches the head when it is
    decoded rather than with the answer to a later upload. Waits without holding a thread.
    ``gr.Error``: the stream has ended."""
    deadline = time.monotonic() + FOLLOW_SECONDS
    while True:
        with tab.streams_lock:
            ticket = tab.streams.get(token)
        if ticket is None:
            raise gr.Error("This live stream has ended; press Record to talk again.", print_exception=False)
        session = ticket.session
        if (session is not None and session.ready()) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(FOLLOW_CHECK)
    if session is None:
        return live_value(NO_FRAMES, 0, None)
    with errors_shown():
        block = session.take()
    return _frames(tab, session, block, mesh=False)


def routes(tab: LiveTab) -> list:
    """The Live tab's routes for the app (``demo.ui.launch`` serves them beside Gradio's):
    ``POST live/audio/<token>?rate=<Hz>&start=<sample>`` with the PCM as the body, and
    ``GET live/frames/<token>`` (:func:`follow_frames`); JSON answers, ``{"error": message}`` with
    status 4xx for a problem the visitor should read."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def upload(request):
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
            return _refusal(413, f"The microphone sent {int(declared) / 1e6:.1f} MB at once; an upload may be at most "
                                 f"{MAX_UPLOAD_BYTES / 1e6:.1f} MB. Press Record again.")
        data = bytearray()
        async for part in request.stream():
            data += part
            if len(data) > MAX_UPLOAD_BYTES:
                return _refusal(413, f"The microphone sent more than {MAX_UPLOAD_BYTES / 1e6:.1f} MB at once. "
                                     "Press Record again.")
        query = request.query_params
        try:
            value = await run_in_threadpool(receive_audio, tab, request.path_params["token"], bytes(data),
                                            query.get("rate"), query.get("start"))
        except gr.Error as err:
            return _refusal(400, err.message)
        return JSONResponse(value)

    async def frames(request):
        try:
            return JSONResponse(await follow_frames(tab, request.path_params["token"]))
        except gr.Error as err:
            return _refusal(400, err.message)

    def _refusal(status: int, message: str):
        return JSONResponse({"error": message}, status_code=status)

    return [Route("/" + UPLOAD_PATH + "{token}", upload, methods=["POST"]),
            Route("/" + FOLLOW_PATH + "{token}", frames, methods=["GET"])]


def _sample_index(text) -> int:
    try:
        index = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"An upload's start must be a sample number, not {str(text)[:20]!r}.") from None
    if index < 0:
        raise ValueError("An upload's start must not be negative.")
    return index


def _enter(tab: LiveTab, request, steps, identity, *controls) -> Ticket:
    """A place in line for what the visitor asked for, each value checked first (one message, no place)."""
    service = tab.service
    steps = service.check_steps(steps)
    ticket = Ticket(0, steps, service.check_identity(identity), service.check_controls(steps, Controls.checked(*controls)))
    ticket.number = tab.line.enter(client_of(request))
    return ticket


def _close(tab: LiveTab, ticket: Ticket | None):
    """End ``ticket``'s stream: its token, its place and its session; the session's last frames (or None)."""
    if ticket is None:
        return None
    with tab.streams_lock:
        tab.streams.pop(ticket.token, None)
    tab.line.leave(ticket.number)
    return ticket.session.stop() if ticket.session is not None else None


def _sweep(tab: LiveTab) -> None:
    """Streams whose place went (a tab closed without Stop) end: their tokens and sessions go."""
    with tab.streams_lock:
        gone = [t for t in tab.streams.values() if not tab.line.holds(t.number)]
    for ticket in gone:
        _close(tab, ticket)


def _frames(tab: LiveTab, session: LiveSession, block, end: bool = False, mesh: bool = True,
            message: str | None = None) -> dict:
    """The head's value for a block of frames (or none) of ``session`` (``mesh``: name the head's
    file again, as the Gradio events do; an upload's answer leaves it out)."""
    curves, first = (block.curves, block.first) if block else (NO_FRAMES, session.frames_out)
    return live_value(curves, first, _mesh_url(tab.service) if mesh else None, end=end, info=session.info(),
                      head=block.head if block else None, message=message)


def _readout_text(tab: LiveTab, ticket: Ticket, place: int) -> str:
    """What the readout says to a visitor at ``place`` (0: streaming)."""
    if place == 0:
        text = "Recording: the head follows your voice (its delay is shown under it)."
        if ticket.controls != Controls():
            text += f" Controls: {ticket.controls.describe()}."
        return text
    return (f"The live head is in use by another visitor. You are number {place} in line; your turn comes "
            f"within about {tab.line.turn_ends_in() + (place - 1) * TURN_SECONDS:.0f} s, sooner if they stop. "
            "Keep talking: the head starts following you when it is your turn.")


def _mesh_url(service: DemoService) -> str | None:
    """The default head's file (None if it cannot be packed: the readout still works)."""
    return (viewer_or_warn(service.viewer_head, show=False) or {}).get("mesh")
