"""Headless Debian Chromium for the browser tests and measurements: its flags, and an offline page.

Playwright drives ``/usr/bin/chromium`` (never ``playwright install``). A context made
:func:`local_only` can reach the local app and nothing else; what it tried is recorded.
"""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 "--autoplay-policy=no-user-gesture-required"]   # play() from scripts, not only after a click
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


def local_only(context, outside: list[str]) -> None:
    """Block every request of a Playwright browser context that leaves this machine; the URLs
    tried are appended to ``outside``."""
    def route(request_route):
        if urlparse(request_route.request.url).hostname in LOCAL_HOSTS:
            request_route.continue_()
        else:
            outside.append(request_route.request.url)
            request_route.abort()
    context.route("**/*", route)


@contextmanager
def served_app(checkpoints: str, workdir: Path):
    """The app on ``checkpoints`` served from this process on a free local port (warmed up);
    yields (url, service)."""
    from demo.housekeeping import configure_process
    configure_process()          # as app.main does, before gradio is imported
    from demo import service as demo_service
    from demo import ui
    from experiments.loadtest import free_port
    talker, problem = demo_service.load_talker(checkpoints)
    if problem:
        raise ValueError(problem)
    service = demo_service.DemoService(talker, workdir=Path(workdir) / "service")
    service.talker.warm_up(service.default_steps)
    demo = ui.build_demo(service=service, warm_up=False)
    port = free_port()
    ui.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", service
    finally:
        demo.close()
