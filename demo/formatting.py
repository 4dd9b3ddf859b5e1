"""The app's result read-outs as text and tables: identity scores, timings, comparison summary."""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from core.arkit import LIP_INDICES, UPPER_INDICES
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


def cell_label(steps: int, seed: int) -> str:
    """The caption of one take: "8 steps, seed 0"."""
    return f"{steps_text(steps)}, seed {seed}"


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
    if spreads:
        rows = [f"| {steps} | {s[list(UPPER_INDICES)].mean():.4f} | {s[list(LIP_INDICES)].mean():.4f} |"
                for steps, s in spreads.items()]
        text += ("\n\n| steps | spread, upper face | spread, lips |\n|---:|---:|---:|\n" + "\n".join(rows)
                 + "\n\nSpread = std across seeds, averaged over time and channels.")
    if comparison.warning:
        text += f"\n\n> ⚠ {comparison.warning}"
    return text
