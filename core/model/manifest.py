"""The checkpoint manifest: every shipped model with its steps, parent, data, metrics and sha256.

``python -m core.model.manifest checkpoints [--fp16]`` (re)writes ``checkpoints/manifest.json`` from the
checkpoint folders it finds (optionally storing weights as fp16 first), keeping metrics that the
evaluation command recorded.  Loading verifies every file's sha256 against it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.model.checkpoint import CONFIG_NAME, WEIGHTS_NAME, sha256_of

MANIFEST_NAME = "manifest.json"


class ChecksumError(ValueError):
    """A shipped file or the manifest is damaged: the server's problem, not the user's input."""
    user_error = False


def read_manifest(root: str | Path) -> dict:
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        raise ValueError(f"{root} has no {MANIFEST_NAME}; build one with `python -m core.model.manifest {root}`")
    try:
        manifest = json.loads(path.read_text())
        manifest["models"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a valid manifest ({err})") from None
    return manifest


LOADED_FILES = (CONFIG_NAME, WEIGHTS_NAME)   # what loading a model reads; each must be hashed in its entry


def entry_folder(root: str | Path, entry: dict) -> Path:
    """The folder of a manifest entry, which must lie inside ``root`` (ChecksumError if not)."""
    root = Path(root).resolve()
    relative = entry.get("path") if isinstance(entry, dict) else None
    if not isinstance(relative, str) or not relative:
        raise ChecksumError(f"{root / MANIFEST_NAME}: an entry has no folder path")
    folder = (root / relative).resolve()
    if folder != root and root not in folder.parents:
        raise ChecksumError(f"{root / MANIFEST_NAME}: the path {relative!r} of {entry.get('name')!r} leads outside "
                            f"{root}; refused")
    return folder


def verify(root: str | Path, entry: dict) -> None:
    """Raise ChecksumError unless every file the model loads is hashed in ``entry`` and matches."""
    folder = entry_folder(root, entry)
    hashes = entry.get("sha256")
    unhashed = [name for name in LOADED_FILES if not isinstance(hashes, dict) or not isinstance(hashes.get(name), str)]
    if unhashed:
        raise ChecksumError(f"{Path(root) / MANIFEST_NAME}: the entry of {entry.get('name')!r} has no sha256 for "
                            f"{', '.join(unhashed)}; every file a model loads must be hashed")
    for name, expected in hashes.items():
        path = folder / name
        if not path.is_file():
            raise ChecksumError(f"{path} is missing (listed in the manifest)")
        if sha256_of(path) != expected:
            raise ChecksumError(f"{path} does not match the sha256 in the manifest: the file is damaged or was "
                                f"replaced; rebuild the manifest only if you trust it")


def is_checkpoint_folder(path: str | Path) -> bool:
    """A single checkpoint (config + weights) rather than a folder of them with a manifest."""
    return (Path(path) / CONFIG_NAME).is_file()


def model_entries(path: str | Path, role: str = "shipped") -> list[dict]:
    """The models at ``path``: the ``role`` entries of ``path/manifest.json``, or, for a single
    checkpoint folder, an entry of its own (``"path": "."``, no checksums to verify)."""
    path = Path(path)
    if is_checkpoint_folder(path):
        try:
            steps = json.loads((path / CONFIG_NAME).read_text())["steps"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path / CONFIG_NAME}: broken config ({err})") from None
        return [{"name": path.name, "path": ".", "steps": steps, "role": role_of(path.name), "sha256": {}}]
    entries = [m for m in read_manifest(path)["models"] if m.get("role", "shipped") == role]
    if not entries:
        raise ValueError(f"{path}/manifest.json lists no {role} models")
    return entries


def role_of(name: str) -> str:
    """Shipped chain (teacher-*, distilled-*), baselines (scratch-*) or ablations (ablation-*)."""
    for prefix, role in (("scratch-", "baseline"), ("ablation-", "ablation")):
        if name.startswith(prefix):
            return role
    return "shipped"


def checkpoint_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob(f"*/{CONFIG_NAME}") if (p.parent / WEIGHTS_NAME).is_file())


def build_manifest(root: str | Path, fp16: bool = False) -> dict:
    from core.model.diffusion import TEMPERATURE_KEY
    from core.model.network import DiffusionTalker
    import torch
    per_channel = ("value_maps", TEMPERATURE_KEY)    # what an extra holds per channel: left in config.json
    root = Path(root)
    old = {}
    if (root / MANIFEST_NAME).is_file():
        old = {m["name"]: m for m in read_manifest(root)["models"]}
    models = []
    for folder in checkpoint_dirs(root):
        if fp16:
            DiffusionTalker.from_pretrained(folder).save_pretrained(folder, dtype=torch.float16)
        cfg = json.loads((folder / CONFIG_NAME).read_text())
        models.append({
            "name": folder.name, "path": folder.name, "role": role_of(folder.name), "steps": cfg["steps"], "parent": cfg.get("parent"),
            "distilled": cfg.get("distilled", False), "encoder": cfg["encoder"],
            "data": cfg.get("data_fingerprint"), "identities": len(cfg["identity_names"]),
            "training": {k: v for k, v in cfg.get("extra", {}).items() if k not in per_channel},
            "metrics": old.get(folder.name, {}).get("metrics", {}),
            "sha256": {name: sha256_of(folder / name) for name in (CONFIG_NAME, WEIGHTS_NAME)},
        })
    manifest = {"models": models}
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def record_metrics(root: str | Path, metrics_by_name: dict[str, dict]) -> None:
    """Add evaluation metrics to the manifest entries, keeping the others (the tables' figures
    beside the seed check); does not touch the checksums."""
    root = Path(root)
    manifest = read_manifest(root)
    for entry in manifest["models"]:
        if entry["name"] in metrics_by_name:
            entry["metrics"] = {**entry.get("metrics", {}), **metrics_by_name[entry["name"]]}
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description="Write checkpoints/manifest.json for every checkpoint folder.")
    p.add_argument("root", nargs="?", default="checkpoints")
    p.add_argument("--fp16", action="store_true", help="store weights as float16 first")
    a = p.parse_args(argv)
    manifest = build_manifest(a.root, a.fp16)
    for m in manifest["models"]:
        print(f"{m['name']:<24} steps={m['steps']:<4} parent={m['parent']}")


if __name__ == "__main__":
    main()
