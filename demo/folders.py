"""Each request's own folder of files, under one work folder per server.

The UI deletes a request's folder once Gradio has copied the outputs into its cache
(:meth:`RequestFolders.discard`); folders a crashed request left behind go after ``keep_seconds``,
and the work folders of dead servers at the next start (:func:`demo.housekeeping.remove_leftovers`).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import weakref
from pathlib import Path

from demo.housekeeping import WORKDIR_PREFIX, remove_leftovers


class RequestFolders:
    """A work folder (made here unless given) and the request folders ``req-*`` inside it."""

    def __init__(self, workdir: str | Path | None = None, keep_seconds: float = 3600.0):
        if not workdir:
            remove_leftovers()
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.keep_seconds = keep_seconds      # request folders left behind longer than this are deleted
        # A folder we made goes when this is closed or collected, or at exit.
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.workdir), True) if not workdir else None

    def new(self) -> Path:
        """A fresh folder for one request's files; folders older than ``keep_seconds`` go."""
        now = time.time()
        for old in self.workdir.glob("req-*"):
            with contextlib.suppress(OSError):  # another request may be deleting it right now
                if now - old.stat().st_mtime > self.keep_seconds:
                    shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix="req-", dir=self.workdir))

    def discard(self, folder: Path | None) -> None:
        """Delete one request's folder (once Gradio has copied its outputs into its cache)."""
        if folder is not None and Path(folder).parent == self.workdir:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        """Delete the work folder if this made it."""
        if self._cleanup is not None:
            self._cleanup()
