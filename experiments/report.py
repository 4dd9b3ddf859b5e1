"""docs/RESULTS.md is assembled from sections, each owned and rewritten by one command.

A section lives between ``<!-- BEGIN name -->`` and ``<!-- END name -->``; rewriting one leaves
the others as they are, so evaluation, benchmark and robustness runs can update it independently.
"""
from __future__ import annotations

import platform
import re
from pathlib import Path

import torch

DEFAULT_RESULTS = Path("docs/RESULTS.md")
HEADER = "# Results\n\nEvery section below is written by the command named in it; do not edit by hand.\n"


def update_section(name: str, markdown: str, path: str | Path = DEFAULT_RESULTS) -> Path:
    path = Path(path)
    text = path.read_text() if path.is_file() else HEADER
    block = f"<!-- BEGIN {name} -->\n{markdown.strip()}\n<!-- END {name} -->"
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
