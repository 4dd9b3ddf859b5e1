"""Microphone to face in Chromium: ``python -m experiments.live_browser [--seconds 30]``.

Serves the app on the shipped checkpoints in this process and opens its Live tab in headless
Debian Chromium whose fake microphone plays a speech recording
(``--use-file-for-fake-audio-capture``). A script in the page stamps, with the page clock, the
moment Gradio starts its ``MediaRecorder`` (audio is captured from then on, in 0.1 s slices);
the viewer logs every live frame it draws with its stream frame index. Frame ``k`` holds the
audio heard ``k / 30`` s after the recording began, so

    mic-to-face latency of frame k = (page time frame k was drawn) - (recorder start + k / 30 s)

which counts everything between the microphone and the drawn head: the page's 0.1 s audio slices
(Gradio ``stream_every``), the upload, the stream's look-ahead and encoder hop, the model, the
download and the viewer's frame queue. The time from the click on Record to the recorder's start
(the page opening the microphone) is reported beside it. Writes docs/RESULTS.md ("live-browser").
"""
from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from core.inference.streaming import DEFAULT_LOOKAHEAD
from experiments.browser import CHROMIUM, CHROMIUM_ARGS, local_only, served_app
from experiments.loadtest import EXAMPLE

SECTION = "live-browser"
LIVE_VIEWER = "(window.diffusionTalkerViewers || []).find(v => v.diagnostics().live)"
RECORDER_STAMP = """if (window.MediaRecorder) {
  const start = MediaRecorder.prototype.start;
  MediaRecorder.prototype.start = function () { window.__recorderStartedAt = performance.now(); return start.apply(this, arguments); };
}"""


def fake_microphone_file(source: Path, folder: Path) -> Path:
    """``source`` as 16-bit PCM wav, the format Chromium's fake capture device reads."""
    import soundfile as sf
    from core.audio.decode import load_audio
    from core.rates import SAMPLE_RATE
    path = folder / "microphone.wav"
    sf.write(path, load_audio(source), SAMPLE_RATE, subtype="PCM_16")
    return path


