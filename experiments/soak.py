"""Many mixed good and bad requests against the running app: ``python -m experiments.soak`` (300).

Serves the app in this process on the shipped checkpoints and sends ``--requests`` /generate
calls one after another through gradio_client, cycling through the inputs of the bad-input
matrix (:func:`experiments.robustness.make_cases`, the slow ones left out) with a good clip
between every two of them. Records the server's resident memory after a warm-up and then
every tenth request, every outcome against its expectation, and what is left in the
request folders and in the app's Gradio cache; writes the "soak" section of docs/RESULTS.md.
"""
from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

from experiments.loadtest import EXAMPLE, free_port, rss_mb

UI_PARAMS = {"steps": 8, "seed": 0, "num_samples": 1, "identity": "auto"}   # /generate's inputs after the audio


def run(checkpoints: str, requests: int, good: Path) -> dict:
    import os

    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from demo.housekeeping import configure_process
    configure_process()          # as app.main does, before gradio is imported
    from demo import service as demo_service
    from demo import ui
    from experiments.robustness import make_cases
    talker, problem = demo_service.load_talker(checkpoints)
    if problem:
        raise ValueError(problem)
    with tempfile.TemporaryDirectory() as inputs, tempfile.TemporaryDirectory() as workdir:
        cases = [c for c in make_cases(inputs, include_slow=False) if c.expect != "skip"
                 and not set(c.params) - set(UI_PARAMS)]
        good_case = type(cases[0])("good clip", str(good), "ok")
        plan = list(itertools.islice(itertools.cycle(
            [x for case in cases for x in (case, good_case)]), requests))
        service = demo_service.DemoService(talker, workdir=Path(workdir))
        demo = ui.build_demo(service=service, warm_up=False)
        port = free_port()
        ui.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        cache, started = Path(os.environ["GRADIO_TEMP_DIR"]), time.time()
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        try:
            client.predict(handle_file(str(good)), **_params({}), api_name="/generate")   # warm-up
            memory, outcomes, began = [(0, rss_mb())], [], time.perf_counter()
            for k, case in enumerate(plan, start=1):
                try:
                    client.predict(handle_file(case.source), **_params(case.params), api_name="/generate")
                    outcome = "ok"
                except AppError:
                    outcome = "error"
                outcomes.append((case.name, case.expect, outcome))
                if k % 10 == 0:
                    memory.append((k, rss_mb()))
            wall = time.perf_counter() - began
            time.sleep(2)                                  # the last request's folder goes after its reply
            left = sorted(p.name for p in Path(workdir).glob("req-*"))
            # Counted while the server runs: closing it deletes every cache file it created.
            cache_new = sum(1 for p in cache.rglob("*") if p.is_file() and p.stat().st_mtime >= started)
        finally:
            demo.close()
    return {"requests": len(plan), "good": sum(c is good_case for c in plan), "wall_s": wall, "memory": memory,
            "unexpected": [o for o in outcomes if o[1] != o[2]], "request_folders_left": left,
            "cache_files_added": cache_new, "kinds": len(cases)}


def _params(overrides: dict) -> dict:
    params = {**UI_PARAMS, **overrides}
    return {"steps": params["steps"], "seed": params["seed"], "num_samples": params["num_samples"],
            "identity": params["identity"]}


def main(argv=None) -> None:
    from experiments.report import machine_description, update_section
    p = argparse.ArgumentParser(description="Many mixed good and bad /generate requests against the app.")
    p.add_argument("--checkpoints", default="checkpoints")
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--audio", default=str(EXAMPLE), help="the good clip sent between the bad inputs")
    p.add_argument("--results", default="docs/RESULTS.md")
    a = p.parse_args(argv)
    r = run(a.checkpoints, a.requests, Path(a.audio))
    (_, first), *_, (_, last) = r["memory"]
    peak = max(m for _, m in r["memory"])
    third = next(m for k, m in r["memory"] if k >= r["requests"] // 3)
    trace = ", ".join(f"{k}: {m:.0f}" for k, m in r["memory"])
    unexpected = "; ".join(f"{n} (expected {e}, got {o})" for n, e, o in r["unexpected"]) or "none"
    md = (f"## Soak: mixed good and bad requests\n\n`python -m experiments.soak` on {machine_description()}: "
          f"{r['requests']} /generate requests one after another through gradio_client ({r['good']} good, the "
          f"rest cycling through {r['kinds']} bad or odd inputs of the robustness matrix), 8-step model, "
          f"{r['wall_s']:.0f} s in all. Server memory (MB, after request n): {trace}; "
          f"{last - first:+.0f} MB from the first to the last reading, {last - third:+.0f} MB over the last two "
          f"thirds (the first third fills per-shape buffers and caches), peak {peak:.0f} MB. "
          f"Outcomes not as expected: {unexpected}. Request folders left behind: {len(r['request_folders_left'])}. "
          f"Files added to the app's Gradio cache: {r['cache_files_added']} (uploads and the copies of outputs "
          "offered for download; the cache sweep deletes them after an hour).")
    update_section("soak", md, a.results)
    print(md)


if __name__ == "__main__":
    main()
