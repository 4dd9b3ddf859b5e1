"""Enrolment in the app, without Gradio: a new identity from (speech, Live Link Face CSV) takes,
in every shipped model, and the removal of one; one change at a time.

The same code as ``python -m core enroll`` / ``remove`` (:mod:`core.identities.enrolment`); after a
change the models are reloaded, so every session offers and matches the new library at once.
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from core.inputs import shown
from demo.formatting import as_text
from demo.forms import ENROL_ITERATIONS, pair_takes, parse_iterations

if TYPE_CHECKING:
    from core.inference.talker import Talker


class Enrolment:
    """Adds and removes enrolled identities of ``talker``'s checkpoint folder."""

    def __init__(self, talker: "Talker"):
        self.talker = talker
        self._lock = threading.Lock()   # one change at a time (they write the libraries)

    def enroll(self, speech_files, csv_files, name, iterations=ENROL_ITERATIONS[1], progress=None) -> str:
        """Learn a new identity from takes paired by file name; returns a status line (markdown)."""
        from core.identities.enrolment import enroll_pairs
        iterations = parse_iterations(iterations)
        pairs = pair_takes(speech_files, csv_files)
        if self.talker.root is None:
            raise ValueError("These models were not loaded from a checkpoint folder; cannot enrol into them.")
        start = time.perf_counter()
        with self._lock:
            names = enroll_pairs(self.talker.root, name, pairs, iterations=iterations,
                                 encoder=self.talker.encoder(), progress=progress)
            self.talker.reload()       # requests already running keep the model objects they hold
        added = names[-1]
        return (f"Enrolled **{as_text(added)}** from {len(pairs)} take{'s' * (len(pairs) > 1)} in "
                f"{time.perf_counter() - start:.1f} s ({iterations} iterations per model). "
                f"The library now holds **{len(names)} identities**: {', '.join(map(as_text, names))}.")

    def enrolled(self) -> list[str]:
        """The identities enrolled after training (the ones that can be removed)."""
        from core.identities.store import library_names
        return library_names(self.talker.folder(self.talker.steps_available[-1])) if self.talker.root else []

    def remove(self, name) -> str:
        """Take an enrolled identity out of every shipped model (all or nothing); a status line."""
        from core.identities.enrolment import remove_identity
        if name not in self.enrolled():
            raise ValueError(f"{shown(name)} is not an enrolled identity; choose one from the list.")
        with self._lock:
            names = remove_identity(self.talker.root, name)
            self.talker.reload()
        return (f"Removed **{as_text(name)}**. The library now holds **{len(names)} identities**: "
                f"{', '.join(map(as_text, names))}.")
