"""The head turns in the browser, on the frame clock of the curves: the take viewer
(``demo/static/viewer.js``) and the Live tab's head (``live_viewer.js``) mounted on a bare page
served from a temp folder (no Gradio, so it takes seconds), fed the payloads ``demo.viewer`` and
``demo.live`` make. Checked three ways: the page's state gives the frame's angles, the head
bone's rotation equals :func:`core.head_pose.quaternions` of them (three.js Euler "YXZ" is the
project's convention), and the picture changes where only the head moved (a positive yaw moves
the face to the viewer's right). Skipped without /usr/bin/chromium or the playwright package.
"""
from __future__ import annotations

import functools
import io
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from core.arkit import INDEX, NUM_BLENDSHAPES
from core.face.mesh import load_face_mesh
from core.head_pose import quaternions
from experiments.browser import CHROMIUM, CHROMIUM_ARGS, chromium_available, local_only

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (uses Debian chromium)")
if not chromium_available():
    pytest.skip("Debian chromium is not installed (apt-get install chromium)", allow_module_level=True)

STATIC = Path(__file__).resolve().parents[1] / "demo" / "static"
FRAMES = 60
PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>{css} .dt-viewer {{ width: 320px; }}</style></head>
<body><div id="take" class="dt-viewer"></div><div id="live" class="dt-viewer"></div>
<script type="module">
import * as take from "./static/viewer.js";
import * as live from "./static/live_viewer.js";
function host(module, id) {{  // what gr.HTML's js_on_load gives mount(): props and watch
  const props = {{ value: null }};
  let changed = () => {{}};
  module.mount(document.getElementById(id), props, (name, callback) => {{ changed = callback; }});
  return (value) => {{ props.value = value; changed(); }};
}}
window.show = {{ take: host(take, "take"), live: host(live, "live") }};
</script></body></html>"""


def motion() -> tuple[np.ndarray, np.ndarray]:
    """Curves whose jawOpen counts the frames, and a head still for a second, then turning."""
    curves = np.zeros((FRAMES, NUM_BLENDSHAPES), np.float32)
    curves[:, INDEX["jawOpen"]] = np.arange(FRAMES) / FRAMES
    head = np.zeros((FRAMES, 3), np.float32)
    t = np.arange(30, FRAMES) / 30
    head[30:] = np.stack([0.5 * np.ones_like(t), 0.15 * np.sin(6 * t), -0.1 * t], axis=1)
    return curves, head


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    from demo.viewer import CSS, pack_mesh
    folder = tmp_path_factory.mktemp("page")
    (folder / "static").symlink_to(STATIC)
    (folder / "mesh.bin").write_bytes(pack_mesh(load_face_mesh()))
    (folder / "index.html").write_text(PAGE.format(css=CSS))

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def page(page_url):
    """One page for both viewers (a browser starts slowly on software WebGL)."""
    outside: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 800, "height": 900})
        local_only(context, outside)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(page_url)
        page.wait_for_function("window.show !== undefined", timeout=30_000)
        yield page
        browser.close()
    assert not errors and not outside, (errors, outside)


def _viewer(label: str) -> str:
    return f"window.diffusionTalkerViewers.find((v) => v.state().label === {label!r})"


def _drawn(page) -> None:
    """Two animation frames: the head has been drawn as it is now."""
    page.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


def _centre_x(png: bytes) -> float:
    """The column of the face's centre of mass: pixels brighter than the dark background."""
    from PIL import Image
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.float32)
    face = np.clip(picture - 70, 0, None)
    return float((face.sum(axis=0) * np.arange(picture.shape[1])).sum() / face.sum())


def test_the_take_viewer_turns_the_head_with_its_frames(page):
    from demo.viewer import payload
    curves, head = motion()
    page.evaluate("(value) => window.show.take(value)", payload([("turning", curves, head)], 30, "mesh.bin", None))
    viewer = _viewer("turning")
    page.wait_for_function(f"{viewer}?.state().ready && {viewer}.state().frames === {FRAMES}", timeout=30_000)
    box = page.locator("#take .dt-canvas")
    shots, centres = {}, {}
    for frame in (10, 45):
        page.evaluate(f"{viewer}.pause(); {viewer}.seek({(frame + 0.5) / 30})")
        _drawn(page)
        state, drawn = page.evaluate(f"[{viewer}.state(), {viewer}.diagnostics().headQuaternion]")
        assert state["frame"] == frame
        assert state["weights"][INDEX["jawOpen"]] == pytest.approx(curves[frame, INDEX["jawOpen"]], abs=1e-4)
        np.testing.assert_allclose(state["head"], head[frame], atol=1e-6)      # the same frame as the curves
        np.testing.assert_allclose(drawn, quaternions(head[frame]), atol=1e-5)  # the bone turned by it
        shots[frame] = box.screenshot()
        centres[frame] = _centre_x(shots[frame])
    assert shots[10] != shots[45]
    assert centres[45] > centres[10] + 5           # yaw 0.5 rad: the face moves to the viewer's right
    # the mouth's inside, the packed head's last triangles, is drawn a little deeper than the skin
    # (docs/DECISIONS.md "The dark specks beside the nose")
    skin, inside = page.evaluate(f"{viewer}.diagnostics().groups")
    triangles = len(load_face_mesh().faces)
    assert skin == {"start": 0, "count": skin["count"], "offset": False} and not inside["count"] % 3
    assert inside["offset"] is True and inside["start"] == skin["count"] and inside["count"] > 0
    assert skin["count"] + inside["count"] == 3 * triangles

    page.evaluate("(value) => window.show.take(value)", payload([("still", curves)], 30, "mesh.bin", None))
    page.wait_for_function(f"{_viewer('still')}?.state().ready", timeout=30_000)
    page.evaluate(f"{_viewer('still')}.pause(); {_viewer('still')}.seek({45.5 / 30})")
    _drawn(page)
    assert page.evaluate(f"{_viewer('still')}.state().head") == [0, 0, 0]      # a take without a head: still
    np.testing.assert_allclose(page.evaluate(f"{_viewer('still')}.diagnostics().headQuaternion"), [0, 0, 0, 1])


def test_the_live_head_turns_with_the_streamed_frames(page):
    from demo.live import live_value
    curves, head = motion()
    page.evaluate("(value) => window.show.live(value)", live_value(curves, 0, "mesh.bin", reset=True, head=head))
    live = _viewer("Live")
    # the playhead runs at real time behind the newest frame and stops on it: the last frame shows
    page.wait_for_function(f"{live}.state().ready && {live}.state().frame === {FRAMES - 1}", timeout=30_000)
    _drawn(page)
    state, drawn = page.evaluate(f"[{live}.state(), {live}.diagnostics().headQuaternion]")
    assert state["weights"][INDEX["jawOpen"]] == pytest.approx(curves[-1, INDEX["jawOpen"]], abs=1e-4)
    np.testing.assert_allclose(state["head"], head[-1], atol=1e-6)
    np.testing.assert_allclose(drawn, quaternions(head[-1]), atol=1e-5)
