"""Users' own heads through the page's upload: hostile files refused in bounded time and memory with
a plain message while the app serves others, each visitor shown their own head, packed heads
bounded on disk, and a video on a heavy head refused before it starts.

The app runs in this process on tiny checkpoints (its memory is this process's); uploads go through
the same event the page's avatar field triggers (:func:`tests.helpers.page_event`).
"""
from __future__ import annotations

import re
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from demo import service as demo_service
from demo import ui, viewer
from experiments.hostile_avatars import _write, base_avatar, make_avatar_cases
from tests.helpers import page_event, serve, synthesise_speech, tiny_service

MAX_SECONDS = 10.0          # per upload, however hostile
MAX_GROWTH_MB = 500         # the server's peak memory over the whole run


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(url, demo, service) on tiny checkpoints."""
    service = tiny_service(tmp_path_factory, video_size=64)
    demo = ui.build_demo(service=service, warm_up=False)
    yield serve(demo), demo, service
    demo.close()


def new_client(app) -> Client:
    """A visitor: a client with its own session."""
    return Client(app[0], verbose=False, download_files=False, httpx_kwargs={"timeout": 60})


class Refused(Exception):
    """The page refused an upload: it said why in a warning, and the head shown stayed."""


def upload(app, client, path) -> tuple[str, dict]:
    """The avatar field's change event: (status line, the head's viewer value); Refused with the
    page's message for a file that cannot be used."""
    warnings = []
    outputs = page_event(client, app[1], "avatar-upload", "change", handle_file(str(path)), timeout=60,
                         warnings=warnings)
    if warnings:
        raise Refused(" ".join(warnings))
    return outputs


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_hostile_avatars_are_refused_quickly_with_plain_messages_while_others_are_served(app, tmp_path):
    cases = make_avatar_cases(tmp_path / "cases")
    good = _write(tmp_path / "good.glb", *base_avatar(6))
    start_peak, slow, wrong = peak_rss_mb(), [], []
    hostile_clients = [new_client(app), new_client(app)]     # two hostile visitors at a time

    def hostile(k):
        client = hostile_clients[k]
        for case in cases[k::2]:
            began = time.perf_counter()
            try:
                status, _ = upload(app, client, case.path)
                outcome = "ok"
            except (AppError, Refused) as err:
                outcome, status = "refused", str(err)
            seconds = time.perf_counter() - began
            if seconds > MAX_SECONDS:
                slow.append((case.name, round(seconds, 1)))
            expected = outcome == "ok" if case.expect == "ok" else bool(outcome == "refused"
                                                                        and re.search(case.expect, status))
            plain = "Internal error" not in status and "Traceback" not in status and str(tmp_path) not in status
            if not (expected and plain):
                wrong.append((case.name, outcome, status[:200]))

    stop, served, visitor_client = threading.Event(), [], new_client(app)

    def visitor():          # another visitor keeps uploading a good head meanwhile
        while not stop.is_set():
            began = time.perf_counter()
            status, head = upload(app, visitor_client, good)
            served.append(time.perf_counter() - began)
            assert "6 vertices" in status and head["mesh"]

    with ThreadPoolExecutor(3) as pool:
        other = pool.submit(visitor)
        list(pool.map(hostile, range(2)))
        stop.set()
        other.result()
    assert not wrong, wrong
    assert not slow, slow
    assert served and max(served) < MAX_SECONDS, served
    assert peak_rss_mb() - start_peak < MAX_GROWTH_MB


def test_every_visitor_is_shown_their_own_head(app, tmp_path):
    """Heads were found by id(mesh), which Python reuses for new objects once old ones are freed."""
    client = new_client(app)
    for k in range(40):
        vertices = 4 + 2 * k
        _, head = upload(app, client, _write(tmp_path / f"head{k}.glb", *base_avatar(vertices)))
        packed = httpx.get(app[0] + head["mesh"], timeout=30)
        assert packed.status_code == 200
        assert viewer.read_mesh_header(packed.content)["vertices"] == vertices, k


def test_packed_heads_on_disk_are_bounded_and_the_default_head_stays(app, tmp_path):
    service = app[2]
    client = new_client(app)
    default = Path(service.viewer_head()["mesh"].split("file=", 1)[1])
    for k in range(service.viewer_assets.keep + 6):
        upload(app, client, _write(tmp_path / f"h{k}.glb", *base_avatar(200 + 2 * k)))
    files = sorted(service.viewer_assets.folder.glob("mesh-*.bin"))
    assert len(files) <= service.viewer_assets.keep + 1 and default in files
    _, head = upload(app, client, _write(tmp_path / "h0-again.glb", *base_avatar(200)))   # went, packed again
    assert httpx.get(app[0] + head["mesh"], timeout=30).status_code == 200


def test_a_video_too_long_for_a_heavy_head_is_refused_before_rendering(app, tmp_path, monkeypatch):
    """Render time grows with frames x vertices: the bound counts the head's vertices."""
    speech = tmp_path / "speech.wav"
    synthesise_speech(speech, "Hello there, how are you?")
    client = new_client(app)
    heavy = 9_000
    upload(app, client, _write(tmp_path / "heavy.glb", *base_avatar(heavy)))
    client.predict(handle_file(str(speech)), 4, 0, 1, "auto", api_name="/generate_live")
    seconds = float(np.ceil(len(app[2].load(str(speech))) / 16000))
    # Room for the default head's video of this clip, not for this avatar's.
    monkeypatch.setattr(demo_service, "MAX_RENDER_VERTEX_SECONDS", 5_000 * seconds)
    began = time.perf_counter()
    with pytest.raises(AppError, match=f"head of {heavy:,} vertices is more than one request may render"):
        page_event(client, app[1], "render-video", "click", timeout=60)
    assert time.perf_counter() - began < MAX_SECONDS
