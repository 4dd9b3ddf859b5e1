"""The Enroll tab: a new identity from (speech, Live Link Face CSV) takes; every session can use it
at once; an enrolled identity can be removed again.

Handlers behind both endpoints (``/enroll``, ``/remove_identity``): for API clients a problem is an
error; on the page it is a message in the status box, and the Enroll button comes back on however
the enrolment ended. Handlers return ``{component: value}``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import gradio as gr

from demo.forms import ENROL_ITERATIONS
from demo.housekeeping import storage_note
from demo.page import api_only, bind, errors_shown, on_page
from demo.service import DemoService

SPEECH_FILE_TYPES = ["audio", ".mov", ".mp4", ".m4a"]   # recordings (Live Link Face's own .mov)


@dataclass
class EnrollTab:
    """The service, the tab's components and how to refresh the page's identity lists."""
    service: DemoService
    status: gr.Markdown
    button: gr.Button
    to_remove: gr.Dropdown
    identity: gr.Dropdown                   # the page's talking-style choice
    refreshed: Callable[[], dict]           # {component: value} of the page's other identity lists
    others: list                            # those lists' components
    offered: Callable[[], list]             # the talking-style choices, for the shared dropdown's check


def build(service: DemoService, identity: gr.Dropdown, refreshed: Callable[[], dict], others: list,
          offered: Callable[[], list]) -> EnrollTab:
    """The tab's components and events (inside ``gr.Tab``); ``refreshed()`` gives the values of the
    page's other identity lists (the components ``others``), called only in events (a component
    made while the page is built would show up on it)."""
    gr.Markdown("Add a talking style to the library from recordings of one person: each "
                "speech file with the Live Link Face CSV captured with it, **paired by file "
                "name** (`take1.wav` + `take1.csv`), at least 2 s each. The models stay "
                "frozen; only the new identity's embedding is learned, in every model. " + storage_note())
    with gr.Row(equal_height=True):
        speech = gr.File(label="Speech recordings", file_count="multiple", type="filepath",
                         file_types=SPEECH_FILE_TYPES, elem_id="enroll-speech")
        csvs = gr.File(label="Live Link Face CSVs (same names)", file_count="multiple",
                       type="filepath", file_types=[".csv"], elem_id="enroll-csv")
    with gr.Row(equal_height=True):
        name = gr.Textbox(label="Name of the new identity", max_lines=1, max_length=64, elem_id="enroll-name")
        low, default, high = ENROL_ITERATIONS
        iterations = gr.Slider(low, high, value=default, step=1, label="Iterations", elem_id="enroll-iterations",
                               info="more = a closer fit, slower")
    button = gr.Button("Enroll", variant="primary", elem_id="enroll")
    status = gr.Markdown("*The enrolment's progress and result appear here.*", elem_id="enroll-status",
                         min_height=60)
    with gr.Accordion("Remove an enrolled identity", open=False):
        with gr.Row(equal_height=True):
            to_remove = gr.Dropdown(service.enrolment.enrolled(), value=None, label="Enrolled identity to remove",
                                    allow_custom_value=True, elem_id="remove-name")
            remove_button = gr.Button("Remove from the library", variant="secondary", size="sm", elem_id="remove")
    tab = EnrollTab(service, status, button, to_remove, identity, refreshed, others, offered)

    inputs = [speech, csvs, name, iterations]
    lists = [*others, to_remove]
    # The button is off while an enrolment runs (it takes a minute); the handler turns it on again.
    button.click(lambda: gr.Button(interactive=False), outputs=button, queue=False, api_visibility="private").then(
        bind(enroll, tab, True), inputs=inputs, outputs=[status, button, *lists], api_visibility="private",
        concurrency_id="enroll", concurrency_limit=1, show_progress_on=[status])
    remove_button.click(bind(remove, tab, True), inputs=to_remove, outputs=[status, *lists], api_visibility="private",
                        concurrency_id="enroll", concurrency_limit=1)
    api_only(bind(enroll, tab, False), inputs, status, "enroll", 1, "enroll")
    api_only(bind(remove, tab, False), to_remove, status, "remove_identity", 1, "enroll")
    return tab


def enroll(tab: EnrollTab, page: bool, speech_files, csv_files, name, iterations, progress=gr.Progress()):
    """Enrol ``name``; on the page, also the refreshed identity lists and the button on again."""
    service = tab.service
    action = lambda: service.enrolment.enroll(speech_files, csv_files, name, iterations,  # noqa: E731
                                              progress=lambda done, line: progress(done, desc=line))
    return _changed(tab, page, action, {tab.button: gr.Button(interactive=True)} if page else {})


def remove(tab: EnrollTab, page: bool, name):
    """Take ``name`` out of the library; on the page, also the refreshed identity lists."""
    return _changed(tab, page, lambda: tab.service.enrolment.remove(name), {})


def _changed(tab: EnrollTab, page: bool, action, always: dict) -> dict:
    if page:
        status = on_page(action, every_error=True)
        if status is None:                 # the message is shown; the status box says it failed
            return {**always, tab.status: "*Nothing was changed (see the message).*"}
    else:
        with errors_shown():
            status = action()
    # The shared dropdown is what new sessions and API clients are checked against; this
    # browser's own copies are updated with the outputs.
    with errors_shown(input_errors=False):
        tab.identity.choices = tab.offered()
    return {**always, tab.status: status, **(identity_lists(tab) if page else {})}


def identity_lists(tab: EnrollTab) -> dict:
    """Every identity list on the page as it is now, the enrolled ones this tab offers to remove
    included (the page's first values are those of the server's start)."""
    return {**tab.refreshed(), tab.to_remove: gr.Dropdown(choices=tab.service.enrolment.enrolled(), value=None)}