def start_recording(page, attempts: int = 3) -> None:
    """Click Record until live frames arrive (headless Chromium's fake device now and then records
    nothing after Record; then stop and record again)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    page.wait_for_function("document.querySelector('#live-microphone select option')", timeout=30_000)
    page.evaluate("""document.addEventListener('click', (e) => {
        if (e.target.closest('#live-microphone button.record-button')) window.__recordAt = performance.now(); }, true)""")
    for _ in range(attempts):
        page.click("#live-microphone button.record-button")
        try:
            page.wait_for_function(f"{LIVE_VIEWER} && {LIVE_VIEWER}.diagnostics().live.received >= 6", timeout=30_000)
            return
        except PlaywrightTimeout:
            page.click("#live-microphone button.stop-button")
            page.wait_for_timeout(1000)
    raise RuntimeError(f"no live frames reached the viewer in {attempts} recordings")


def run(checkpoints: str, source: Path, seconds: float) -> dict:
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory() as workdir, served_app(checkpoints, Path(workdir)) as (url, service):
        wav = fake_microphone_file(source, Path(workdir))
        outside: list[str] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS + [f"--use-file-for-fake-audio-capture={wav}"])
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_init_script(RECORDER_STAMP)
            local_only(context, outside)
            page = context.new_page()
            page.goto(url)
            page.wait_for_function("window.diffusionTalkerViewers?.[0]?.state().ready", timeout=60_000)
            page.get_by_role("tab", name="Live").click()
            start_recording(page)
            page.wait_for_timeout(int(seconds * 1000))
            state = page.evaluate(f"{LIVE_VIEWER}.diagnostics().live")
            record_at = page.evaluate("window.__recordAt")
            recorder_at = page.evaluate("window.__recorderStartedAt")
            ended_at = page.evaluate("performance.now()")
            readout = page.inner_text("#live-latency")
            page.click("#live-microphone button.stop-button")
            browser.close()
    shown = np.asarray(state["shown"], dtype=np.float64)       # [n, 2]: frame index, page ms
    fps = 30.0
    latency = shown[:, 1] - (recorder_at + shown[:, 0] * 1000.0 / fps)
    server = re.search(r"p50 (\d+) ms, p95 (\d+) ms", readout)
    return {"seconds": seconds, "frames_drawn": len(shown), "received": state["received"],
            "dropped": state["dropped"], "latency_ms": latency.tolist(), "record_to_recorder_ms": recorder_at - record_at,
            "audio_kept": state["received"] / max(1.0, (ended_at - recorder_at) / 1000 * fps),
            "server_p50_ms": int(server.group(1)) if server else None,
            "server_p95_ms": int(server.group(2)) if server else None,
            "lookahead_s": DEFAULT_LOOKAHEAD, "outside": outside, "load": os.getloadavg()[0],
            "source": source.name}


def report(r: dict) -> str:
    from experiments.report import machine_description
    lat = np.asarray(r["latency_ms"])
    later = lat[len(lat) // 2:]
    server = (f"server p50 {r['server_p50_ms']} ms, p95 {r['server_p95_ms']} ms (the Live tab's readout: chunk "
              "arrival -> frames out)" if r["server_p50_ms"] is not None else "server readout not found")
    return ("## Live: microphone to face in Chromium\n\n"
            f"`python -m experiments.live_browser --seconds {r['seconds']:.0f}` on {machine_description()}, headless "
            f"Debian Chromium, fake microphone playing {r['source']} in a loop, offline ({len(r['outside'])} "
            f"requests beyond the app attempted), shipped live setting (look-ahead {r['lookahead_s']} s, 8 steps), "
            f"load average {r['load']:.1f} at the end.\n\n"
            "| what | measured |\n|---|---|\n"
            f"| microphone -> drawn face, every live frame | p50 {np.percentile(lat, 50):.0f} ms, "
            f"p95 {np.percentile(lat, 95):.0f} ms, min {lat.min():.0f} ms ({len(lat)} frames; target p50 300 ms) |\n"
            f"| the same, second half of the run | p50 {np.percentile(later, 50):.0f} ms, "
            f"p95 {np.percentile(later, 95):.0f} ms (no drift if close to the row above) |\n"
            f"| click on Record -> the page's recorder starts | {r['record_to_recorder_ms']:.0f} ms (once per session) |\n"
            f"| frames | {r['received']} received, {r['frames_drawn']} drawn, {r['dropped']} skipped by the viewer |\n"
            f"| of which the server | {server} |\n"
            f"| audio the server decoded | {r['audio_kept']:.0%} of the time recorded (Gradio drops the chunks that "
            "arrive while the previous one is still being decoded) |\n\n"
            "Frames are numbered by the audio the server received, so where it dropped audio the formula charges "
            "the dropped time to the later frames: then the figures above are upper bounds, and the growth from "
            "the first half to the second is the audio lost, not a queue. "
            f"The look-ahead alone is {r['lookahead_s'] * 1000:.0f} ms of the latency: a frame is decoded only once "
            "that much later audio has been heard (lips close before the burst of a p/b/m), and the page sends "
            "audio in 0.1 s chunks. So p50 <= 300 ms needs a look-ahead of at most ~0.1 s, which the "
            "streaming quality table (section \"live\") prices.")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Microphone-to-face latency of the Live tab in headless Chromium.")
    p.add_argument("--checkpoints", default="checkpoints")
    p.add_argument("--audio", default=str(EXAMPLE), help="what the fake microphone plays (looped)")
    p.add_argument("--seconds", type=float, default=30.0, help="how long to stream after the first frames")
    p.add_argument("--results", default="docs/RESULTS.md")
    a = p.parse_args(argv)
    text = report(run(a.checkpoints, Path(a.audio), a.seconds))
    from experiments.report import update_section
    update_section(SECTION, text, a.results)
    print(text)


if __name__ == "__main__":
    main()
