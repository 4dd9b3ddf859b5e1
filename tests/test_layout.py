"""The layout the README promises: the library stands alone, modules stay small, the README lists them."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "demo", "experiments")
MAX_LINES = 500


def modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", modules("core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_library_imports_neither_the_app_nor_the_experiments(path):
    outside = {name for name in imported(path) if name.split(".")[0] in ("demo", "experiments")}
    assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)}"


def test_no_module_of_the_library_or_the_app_is_over_the_limit():
    long = {str(p.relative_to(ROOT)): n for package in ("core", "demo") for p in modules(package)
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"


def test_readme_layout_names_every_module():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):readme.index("## Conventions")]
    words = set(re.findall(r"[A-Za-z_]+", layout))
    missing = [str(p.relative_to(ROOT)) for package in PACKAGES for p in modules(package)
               if p.stem not in words and not (p.stem == "__init__" and p.parent.name in words)]
    assert not missing, f"the README's Layout does not mention {missing}"
