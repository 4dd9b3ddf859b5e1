"""DiffusionTalker demo: ``python app.py`` serves it on http://127.0.0.1:7860.

Thin on purpose: the UI is built by :func:`demo.ui.build_demo` (logic in ``demo/``). Options:
``--host`` / ``--port`` (defaults from ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``, as on
Hugging Face Spaces), ``--checkpoints`` (a folder with ``manifest.json``, or one checkpoint) and
``--no-enroll``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile

from demo.housekeeping import configure_process, enrolment_allowed, stop_on_sigterm, writable_problem


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Serve the DiffusionTalker Gradio demo.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--checkpoints", default="checkpoints",
                        help="folder with manifest.json (all shipped models) or one checkpoint folder")
    parser.add_argument("--no-enroll", action="store_true",
                        help="hide the Enroll tab (on a Hugging Face Space it is hidden unless DIFFUSIONTALKER_ENROLL=1)")
    args = parser.parse_args(argv)
    configure_process()          # environment and threads, before gradio is imported
    for folder, what in ((os.environ["GRADIO_TEMP_DIR"], "GRADIO_TEMP_DIR, the upload cache,"),
                         (tempfile.gettempdir(), "The temporary folder")):
        problem = writable_problem(folder, what)
        if problem:
            sys.exit(f"error: {problem}")
    stop_on_sigterm()     # closes like Ctrl+C: the cache and the work folder go
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own start-up probes
    from demo.ui import build_demo, launch
    launch(build_demo(args.checkpoints, enroll=enrolment_allowed(args.no_enroll)), server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
