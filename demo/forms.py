"""What the app's form fields (and the same HTTP API arguments) may hold, checked once here.

Every whole number goes through :func:`core.inputs.whole_number`, so the seed, the samples,
the step count and the enrolment iterations follow one rule: 8.7 or "x" is refused, never
rounded. Each parser raises ``ValueError`` with a message written for the person who typed it.
The emotion, its intensity, the strengths and the head switch are checked by
:meth:`core.inference.controls.Controls.checked`, the one check every interface uses.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from core.emotion import check_emotion
from core.inputs import MAX_SEED, whole_number

MAX_SAMPLES = 4                    # seeds of one Generate request (the video shows the first)
ENROL_ITERATIONS = (10, 150, 400)  # the Enroll tab's iterations slider: minimum, default, maximum


def parse_seed(value) -> int:
    """A seed: a whole number in [0, MAX_SEED]."""
    return whole_number(value, "the seed", 0, MAX_SEED,
                        missing="Enter a seed (a whole number), or press 'New random seed'.")


def parse_seeds(text: str | Sequence) -> list[int]:
    """Seeds for a comparison from text like ``"0, 1, 2"`` (duplicates dropped, order kept)."""
    items = re.split(r"[,\s;]+", text.strip()) if isinstance(text, str) else list(text or [])
    seeds = list(dict.fromkeys(parse_seed(item) for item in items if str(item).strip()))
    if not seeds:
        raise ValueError("Enter one or more seeds separated by commas, e.g. 0, 1, 2.")
    return seeds


def parse_emotions(value: str | Sequence | None) -> list[str]:
    """Emotions to lay side by side, from the page's multiselect (a list) or text like
    ``"neutral, happy"`` (API clients): each as :func:`core.emotion.check_emotion` names it,
    duplicates dropped, order kept."""
    items = re.split(r"[,;\s]+", value.strip()) if isinstance(value, str) else list(value or [])
    emotions = list(dict.fromkeys(check_emotion(item) for item in items if item is not None and str(item).strip()))
    if not emotions:
        raise ValueError("Pick one or more emotions to compare, e.g. neutral, happy.")
    return emotions


def parse_samples(value) -> int:
    """Number of samples (seeds) for one take: 1 to MAX_SAMPLES."""
    return whole_number(value, "the number of samples", 1, MAX_SAMPLES)


def parse_iterations(value) -> int:
    """Enrolment iterations per model, within the slider's range."""
    low, _, high = ENROL_ITERATIONS
    return whole_number(value, "the number of iterations", low, high)


def pair_takes(speech_files, csv_files) -> list[tuple[Path, Path]]:
    """(speech, CSV) pairs matched by file stem, e.g. ``take1.wav`` + ``take1.csv``.

    Every file must have a partner; a stem given twice on one side is ambiguous. Raises
    ``ValueError`` with a message naming the files.
    """
    speech = [Path(f) for f in _file_list(speech_files)]
    csvs = [Path(f) for f in _file_list(csv_files)]
    if not speech or not csvs:
        raise ValueError("Upload one or more speech recordings and the Live Link Face CSV of each "
                         "(paired by name: take1.wav + take1.csv).")
    for label, files in (("speech recording", speech), ("CSV", csvs)):
        stems = [f.stem for f in files]
        twice = sorted({stem for stem in stems if stems.count(stem) > 1})
        if twice:
            raise ValueError(f"More than one {label} is named {', '.join(map(repr, twice))}; "
                             "give every take its own name.")
    not_csv = [f.name for f in csvs if f.suffix.lower() != ".csv"]
    if not_csv:
        raise ValueError(f"{', '.join(not_csv)}: the animation must be a Live Link Face .csv file.")
    by_stem = {f.stem: f for f in csvs}
    lonely_speech = [f.name for f in speech if f.stem not in by_stem]
    lonely_csv = sorted(f.name for f in csvs if f.stem not in {s.stem for s in speech})
    if lonely_speech or lonely_csv:
        parts = ([f"no CSV named like {', '.join(lonely_speech)}"] if lonely_speech else []) + \
                ([f"no speech recording named like {', '.join(lonely_csv)}"] if lonely_csv else [])
        raise ValueError(f"Every take needs a speech file and a CSV with the same name (take1.wav + take1.csv): "
                         f"{'; '.join(parts)}.")
    return [(f, by_stem[f.stem]) for f in speech]


def _file_list(files) -> list[str]:
    """gr.File(file_count="multiple") values: None, a path, or a list of paths / file objects."""
    if files is None:
        return []
    if not isinstance(files, (list, tuple)):
        files = [files]
    return [str(getattr(f, "name", f)) for f in files if f]
