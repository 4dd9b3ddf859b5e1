"""The demo in a real browser: Debian chromium driven by Playwright (never `playwright install`).

Uploads a clip, changes steps and seed, generates, and waits for the identity table, the
curves plot and the face video; then records from Chromium's fake microphone. Screenshots
go to pytest's tmp_path. Skipped without /usr/bin/chromium or the playwright package.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.helpers import IDENTITIES, launch_app, make_tiny_checkpoints, synthesise_speech

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (uses Debian chromium)")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Debian chromium is not installed (apt-get install chromium)", allow_module_level=True)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
RESULT_TIMEOUT_MS = 120_000          # a busy 2-core machine; the tiny model answers in seconds


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    make_tiny_checkpoints(root)
    demo, url = launch_app(root)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "browser.wav"
    synthesise_speech(path, "Good morning. Please read the numbers one, two, three.")
    return path


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.grant_permissions(["microphone"], origin=app_url.rstrip("/"))
    page = context.new_page()
    page.goto(app_url)
    page.wait_for_selector("#generate", timeout=30_000)
    yield page
    context.close()


ERROR_TOAST = "[data-testid='toast-body']"


def _toasts(page) -> list[str]:
    return [page.locator(ERROR_TOAST).nth(i).inner_text() for i in range(page.locator(ERROR_TOAST).count())]


def _wait_for(page, selector: str) -> None:
    """Wait until ``selector`` shows up; fail at once with its message if an error pop-up does
    (a warning pop-up, e.g. "does not sound like speech", is not an error)."""
    page.wait_for_selector(f"{selector}, {ERROR_TOAST}", timeout=RESULT_TIMEOUT_MS)
    errors = [text for text in _toasts(page) if not text.strip().startswith("Warning")]
    if errors:
        pytest.fail(f"the app showed an error: {errors[0]}")
    page.wait_for_selector(selector, timeout=RESULT_TIMEOUT_MS)


def _generate_and_wait(page, tmp_path, name: str) -> dict[str, float]:
    """Click Generate; wait for the curves, then the video. Returns seconds from the click to each."""
    start = time.perf_counter()
    page.click("#generate")
    _wait_for(page, "#curves-plot .js-plotly-plot")
    to_curves = time.perf_counter() - start
    _wait_for(page, "#face-video video[src]")
    to_video = time.perf_counter() - start
    _wait_for(page, "#downloads a")
    page.wait_for_timeout(500)  # let the plot finish its layout before the picture
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    print(f"{name}: click -> curves {to_curves:.2f} s, -> video {to_video:.2f} s")
    return {"curves": to_curves, "video": to_video}


def _check_results(page) -> None:
    matched = page.input_value("#matched-identity textarea")
    assert matched.split(" ")[0] in IDENTITIES
    table = page.locator("#identity-scores").inner_text()
    assert all(name in table for name in IDENTITIES)
    legend_entries = page.locator("#curves-plot g[class^='legend'] text")   # legend, legend2, ... (one per group)
    assert legend_entries.count() == 52                                        # an entry per ARKit channel


def test_upload_change_controls_generate(page, speech_wav, tmp_path):
    page.click("#speech-input button[aria-label='Upload file']")
    page.set_input_files("#speech-input input[type=file]", str(speech_wav))
    page.wait_for_selector("#speech-input audio, #speech-input [data-testid='waveform-controls']",
                           state="attached", timeout=30_000)
    page.click("#steps input")
    page.get_by_role("option", name="4", exact=True).click()
    page.fill("#seed input", "3")
    page.press("#seed input", "Tab")
    _generate_and_wait(page, tmp_path, "upload")
    _check_results(page)
    assert "4 steps" in page.locator("#curves-plot").inner_text()   # the figure title names the model used
    assert "seed 3" in page.locator("#curves-plot").inner_text()
    assert page.locator("#downloads a").count() == 4


def test_microphone_recording_produces_a_result(page, tmp_path):
    page.click("#speech-input button.record-button")
    page.wait_for_timeout(2500)          # Chromium's fake device plays a beeping tone
    with page.expect_response(lambda response: "/upload" in response.url, timeout=30_000):
        page.click("#speech-input button.stop-button")
    page.wait_for_timeout(500)
    _generate_and_wait(page, tmp_path, "microphone")
    _check_results(page)
    # Chromium's fake microphone beeps: the speech check says so, beside the result and in a pop-up
    assert "does not sound like speech" in page.input_value("#matched-identity textarea")
    assert any("does not sound like speech" in text for text in _toasts(page))
