"""The live 3D head in headless Chromium: ``python -m experiments.viewer_latency [--checkpoints checkpoints]``.

Serves the app in this process on the shipped checkpoints and opens it in Debian Chromium
(offline: every request beyond the app is blocked and counted). Measures, and writes to
docs/RESULTS.md ("viewer"):

* the time from the click on Generate (a real mouse click, stamped by a capture listener in
  the page) to the viewer's first drawn frame of the new curves (``diagnostics().shownAt``) and to
  its first MOVING frame (``diagnostics().movedAt``: the first draw of another frame, i.e. the
  head following the sound), with the frame it moved to (a head frozen while the audio plays
  jumps to a late frame), for an 8 s clip with the 8-step model, after one warm-up click;
* the frame rate the viewer holds while playing (drawn frames per second of the 30 fps curves),
  and the page's requestAnimationFrame rate for reference;
* the server's CPU seconds per request (this process + its finished children, i.e. ffmpeg) for
  the page's Generate (``/generate_live``: curves, 3D payload, downloads; the video deferred) and
  for ``/generate`` (the same plus the 512x512 mp4, which is what the page did before).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile

from pathlib import Path

import numpy as np
import soundfile as sf

from experiments.browser import CHROMIUM, CHROMIUM_ARGS, local_only, served_app
from experiments.loadtest import EXAMPLE

CLIP_SECONDS = 8.0
VIEWERS = "window.diffusionTalkerViewers"


def eight_second_clip(source: Path, folder: Path) -> Path:
    """``source`` cut or padded with silence to exactly :data:`CLIP_SECONDS`, as a 16 kHz wav."""
    from core.audio.decode import load_audio
    from core.rates import SAMPLE_RATE
    wave = load_audio(source)
    n = int(CLIP_SECONDS * SAMPLE_RATE)
    wave = np.pad(wave[:n], (0, max(0, n - len(wave))))
    path = folder / f"{source.stem}-8s.wav"
    sf.write(path, wave, SAMPLE_RATE)
    return path


def cpu_seconds() -> float:
    """User + system CPU of this process and of its children that have finished."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def click_to_first_frame(page, repeats: int) -> list[dict]:
    """Per click on Generate: seconds from the click to the first drawn frame of its curves and to
    the first moving frame (page clock), and the frame the head first moved to."""
    page.evaluate("""document.addEventListener('click', (e) => {
        if (e.target.closest('#generate')) window.__generateClickedAt = performance.now(); }, true)""")
    times = []
    for _ in range(repeats + 1):                       # the first is a warm-up
        page.click("#generate")
        page.wait_for_function(f"window.__generateClickedAt && {VIEWERS}[0].diagnostics().movedAt > window.__generateClickedAt",
                               timeout=120_000)
        times.append(page.evaluate(f"""(() => {{ const d = {VIEWERS}[0].diagnostics(), t0 = window.__generateClickedAt;
            return {{shown: (d.shownAt - t0) / 1000, moved: (d.movedAt - t0) / 1000, frame: d.movedFrame}}; }})()"""))
        page.wait_for_selector("#download-csv", timeout=120_000)   # the request has finished
        page.wait_for_timeout(300)
    return times[1:]


def playback_rate(page, seconds: float = 5.0) -> dict:
    """Drawn frames per second while playing, against the frames the clock went through, from
    2 s into the clip (after the viewer has settled its resolution) for ``seconds``."""
    page.evaluate(f"{VIEWERS}[0].pause(); {VIEWERS}[0].seek(0)")
    page.evaluate(f"{VIEWERS}[0].play()")
    page.wait_for_timeout(2000)
    read = f"({{...{VIEWERS}[0].state(), ...{VIEWERS}[0].diagnostics()}})"
    a = page.evaluate(read)
    page.wait_for_timeout(int(seconds * 1000))
    b = page.evaluate(read)
    raf = page.evaluate("""new Promise((done) => { let n = 0; const t0 = performance.now();
        const step = () => { n++; if (performance.now() - t0 < 1000) requestAnimationFrame(step);
                             else done(n / ((performance.now() - t0) / 1000)); };
        requestAnimationFrame(step); })""")
    elapsed = b["time"] - a["time"]
    return {"drawn_fps": (b["drawn"] - a["drawn"]) / elapsed, "frames_passed": b["frame"] - a["frame"],
            "frames_drawn": b["drawn"] - a["drawn"], "raf_fps": raf, "playing": b["playing"], "scale": b["scale"]}


def server_cpu(url: str, wav: Path, repeats: int) -> dict[str, list[float]]:
    from gradio_client import Client, handle_file
    client = Client(url, verbose=False, download_files=False)
    result = {}
    for api in ("/generate_live", "/generate"):
        client.predict(handle_file(str(wav)), 8, 0, 1, "auto", api_name=api)   # warm-up (renderer, caches)
        spent = []
        for _ in range(repeats):
            before = cpu_seconds()
            client.predict(handle_file(str(wav)), 8, 0, 1, "auto", api_name=api)
            spent.append(cpu_seconds() - before)
        result[api] = spent
    return result


