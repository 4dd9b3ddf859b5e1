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


SHARED = {"__init__", "__main__", "rates", "arkit", "inputs", "cpu", "head_pose", "emotion"}   # core's top-level modules
SUBPACKAGES = {"audio", "model", "inference", "identities", "training", "evaluation", "face", "data"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_core_is_grouped_into_subpackages():
    top = {p.stem for p in (ROOT / "core").glob("*.py")}
    folders = {p.name for p in (ROOT / "core").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert top == SHARED, f"core/ holds modules outside its subpackages: {sorted(top - SHARED)}"
    assert folders == SUBPACKAGES
    assert all((ROOT / "core" / name / "__init__.py").is_file() for name in SUBPACKAGES)


def test_the_public_api_resolves():
    import core
    missing = [name for name in core.__all__ if getattr(core, name, None) is None]
    assert not missing, f"core.__all__ names {missing}, which do not import"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_another_modules_private_names(package):
    private = []
    for path in modules(package):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                private += [f"{path.relative_to(ROOT)}: {node.module}.{alias.name}" for alias in node.names
                            if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not private, f"private names imported across modules: {private}"


def test_the_library_has_no_import_loops():
    graph = {}
    for path in modules("core"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):     # imports inside functions count too
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("core"):
                deps |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                deps |= {alias.name for alias in node.names}
        graph[module_name(path)] = deps
    graph = {name: {d for d in deps if d in graph and d != name} for name, deps in graph.items()}

    def reaches(start, goal, seen):
        return any(d == goal or (d not in seen and not seen.add(d) and reaches(d, goal, seen)) for d in graph[start])

    loops = sorted(name for name in graph if reaches(name, name, set()))
    assert not loops, f"modules on an import loop: {loops}"


def test_readme_where_to_find_names_files_that_exist():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| where to find |"):readme.index("## Conventions")]
    paths = re.findall(r"`((?:core|demo|experiments)/[\w/]+\.(?:py|js))`", table)
    assert paths and not [p for p in paths if not (ROOT / p).is_file()]
