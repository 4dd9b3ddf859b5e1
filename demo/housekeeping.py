"""The app's own files on disk: what dead servers left, the cache sweep, folders it must be able
to write, and where enrolled identities are kept (and whether enrolment is offered at all)."""
from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

WORKDIR_PREFIX = "diffusiontalker-demo-"   # + the server's pid: folders of dead servers are removed at start
CACHE_PREFIX = "diffusiontalker-gradio-"   # + the server's pid: each server's own Gradio cache


def configure_process() -> None:
    """The process set-up a server needs, called by ``app.main`` (and the experiments that serve
    the app) before Gradio is imported; importing ``demo`` changes nothing.

    No usage analytics and no Hugging Face telemetry (no outside network); a Gradio cache folder
    of this server's own (:func:`use_own_gradio_cache`); numpy's BLAS on one thread before any
    request thread calls it (:mod:`core.cpu`).
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    use_own_gradio_cache()
    from core.cpu import limit_numpy_blas
    limit_numpy_blas()


def use_own_gradio_cache() -> str:
    """Point Gradio's cache (uploads, output copies, example clips) at a folder of this process's
    own, ``<temp>/diffusiontalker-gradio-<pid>``, unless ``GRADIO_TEMP_DIR`` names another folder.

    A shared cache broke a running server's example clips: a server that closes deletes the cache
    files it made, and another server may be serving the same file. A value inherited from a
    parent app (a folder with this prefix and another pid) is replaced too; what a killed server
    left is swept at the next start (:func:`remove_leftovers`). Call before gradio is imported;
    returns the folder.
    """
    current, own = os.environ.get("GRADIO_TEMP_DIR"), f"{CACHE_PREFIX}{os.getpid()}"
    if not current or (Path(current).name.startswith(CACHE_PREFIX) and Path(current).name != own):
        os.environ["GRADIO_TEMP_DIR"] = os.path.join(tempfile.gettempdir(), own)
        atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], True)   # what Gradio's own sweep leaves
    return os.environ["GRADIO_TEMP_DIR"]


def remove_leftovers(temp: str | Path | None = None) -> list[Path]:
    """Delete the work folders and Gradio caches of servers that are no longer running (killed, say).

    A folder is ``<temp>/diffusiontalker-demo-<pid>-*`` or ``<temp>/diffusiontalker-gradio-<pid>``;
    one whose pid is not a live process is removed. Returns the folders removed.
    """
    removed = []
    for prefix in (WORKDIR_PREFIX, CACHE_PREFIX):
        for folder in Path(temp or tempfile.gettempdir()).glob(f"{prefix}*"):
            pid = folder.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)) and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


def stop_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a container or service manager stopping the app) close the server the
    way Ctrl+C does: Gradio shuts down and deletes its cache, and the exit handlers delete the work
    folder (by default SIGTERM ends the process at once and leaves both behind)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def remove_old_files(folder: str | Path, max_age_s: float) -> int:
    """Delete the entries of ``folder`` last changed more than ``max_age_s`` ago; returns how many."""
    now, removed = time.time(), 0
    for entry in Path(folder).glob("*") if Path(folder).is_dir() else []:
        with contextlib.suppress(OSError):        # a request may be using or deleting it right now
            if now - entry.stat().st_mtime > max_age_s:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                removed += 1
    return removed


def writable_problem(folder: str | Path, what: str) -> str | None:
    """None if files can be created in ``folder`` (made if missing), else a message saying why not."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return (f"{what} {folder} cannot be written ({err.strerror or err}); point it at a writable folder "
                "and start again.")
    return None


def enrolment_allowed(no_enroll: bool = False) -> bool:
    """Whether the app offers enrolment: not with ``--no-enroll``, and on a public Hugging Face
    Space (``SPACE_ID`` is set) only when ``DIFFUSIONTALKER_ENROLL=1`` turns it on."""
    return not no_enroll and (not os.environ.get("SPACE_ID") or os.environ.get("DIFFUSIONTALKER_ENROLL") == "1")


def storage_note() -> str:
    """Where enrolled identities are kept (in words: no server path on the page), and whether they
    survive a restart."""
    from core.identities.store import data_folder
    note = "Enrolled identities are kept on this server (whoever runs it sets the folder: `DIFFUSIONTALKER_DATA`)."
    if os.environ.get("SPACE_ID") and not str(data_folder()).startswith("/data"):
        note += (" **This Space has no persistent storage: enrolled identities vanish when it restarts** "
                 "(turn on persistent storage in the Space's settings).")
    return note


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # another user's process: alive
        return True
    return True