def run(checkpoints: str, source: Path, repeats: int = 5, playback: float = 5.0,
        screenshot: Path | None = None, app_screenshot: Path | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as workdir, served_app(checkpoints, Path(workdir)) as (url, _):
        wav = eight_second_clip(source, Path(workdir))
        outside: list[str] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            local_only(context, outside)
            page = context.new_page()
            page.goto(url)
            page.wait_for_function(f"{VIEWERS}?.[0]?.state().ready", timeout=60_000)
            page.click("#speech-input button[aria-label='Upload file']")
            page.set_input_files("#speech-input input[type=file]", str(wav))
            page.wait_for_selector("#speech-input [data-testid='waveform-controls']", state="attached",
                                   timeout=30_000)
            latency = click_to_first_frame(page, repeats)
            rate = playback_rate(page, playback)
            if screenshot is not None:     # the head mid-sentence, for the README
                page.evaluate(f"{VIEWERS}[0].pause(); {VIEWERS}[0].seek(2.2)")
                page.wait_for_timeout(300)
                page.locator("#face-viewer").screenshot(path=str(screenshot))
            if app_screenshot is not None:     # the page after Generate, the curves opened, for the README
                page.evaluate(f"{VIEWERS}[0].pause(); {VIEWERS}[0].seek(2.2)")
                page.locator("#curves-box").get_by_text("Blendshape curves").first.click()
                page.wait_for_selector("#curves-plot .js-plotly-plot", timeout=60_000)
                page.wait_for_timeout(1000)
                page.screenshot(path=str(app_screenshot), clip={"x": 0, "y": 0, "width": 1400, "height": 1700},
                                full_page=True)
            browser.close()
        cpu = server_cpu(url, wav, repeats)
    return {"latency_s": latency, "rate": rate, "cpu": cpu, "outside": outside, "load": os.getloadavg()[0],
            "clip": f"{source.name} cut/padded to {CLIP_SECONDS:.0f} s"}


def report(r: dict) -> str:
    from experiments.report import machine_description
    clicks, rate, cpu = r["latency_s"], r["rate"], r["cpu"]
    shown, moved = [c["shown"] for c in clicks], [c["moved"] for c in clicks]
    frames = [c["frame"] for c in clicks]
    deferred, immediate = statistics.median(cpu["/generate_live"]), statistics.median(cpu["/generate"])
    return (f"## The live 3D head\n\n`python -m experiments.viewer_latency` on {machine_description()}, headless "
            f"Debian Chromium (software WebGL), offline ({len(r['outside'])} requests beyond the app attempted); "
            f"{r['clip']}, 8-step model, load average {r['load']:.1f} at the end.\n\n"
            f"| what | measured |\n|---|---|\n"
            f"| click on Generate -> first MOVING frame of the 3D head (in sync with the sound) | median "
            f"{statistics.median(moved):.2f} s, max {max(moved):.2f} s ({len(moved)} clicks after a warm-up; target 1.0 s); "
            f"it moved to frame {min(frames)}-{max(frames)} (a head frozen while the audio plays jumps to a late one) |\n"
            f"| click on Generate -> first drawn frame of the take | median {statistics.median(shown):.2f} s, "
            f"max {max(shown):.2f} s |\n"
            f"| frames drawn while playing the 30 fps curves | {rate['drawn_fps']:.1f} per second "
            f"({rate['frames_drawn']} drawn as the clock passed {rate['frames_passed']} frames; "
            f"page requestAnimationFrame {rate['raf_fps']:.0f} per second; canvas resolution settled at "
            f"{rate['scale']:.2f} of the device pixels) |\n"
            f"| server CPU per request, video deferred (`/generate_live`: curves, 3D payload, downloads) | "
            f"{deferred:.2f} s (median of {len(cpu['/generate_live'])}) |\n"
            f"| server CPU per request, video rendered at once (`/generate`: the same + 512x512 mp4) | "
            f"{immediate:.2f} s (median of {len(cpu['/generate'])}) |\n\n"
            "CPU = user + system seconds of the server process and its finished children (ffmpeg), "
            "gradio_client in the same process included in both rows. The curves plot is drawn when its box "
            "is opened: plotly held the page's only thread for 1.3-1.5 s, and the head stood on frame 0 "
            "while the first syllables played. A click on Generate pauses the shown take (its drawing "
            "competed with the server for the two cores), the take's 16 kHz track is sent to the viewer as "
            "soon as it is decoded and loads while the model runs, and the sound starts before the take's "
            "first draw (docs/DECISIONS.md \"The first syllable\").")


def main(argv=None):
    from experiments.report import update_section
    p = argparse.ArgumentParser(description="Click-to-animation latency, frame rate and server CPU of the 3D viewer.")
    p.add_argument("--checkpoints", default="checkpoints")
    p.add_argument("--audio", default=str(EXAMPLE))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--playback", type=float, default=5.0, help="seconds of playback timed (the clip is 8 s)")
    p.add_argument("--results", default="docs/RESULTS.md")
    p.add_argument("--screenshot", type=Path, help="also save a picture of the 3D head here (e.g. docs/viewer.png)")
    p.add_argument("--app-screenshot", type=Path, help="and one of the page after Generate (e.g. docs/app.png)")
    a = p.parse_args(argv)
    result = run(a.checkpoints, Path(a.audio), a.repeats, a.playback, a.screenshot, a.app_screenshot)
    text = report(result)
    update_section("viewer", text, a.results)
    print(text)


if __name__ == "__main__":
    main()
