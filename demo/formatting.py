"""The app's result read-outs as text and tables: identity scores, timings, comparison summary."""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from core.arkit import LIP_INDICES, UPPER_INDICES
from core.inference.controls import Controls
from core.rates import SAMPLE_RATE

if TYPE_CHECKING:
    from core.inference.talker import Generation
    from demo.results import Comparison, Take

# The similarity second: the descriptions are long, and a narrow page (a phone) must still show the scores.
SCORE_COLUMNS = ["identity", "similarity", "voice and style", ""]
_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")     # every ASCII punctuation character


def without_folder(text: str, path: str | Path) -> str:
    """``text`` with the server-side folder of ``path`` taken out (messages name the file only)."""
    path = Path(path)
    return text.replace(str(path.resolve()), path.name).replace(str(path), path.name)


def as_text(name: str) -> str:
    """A name (an identity's, a file's) for Markdown, shown as the text it is: every ASCII
    punctuation character escaped (no link, emphasis or HTML can form), line breaks as spaces."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(name).split()))


def steps_text(steps: int) -> str:
    """"1 step", "8 steps"."""
    return f"{steps} step{'s' * (steps != 1)}"


def cell_label(steps: int, seed: int, controls: Controls | None = None, always: bool = False) -> str:
    """The caption of one take: "8 steps, seed 0", with its controls when they are not the
    defaults, or ``always`` (a grid of emotions names neutral too): "8 steps, seed 0, happy 0.7"."""
    label = f"{steps_text(steps)}, seed {seed}"
    if controls is not None and (always or controls != Controls()):
        label += f", {controls.describe()}"
    return label


def controls_stem(controls: Controls) -> str:
    """What a take's file names add for its controls: "" for the defaults (the names stay as they
    were), else e.g. "_happy-0.7-upper-x1.5" (Controls.describe(), safe in a file name)."""
    if controls == Controls():
        return ""
    return "_" + re.sub(r"[^A-Za-z0-9.]+", "-", controls.describe()).strip("-")


def row_label(comparison: Comparison, steps: int, emotion: str) -> int | str:
    """A comparison row's title: its step count alone when the controls are today's defaults
    (:func:`demo.plots.row_title` says "8 steps"), else with them: "8 steps, happy 1.0"."""
    controls = comparison.controls_of(emotion)
    if len(comparison.emotions) == 1 and controls == Controls():
        return steps
    return f"{steps_text(steps)}, {controls.describe()}"


def grid_label(comparison: Comparison, cell: tuple[int, str, int]) -> str:
    """The caption of one head of a comparison: "8 steps, seed 0", and its emotion whenever the
    grid lays several side by side ("8 steps, seed 0, neutral")."""
    steps, emotion, seed = cell
    return cell_label(steps, seed, comparison.controls_of(emotion), always=len(comparison.emotions) > 1)


def plotted(comparison: Comparison) -> tuple[dict, dict]:
    """What the comparison figures draw: ({(row title, seed): curves}, {row title: spread})."""
    runs = {(row_label(comparison, s, e), seed): curves for (s, e, seed), curves in comparison.runs.items()}
    spreads = {row_label(comparison, s, e): spread for (s, e), spread in comparison.spreads().items()}
    return runs, spreads


def scores_table(generation: "Generation", label=lambda name: name) -> pd.DataFrame:
    """Every library identity, described by ``label(name)``, with its cosine similarity to the
    voice, best first."""
    rows = []
    for name, score in generation.scores:
        role = [text for text, hit in (("matched", name == generation.matched_identity),
                                       ("style used", name == generation.identity)) if hit]
        rows.append(dict(zip(SCORE_COLUMNS, (name, round(float(score), 3), label(name), ", ".join(role)))))
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def identity_summary(generation: "Generation", label=lambda name: name) -> str:
    """The matched identity with its similarity, and the style used if another one was picked."""
    best = dict(generation.scores)[generation.matched_identity]
    text = f"{label(generation.matched_identity)} (similarity {float(best):.3f})"
    if generation.identity != generation.matched_identity:
        text += f"; animated in the style of {label(generation.identity)}"
    if generation.speech is not None and not generation.speech.sounds_like_speech:
        text += " - but this does not sound like speech"
    return text


_STAGES = (("decode", "decode audio"), ("speech check", "speech check"), ("encoder", "speech encoder"), ("match", "identity matching"),
           ("sampling", "diffusion sampling"), ("export", "export files"), ("render", "render video"))


_DECODERS = {"onnx": "ONNX Runtime", "torch": "PyTorch"}


def timings_markdown(take: Take, rendering: bool = False) -> str:
    """The timing readout: seconds per stage and the inference time per frame (ITF)."""
    generation = take.generation
    frames, samples = generation.frames, len(generation.blendshapes)
    lines = ["| stage | seconds |", "|---|---:|"]
    for key, label in _STAGES:
        if key == "sampling":
            label += f" ({steps_text(generation.steps)} x {samples} sample{'s' * (samples > 1)})"
        if key in take.timings:
            lines.append(f"| {label} | {take.timings[key]:.3f} |")
        elif key == "render" and rendering:
            lines.append(f"| {label} | running ... |")
    itf_ms = 1000 * take.model_seconds / max(1, frames)
    lines.append(f"\n**ITF {itf_ms:.2f} ms per frame** (decode + encoder + matching + sampling, "
                 f"{frames} frames = {frames / generation.fps:.2f} s at {generation.fps} fps, "
                 f"on {take.device}, decoder on {_DECODERS.get(generation.decoder, generation.decoder)})")
    return "\n".join(lines)


def comparison_summary(comparison: Comparison) -> str:
    """What was compared, and the mean spread across seeds of the upper face vs the lips."""
    spreads = comparison.spreads()
    text = (f"{len(comparison.runs)} takes of {len(comparison.wave) / SAMPLE_RATE:.2f} s in "
            f"{comparison.seconds:.2f} s (encoder once, then sampling), style: **{as_text(comparison.identity)}**.")
    if len(comparison.emotions) > 1:
        text += f" Emotions side by side: {', '.join(comparison.emotions)} (each head's caption says its controls)."
    elif comparison.controls_of(comparison.emotions[0]) != Controls():
        text += f" Every take: {comparison.controls_of(comparison.emotions[0]).describe()}."
    if spreads:
        several = len(comparison.emotions) > 1
        rows = [f"| {steps} |{f' {emotion} |' * several} {s[list(UPPER_INDICES)].mean():.4f} | "
                f"{s[list(LIP_INDICES)].mean():.4f} |" for (steps, emotion), s in spreads.items()]
        text += (f"\n\n| steps |{' emotion |' * several} spread, upper face | spread, lips |\n"
                 f"|---:|{'---|' * several}---:|---:|\n" + "\n".join(rows)
                 + "\n\nSpread = std across seeds, averaged over time and channels.")
    if comparison.warning:
        text += f"\n\n> ⚠ {comparison.warning}"
    return text

