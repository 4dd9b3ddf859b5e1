"""What every event of the page shares: errors and warnings as messages (never a traceback),
input problems that leave earlier results in place, parts of a result that may fail alone
(the video, the 3D head), API-only endpoints, a slider that hands its value over as sent, and
the row of controls (emotion, intensity, face strengths, head motion) that every tab offers."""
from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from dataclasses import dataclass
from typing import Callable, Iterator, get_type_hints

import gradio as gr

from core.emotion import EMOTIONS, NEUTRAL
from core.inference.controls import MAX_STRENGTH

log = logging.getLogger(__name__)

INPUT_PROBLEM = "Cannot use this input"   # the title of a message about what the user gave


class UncheckedSlider(gr.Slider):
    """A slider that hands its value over as sent (Gradio's own check would fail on "2" with
    no message); :mod:`demo.forms` checks it like every other field."""
    is_template = True        # drawn by the Slider front end

    def preprocess(self, payload):
        return payload


@contextlib.contextmanager
def errors_shown(input_errors: bool = True) -> Iterator[None]:
    """Turn exceptions into ``gr.Error`` pop-ups (no traceback reaches the page).

    With ``input_errors``, a ``ValueError`` (``core.audio.decode.AudioError`` included) is a problem
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
            raise gr.Error(str(err), title=INPUT_PROBLEM, print_exception=False) from None
        log.exception("request failed")
        raise gr.Error(f"Something went wrong ({type(err).__name__}: {err}). The app is still running; "
                       "please try again.", title="Internal error", print_exception=False) from None


def on_page(action, every_error: bool = False):
    """``action()`` for an event of the page; a problem with the input (with ``every_error``, any
    problem) becomes a message and None, so that the caller leaves every output as it was (never
    half cleared under a red "Error")."""
    try:
        with errors_shown():
            return action()
    except gr.Error as err:
        if err.title != INPUT_PROBLEM and not every_error:
            raise
        gr.Warning(err.message, title=err.title or INPUT_PROBLEM)
        return None


def bind(handler, tab, page: bool | None = None):
    """``handler`` with its first arguments given (a tab's components; page or API), as Gradio calls
    it: the rest of its signature, its type hints (a ``gr.Request`` parameter gets the request) and
    its generator-ness are kept. Its name (Gradio's default endpoint name) says which: a private
    page event must not take the API's name (``enroll_page``)."""
    args = (tab,) if page is None else (tab, page)
    if inspect.isgeneratorfunction(handler):
        def bound(*rest, **named):
            yield from handler(*args, *rest, **named)
    else:
        def bound(*rest, **named):
            return handler(*args, *rest, **named)
    # not functools.wraps: Gradio would read the full signature
    bound.__signature__ = inspect.signature(functools.partial(handler, *args))
    bound.__annotations__ = get_type_hints(handler)
    bound.__name__ = handler.__name__ + ("_page" if page else "")
    return bound


def api_only(fn, inputs, outputs, api_name: str, concurrency_limit: int, concurrency_id: str = "model") -> None:
    """An endpoint for API clients only (a trigger that the page never shows), sharing a queue."""
    gr.Button(visible=False).click(fn, inputs=inputs, outputs=outputs, api_name=api_name,
                                   concurrency_id=concurrency_id, concurrency_limit=concurrency_limit)


def render_or_warn(render, notes: list[str]):
    """The video, or None with a note: the curves and the 3D head stand without it."""
    try:
        return render()
    except Exception as err:
        log.exception("rendering failed")
        notes.append(f"Could not render the face video: {err}")
        return None


def viewer_or_warn(build, show: bool = True):
    """A viewer value, or None (logged, and a warning on the page): the rest of a result stands without it."""
    try:
        return build()
    except Exception as err:
        log.exception("the 3D viewer's data could not be made")
        if show:
            gr.Warning(f"The 3D head cannot be shown: {err}")
        return None


def frames_progress(progress: gr.Progress):
    """A ``progress(done, total)`` callback for core.face.render that moves a Gradio progress bar."""
    return lambda done, total: progress(done / total, desc=f"rendering frame {done} of {total}")


@dataclass
class ControlsBox:
    """A tab's emotion (Compare: emotions, laid side by side), intensity, face strengths and head
    switch; ``inputs`` in the order of ``Controls.checked``'s arguments."""
    emotion: gr.Dropdown
    intensity: gr.Slider
    head_motion: gr.Checkbox
    upper_strength: gr.Slider
    lower_strength: gr.Slider
    several: bool = False

    @property
    def inputs(self) -> list:
        return [self.emotion, self.intensity, self.head_motion, self.upper_strength, self.lower_strength]


def _states(limits: dict[str, str], several: bool) -> dict[str, dict]:
    """Whether each control the model may refuse is offered, and its info line: what it does, or
    why it is off (``limits``: ``DemoService.control_limits``)."""
    no_emotion, no_head = limits.get("emotion"), limits.get("head_motion")
    return {"emotion": dict(interactive=not no_emotion, info=no_emotion or (
                "a row of heads each" if several else "neutral: the model's own face")),
            "intensity": dict(interactive=not no_emotion,
                              info="not available (see Emotion)" if no_emotion else "how strongly the emotion shows"),
            "head_motion": dict(interactive=not no_head, info=no_head or "off: the head stays still")}


def controls_box(limits: dict[str, str], prefix: str = "", several: bool = False) -> ControlsBox:
    """The controls as one compact row in an accordion (inside a tab's layout). Those the model
    cannot honour are shown disabled, their info line saying why; the values reach
    ``Controls.checked`` as sent (API clients too), so every interface has one rule and one message.
    Defaults are ``Controls()``'s (intensity 1: a take equals the API's and the CLI's for the same
    emotion, and a picked emotion shows as trained at full strength)."""
    state = _states(limits, several)
    with gr.Accordion("Emotion, face strengths and head motion", open=True, elem_id=f"{prefix}controls"):
        with gr.Row(equal_height=True):
            emotion = gr.Dropdown(list(EMOTIONS), value=[NEUTRAL] if several else NEUTRAL, multiselect=several,
                                  allow_custom_value=True, label="Emotions" if several else "Emotion",
                                  elem_id=f"{prefix}emotion{'s' * several}", min_width=150, **state["emotion"])
            intensity = UncheckedSlider(0, 1, value=1.0, step=0.05, label="Intensity", elem_id=f"{prefix}intensity",
                                        min_width=150, **state["intensity"])
            upper = UncheckedSlider(0, MAX_STRENGTH, value=1.0, step=0.05, label="Upper-face strength",
                                    info="brows, eyes: 0 still, 2 twice", elem_id=f"{prefix}upper-strength",
                                    min_width=150)
            lower = UncheckedSlider(0, MAX_STRENGTH, value=1.0, step=0.05, label="Lower-face strength",
                                    info="jaw, mouth, cheeks: 0 still, 2 twice", elem_id=f"{prefix}lower-strength",
                                    min_width=150)
            head = gr.Checkbox(True, label="Head motion", elem_id=f"{prefix}head-motion", min_width=120,
                               **state["head_motion"])
    return ControlsBox(emotion, intensity, head, upper, lower, several)


def follow_steps(box: ControlsBox, steps: gr.Dropdown, limits_of: Callable[[object], dict[str, str]]) -> None:
    """When the step count changes, offer what its model can do (``limits_of(steps)``); a disabled
    emotion goes back to neutral, so what is sent is what the face shows."""
    def update(value):
        try:
            state = _states(limits_of(value), box.several)
        except ValueError:            # a step count typed in that no model has: Generate says so
            return gr.skip()
        neutral = {} if state["emotion"]["interactive"] else {"value": [NEUTRAL] if box.several else NEUTRAL}
        return {box.emotion: gr.update(**state["emotion"], **neutral), box.intensity: gr.update(**state["intensity"]),
                box.head_motion: gr.update(**state["head_motion"])}
    steps.change(update, inputs=steps, outputs=[box.emotion, box.intensity, box.head_motion], queue=False,
                 api_visibility="private", show_progress="hidden")
