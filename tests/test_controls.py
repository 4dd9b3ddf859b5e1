"""Emotion, intensity, face strengths and the head switch through the paths a user takes: what the
page offers for the model it serves, Generate and Compare (the service, then the running app's
page events and HTTP API). The CLI's flags are tested in test_cli.py, Live in test_live.py, the
stream in test_streaming.py.

The app serves a mixed folder: an 8-step model of the new family (head channels, emotions; its
emotion projection made non-zero as a trained one is) and a 4-step model of today's (neither),
so one server shows what is offered, what is refused and why.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.emotion import AXES
from core.inference.controls import UPPER, Controls
from demo import formatting
from demo import service as demo_service
from tests.helpers import launch_app, make_tiny_checkpoints, page_event, synthesise_speech


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory):
    """teacher-8 knows emotions and moves the head; distilled-4 is one of today's models."""
    from core.model.manifest import build_manifest
    new, old = tmp_path_factory.mktemp("new"), tmp_path_factory.mktemp("old")
    make_tiny_checkpoints(new, head_channels=3, emotions=list(AXES))
    make_tiny_checkpoints(old)
    shutil.rmtree(new / "distilled-4")
    shutil.copytree(old / "distilled-4", new / "distilled-4")
    build_manifest(new)
    return new


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "hello.wav"
    synthesise_speech(path)
    return path


@pytest.fixture(scope="module")
def service(mixed_root, tmp_path_factory):
    talker, problem = demo_service.load_talker(mixed_root)
    assert problem is None
    return demo_service.DemoService(talker, workdir=tmp_path_factory.mktemp("work"))


@pytest.fixture(scope="module")
def app(mixed_root):
    from gradio_client import Client
    demo, url = launch_app(mixed_root)
    yield demo, Client(url, verbose=False)
    demo.close()


def components(demo) -> dict:
    return {block.elem_id: block for block in demo.blocks.values() if getattr(block, "elem_id", None)}


# --------------------------------------------------------------------------- what the page offers

def test_the_page_offers_what_the_model_can_do_and_says_why_not(service, mixed_root, tmp_path):
    from demo import ui
    assert service.control_limits(8) == {}
    assert service.control_limits(4) == {"emotion": "not available with the 4-step model (trained without emotions)",
                                         "head_motion": "not available with the 4-step model (trained without head motion)"}
    assert service.control_limits([8, 4])["emotion"] == "not available with the 4-step model (trained without emotions)"
    # Live streams 4 steps by default, but not a 4-step model that would take the emotions away
    assert service.default_live_steps == 8
    shown = components(ui.build_demo(service=service, warm_up=False))
    for prefix in ("", "live-"):          # every tab has the row; the default 8-step model honours it all
        emotion = shown[f"{prefix}emotion"]
        assert emotion.interactive is not False and shown[f"{prefix}head-motion"].interactive is not False
        assert list(emotion.choices) == [(e, e) for e in ("neutral", "happy", "sad", "angry", "surprised")]
        assert shown[f"{prefix}intensity"].value == 1.0 and shown[f"{prefix}upper-strength"].maximum == 2
    # Compare starts with 8 and 4 steps: the 4-step model knows no emotions, so the axis is off and says which
    assert shown["compare-steps"].value == [8, 4] and shown["compare-emotions"].interactive is False
    assert shown["compare-emotions"].info == "not available with the 4-step model (trained without emotions)"
    # only today's model: the controls it cannot honour are off from the start, each saying why (no error to meet)
    old = tmp_path / "old"
    make_tiny_checkpoints(old)
    talker, _ = demo_service.load_talker(old)
    shown = components(ui.build_demo(service=demo_service.DemoService(talker, workdir=tmp_path / "w"), warm_up=False))
    for elem_id in ("emotion", "compare-emotions", "live-emotion"):
        assert shown[elem_id].interactive is False and "trained without emotions" in shown[elem_id].info
    assert shown["intensity"].interactive is False and shown["intensity"].info == "not available (see Emotion)"
    assert shown["head-motion"].interactive is False and "trained without head motion" in shown["head-motion"].info
    assert shown["upper-strength"].interactive is not False         # strengths work on any model


def test_choosing_a_step_count_offers_its_models_controls(app):
    demo, client = app
    emotion, intensity, head = page_event(client, demo, "steps", "change", 4)
    assert emotion["interactive"] is False and emotion["value"] == "neutral"       # what is sent is what shows
    assert "4-step model (trained without emotions)" in emotion["info"] and intensity["interactive"] is False
    assert head["interactive"] is False and "without head motion" in head["info"]
    emotion, _, head = page_event(client, demo, "steps", "change", 8)
    assert emotion["interactive"] is True and "value" not in emotion and head["interactive"] is True
    emotions, _, _ = page_event(client, demo, "compare-steps", "change", [8, 4])
    assert emotions["interactive"] is False and emotions["value"] == ["neutral"]


# --------------------------------------------------------------------------- Generate and Compare, no server

