"""Concurrent users against the real app: ``python -m experiments.loadtest [--checkpoints checkpoints]``.

Serves the app in this process on the shipped checkpoints, times single requests to the first
streamed output (the curves) and to the video ("app-latency"), then fires N simultaneous
``/generate`` requests through gradio_client and writes the wall time, per-request latency,
server memory before/after and the request folders left behind ("concurrency"), all to
docs/RESULTS.md.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile as sf

EXAMPLE = Path(__file__).resolve().parents[1] / "demo" / "examples" / "harvard-f.wav"


def rss_mb() -> float:
    """Resident memory of this process (which runs the server), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise OSError("no VmRSS in /proc/self/status")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def visitor(url: str, k: int = 0):
    """A gradio client that the app takes for visitor ``k``: each visitor has its own share of the
    model queue (demo.fairness), told apart by the address a proxy on this machine forwards."""
    from gradio_client import Client
    return Client(url, verbose=False, download_files=False,
                  headers={"x-forwarded-for": f"10.0.{k // 250}.{k % 250 + 1}"})


def time_to_curves(client, wav: Path, repeats: int) -> list[tuple[float, float]]:
    """(seconds to the first streamed output - matched identity, scores and curves -, seconds to the
    last - the video) for sequential ``/generate`` calls, measured from the submit."""
    from gradio_client import handle_file
    from demo import service as demo_service
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        job = client.submit(handle_file(str(wav)), 8, 0, 1, demo_service.AUTO, api_name="/generate")
        first = None
        for _ in job:                                # outputs arrive as the app yields them
            first = first or time.perf_counter() - t0
        job.result()
        times.append((first, time.perf_counter() - t0))
    return times


def run(checkpoints: str, wav: Path, requests: int, latency_repeats: int = 5) -> dict:
    from gradio_client import handle_file
    from demo.housekeeping import configure_process
    configure_process()          # as app.main does, before gradio is imported
    from demo import service as demo_service
    from demo import ui
    talker, problem = demo_service.load_talker(checkpoints)
    if problem:
        raise ValueError(problem)
    with tempfile.TemporaryDirectory() as workdir:
        service = demo_service.DemoService(talker, workdir=Path(workdir))
        warming = service.warm_up()                  # as app.py starts: in the background
        demo = ui.build_demo(service=service, warm_up=False)
        port = free_port()
        ui.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        url = f"http://127.0.0.1:{port}/"
        try:
            def one(k):
                client = visitor(url, k)             # N users, not one user with N requests
                t0 = time.perf_counter()
                client.predict(handle_file(str(wav)), 8, 0, 1, demo_service.AUTO, api_name="/generate")
                return time.perf_counter() - t0
            warming.join(timeout=300)
            first = time_to_curves(visitor(url), wav, 1)[0]   # the first user
            one(0)                                  # warm-up: models, encoder and renderer loaded
            latency = time_to_curves(visitor(url), wav, latency_repeats)
            before = rss_mb()
            t0 = time.perf_counter()
            with ThreadPoolExecutor(requests) as pool:
                latencies = list(pool.map(one, range(requests)))
            wall = time.perf_counter() - t0
            after = rss_mb()
            time.sleep(2)
            left = len(list(Path(workdir).glob("req-*")))
        finally:
            demo.close()
    return {"requests": requests, "wall_s": wall, "latency_median_s": statistics.median(latencies),
            "latency_max_s": max(latencies), "rss_before_mb": before, "rss_after_mb": after,
            "request_folders_left": left, "audio_s": sf.info(str(wav)).duration,
            "curves_s": [c for c, _ in latency], "video_s": [v for _, v in latency],
            "first_curves_s": first[0], "first_video_s": first[1]}


def main(argv=None):
    from experiments.report import machine_description, update_section
    p = argparse.ArgumentParser(description="Simultaneous /generate requests against the app.")
    p.add_argument("--checkpoints", default="checkpoints")
    p.add_argument("--requests", type=int, default=8)
    p.add_argument("--audio", default=str(EXAMPLE))
    p.add_argument("--results", default="docs/RESULTS.md")
    a = p.parse_args(argv)
    r = run(a.checkpoints, Path(a.audio), a.requests)
    md = (f"## Concurrent users\n\n`python -m experiments.loadtest` on {machine_description()}: {r['requests']} simultaneous "
          f"`/generate` requests (gradio_client, 8-step model, {r['audio_s']:.1f} s clip, 512x512 video), queue limit 2. "
          f"All completed in {r['wall_s']:.1f} s (latency median {r['latency_median_s']:.1f} s, max "
          f"{r['latency_max_s']:.1f} s); server memory {r['rss_before_mb']:.0f} MB before, {r['rss_after_mb']:.0f} MB "
          f"after; request folders left behind: {r['request_folders_left']}.")
    latency = (f"## Time to curves in the app\n\n`python -m experiments.loadtest`, one request at a time after a warm-up "
          f"(8-step model, {r['audio_s']:.1f} s clip, {len(r['curves_s'])} requests through gradio_client, timed "
          f"from the submit): matched identity, scores and curves after {statistics.median(r['curves_s']):.2f} s "
          f"(median; max {max(r['curves_s']):.2f} s), the 512x512 video and downloads after "
          f"{statistics.median(r['video_s']):.2f} s (median). The first request after start-up, once the "
          f"background warm-up has finished: curves after {r['first_curves_s']:.2f} s, video after "
          f"{r['first_video_s']:.2f} s.")
    for section, text in (("concurrency", md), ("app-latency", latency)):
        update_section(section, text, a.results)
        print(text)


if __name__ == "__main__":
    main()
