"""A whole performance, as a visitor sees it: the shipped 8-step model in the Generate tab. With
the controls left alone the head turns and nods with the speech; with "happy" chosen the smile
rises (and the mouth still closes). Read back from the head on the page
(``window.diffusionTalkerViewers``: each frame's weights and head angles)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.arkit import INDEX
from experiments.browser import CHROMIUM, CHROMIUM_ARGS, chromium_available, local_only
from tests.helpers import launch_app, synthesise_speech

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (uses Debian chromium)")
if not chromium_available():
    pytest.skip("Debian chromium is not installed (apt-get install chromium)", allow_module_level=True)

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"
VIEWER = "window.diffusionTalkerViewers[0]"
TEXT = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."
SMILE = [INDEX["mouthSmileLeft"], INDEX["mouthSmileRight"]]


def _played(page) -> tuple[np.ndarray, np.ndarray]:
    """(weights [F, 52], head [F, 3]) of the Generate tab's head, read by seeking it frame by frame."""
    rows = page.evaluate(f"""() => {{
        const v = {VIEWER};
        v.pause();
        const out = [];
        for (let f = 0; f < v.state().frames; f++) {{ v.seek((f + 0.5) / 30); out.push([v.state().weights, v.state().head]); }}
        return out;
    }}""")
    return np.asarray([w for w, _ in rows], np.float32), np.asarray([h for _, h in rows], np.float32)


def _generate(page, previous_label: str | None) -> tuple[np.ndarray, np.ndarray]:
    page.click("#generate")
    page.wait_for_function(f"{VIEWER}?.state().ready && {VIEWER}.state().frames > 0 && "
                           f"{VIEWER}.state().label !== {previous_label!r}".replace("None", "null"), timeout=180_000)
    return _played(page)


@pytest.fixture(scope="module")
def takes(tmp_path_factory):
    """{"neutral": (weights, head), "happy": (weights, head)} from the page."""
    speech = tmp_path_factory.mktemp("audio") / "speech.wav"
    synthesise_speech(speech, TEXT)
    demo, url = launch_app(SHIPPED)
    outside: list[str] = []
    out = {}
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            local_only(context, outside)
            page = context.new_page()
            page.goto(url)
            page.wait_for_selector("#generate", timeout=60_000)
            page.click("#speech-input button[aria-label='Upload file']")
            page.set_input_files("#speech-input input[type=file]", str(speech))
            page.wait_for_selector("#speech-input audio, #speech-input [data-testid='waveform-controls']",
                                   state="attached", timeout=30_000)
            out["neutral"] = _generate(page, None)
            label = page.evaluate(f"{VIEWER}.state().label")
            page.click("#emotion input")
            page.get_by_role("option", name="happy", exact=True).click()
            out["happy"] = _generate(page, label)
            browser.close()
    finally:
        demo.close()
    assert not outside
    return out


@pytest.mark.slow
def test_the_head_turns_and_nods_with_the_speech(takes):
    _, head = takes["neutral"]
    degrees = np.degrees(head)
    assert len(head) > 90 and np.isfinite(head).all()
    assert degrees.std(0).max() > 0.5, degrees.std(0)                  # it moves, not a fixed pose
    assert np.abs(np.diff(degrees, axis=0)).max() * 30 < 200            # never faster than a real head


@pytest.mark.slow
def test_choosing_happy_raises_the_smile(takes):
    neutral, _ = takes["neutral"]
    happy, _ = takes["happy"]
    assert happy[:, SMILE].mean() > neutral[:, SMILE].mean() + 0.15, (happy[:, SMILE].mean(), neutral[:, SMILE].mean())