def test_a_take_carries_its_controls_into_the_face_the_label_and_the_file_names(service, speech_wav):
    happy = service.generate(str(speech_wav), 8, 0, 1, "a", Controls.checked("happy", 0.6, True, 1.0, 1.0))
    neutral = service.generate(str(speech_wav), 8, 0, 1, "a")
    generation = happy.generation
    assert generation.controls.emotion == "happy" and generation.head.shape == (1, generation.frames, 3)
    assert np.abs(generation.blendshapes - neutral.generation.blendshapes).max() > 1e-3     # the emotion arrived
    assert np.abs(generation.head).max() > 1e-4                                               # the head moves
    assert service.viewer_take(happy)["cells"][0]["label"] == "8 steps, seed 0, happy 0.6"
    assert service.viewer_take(neutral)["cells"][0]["label"] == "8 steps, seed 0"            # as it always was
    assert happy.name == "hello_8steps_seed0_happy-0.6" and neutral.name == "hello_8steps_seed0"
    assert all(f.name.startswith("hello_8steps_seed0_happy-0.6.") for f in service.export(happy))
    still = service.generate(str(speech_wav), 8, 0, 1, "a", Controls(upper_strength=0.0, head_motion=False)).generation
    assert not still.head.any() and not still.blendshapes[..., list(UPPER)].any()
    # today's model: refused before the audio is even read, with what to do
    with pytest.raises(ValueError, match=r"^The 4-step model was trained without emotions; choose neutral\.$"):
        service.generate(None, 4, 0, 1, "a", Controls(emotion="sad"))


def test_compare_lays_emotions_side_by_side(service, speech_wav):
    asked = [Controls.checked(e, 0.8, True, 1.0, 1.0) for e in ("neutral", "happy", "sad")]
    comparison = service.compare(str(speech_wav), [8], "0, 1", "a", asked)
    assert comparison.cells == [(8, e, s) for e in ("neutral", "happy", "sad") for s in (0, 1)]
    grid = service.viewer_grid(comparison)
    assert grid["cols"] == 2 and [c["label"] for c in grid["cells"]][:3] == [
        "8 steps, seed 0, neutral", "8 steps, seed 1, neutral", "8 steps, seed 0, happy 0.8"]
    runs = comparison.runs
    assert np.abs(runs[(8, "happy", 0)] - runs[(8, "sad", 0)]).max() > 1e-3
    single = service.generate(str(speech_wav), 8, 1, 1, "a", asked[2]).generation
    np.testing.assert_allclose(runs[(8, "sad", 1)], single.blendshapes[0], atol=1e-5)   # a cell is that take
    np.testing.assert_allclose(comparison.heads[(8, "sad", 1)], single.head[0], atol=1e-5)
    figure_runs, spreads = formatting.plotted(comparison)
    assert list(spreads) == ["8 steps, neutral", "8 steps, happy 0.8", "8 steps, sad 0.8"]
    summary = formatting.comparison_summary(comparison)
    assert "Emotions side by side: neutral, happy, sad" in summary and "| 8 | sad |" in summary
    with pytest.raises(ValueError, match="1 step counts x 5 seeds x 3 emotions is more than 12"):
        service.compare(str(speech_wav), [8], "0, 1, 2, 3, 4", "a", asked)
    with pytest.raises(ValueError, match="The 4-step model was trained without emotions"):
        service.compare(str(speech_wav), [8, 4], "0", "a", asked)


# --------------------------------------------------------------------------- the HTTP API

def test_the_generate_api_takes_the_controls_and_old_clients_get_todays_face(app, service, speech_wav):
    from gradio_client import handle_file
    _, client = app
    audio = handle_file(str(speech_wav))
    *_, figure, _, _, files = client.predict(audio, 8, 0, 1, "a", emotion="happy", intensity=0.6, upper_strength=0,
                                             head_motion=False, api_name="/generate")
    curves = np.load(next(f for f in files if f.endswith(".npy")))
    assert "happy 0.6, upper x0, head still" in json.loads(figure["plot"])["layout"]["title"]["text"]
    assert not curves[:, list(UPPER)].any() and curves[:, list(set(range(52)) - set(UPPER))].any()
    wave = service.load(str(speech_wav))
    expected = service.talker.generate(wave, steps=8, seed=0, identity="a", speech_check=True,
                                       controls=Controls(emotion="happy", intensity=0.6, upper_strength=0.0))
    np.testing.assert_allclose(curves[:, :52], expected.blendshapes[0], atol=1e-5)   # then the head's 3 columns
    assert not curves[:, 52:].any()                                                     # switched off: still
    *_, files = client.predict(audio, 8, 0, 1, "a", api_name="/generate")      # a client that sends none
    plain = service.talker.generate(wave, steps=8, seed=0, identity="a", speech_check=True)
    np.testing.assert_allclose(np.load(next(f for f in files if f.endswith(".npy"))),
                               np.concatenate([plain.blendshapes[0], plain.head[0]], 1), atol=1e-5)
    for asked, message in (({"emotion": "joy"}, "Unknown emotion 'joy': choose one of neutral, happy"),
                           ({"intensity": 1.5}, "The intensity must be a number from 0 to 1, not 1.5"),
                           ({"lower_strength": "lots"}, "The lower-face strength must be a number from 0 to 2"),
                           ({"head_motion": "yes"}, "Head motion must be true or false"),
                           ({"emotion": "sad", "steps": 4}, "The 4-step model was trained without emotions")):
        steps = asked.pop("steps", 8)
        with pytest.raises(Exception, match=message) as info:
            client.predict(audio, steps, 0, 1, "a", **asked, api_name="/generate")
        assert "Traceback" not in str(info.value) and "upstream" not in str(info.value)


def test_the_page_compares_emotions_as_a_user_picks_them(app, speech_wav):
    from gradio_client import handle_file
    _, client = app
    grid, *_ = client.predict(handle_file(str(speech_wav)), [8], "0", "jawOpen", "a", ["neutral", "angry"], 0.5,
                              api_name="/compare_live")
    assert [c["label"] for c in grid["cells"]] == ["8 steps, seed 0, neutral", "8 steps, seed 0, angry 0.5"]
    with pytest.raises(Exception, match="Pick one or more emotions"):
        client.predict(handle_file(str(speech_wav)), [8], "0", "jawOpen", "a", [], api_name="/compare")
