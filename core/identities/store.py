"""Enrolled identities: a library file per model in the user data folder, checked on every
read and changed all or nothing across the models that share it.

A library (``library.safetensors``) holds the names (metadata, JSON list) and the 32-d
embeddings (tensor ``embeddings`` [n, identity_dim]) of identities enrolled after training;
:func:`attach_library` appends them to a loaded model's trained ones (the Talker does, for users).
Enrolled identities are user data, so they never live under ``checkpoints/``: the library of
the model in folder ``distilled-8`` is ``<data>/identities/distilled-8-<sha256 of its
weights, 16 digits>/library.safetensors`` (:func:`library_for`), where ``<data>`` is
``$DIFFUSIONTALKER_DATA``, else ``/data/diffusiontalker`` on a Hugging Face Space with
persistent storage, else ``$XDG_DATA_HOME/diffusiontalker`` (``~/.local/share/...``). Keyed by
the weights, a retrained model never picks up embeddings learned for another. Every
shipped model must list the same identities, so a change to several libraries (an enrolment
into 9 models, a removal) goes through :func:`commit`: each new library is written beside
the old one as ``*.pending``, then a journal naming them all is written atomically, then the
pending files replace the libraries and the journal goes. A process killed before the
journal leaves only pending files, which :func:`repair` deletes (rolled back); one killed
after it leaves a journal, which :func:`repair` carries out (rolled forward).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import torch

from core.inputs import AUTO_IDENTITY

DATA_ENV = "DIFFUSIONTALKER_DATA"
LIBRARY_NAME = "library.safetensors"
PENDING_SUFFIX = ".pending"
JOURNAL_NAME = "library-commit.json"     # in identities_root(), only while a commit is under way
RESERVED_NAMES = (AUTO_IDENTITY,)        # means "matched from the voice" in the app and `generate --identity`
MAX_NAME_LENGTH = 64
NAME_PUNCTUATION = " -_.'"               # besides letters and digits, what an identity name may hold

log = logging.getLogger(__name__)


class LibraryError(ValueError):
    """A library file that cannot be trusted; the message names the file and the problem."""


def check_name(name) -> str:
    """A new identity's name, stripped: 1 to 64 characters of a plain set, and not a reserved word.

    Plain: letters, digits and their accents (any script, NFC), single spaces and ``- _ . '``, starting with a letter
    or digit. No line breaks, invisible or direction-changing characters, no markup (``[x](link)``,
    ``<b>``, ``**``): a name is shown to every visitor of the app.
    """
    name = unicodedata.normalize("NFC", name.strip()) if isinstance(name, str) else ""
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"give the new identity a name of 1 to {MAX_NAME_LENGTH} characters")
    odd = sorted({c for c in name if not _plain_character(c)})
    if odd or not name[0].isalnum() or "  " in name:
        shown = ", ".join(repr(c) if c.isprintable() else f"U+{ord(c):04X}" for c in odd) or "how it starts or its spaces"
        raise ValueError(f"an identity name may hold letters, digits, single spaces and - _ . ' only, starting "
                         f"with a letter or digit (not: {shown})")
    if name.lower() in RESERVED_NAMES:
        raise ValueError(f"{name!r} is reserved (it means 'matched from the voice'); choose another name")
    return name


def _plain_character(c: str) -> bool:
    return c in NAME_PUNCTUATION or (c.isprintable() and unicodedata.category(c)[0] in "LNM")   # M: accents


def read_library(path: Path, identity_dim: int | None = None,
                 trained: Sequence[str] = ()) -> tuple[list[str], torch.Tensor]:
    """Names and embeddings [n, identity_dim] of a library, or :class:`LibraryError`.

    Checked: the file parses as safetensors (never executed); the names are a JSON list of
    distinct valid names, none of them a ``trained`` identity; the embeddings are a finite
    2-D float tensor with one row per name and ``identity_dim`` columns.
    """
    from safetensors import safe_open
    path = Path(path)
    try:
        with safe_open(str(path), "pt") as fh:
            names = json.loads((fh.metadata() or {})["names"])
            table = fh.get_tensor("embeddings")
    except Exception as err:  # any parse failure of a user-writable file is reported, never executed
        raise LibraryError(f"{path}: unreadable identity library ({str(err).splitlines()[0]})") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise LibraryError(f"{path}: the names must be a list of strings, not {type(names).__name__}")
    for name in names:
        try:
            if check_name(name) != name:
                raise ValueError("surrounding spaces")
        except ValueError as err:
            raise LibraryError(f"{path}: invalid identity name {name[:MAX_NAME_LENGTH]!r} ({err})") from None
    clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(trained)))
    if clash:
        raise LibraryError(f"{path}: identities listed twice or already trained: {', '.join(clash)}")
    if not table.is_floating_point() or table.dim() != 2 or len(table) != len(names):
        raise LibraryError(f"{path}: expected float embeddings [{len(names)}, {identity_dim or 'dim'}], "
                           f"got {table.dtype} {list(table.shape)}")
    if identity_dim is not None and table.shape[1] != identity_dim:
        raise LibraryError(f"{path}: embeddings of size {table.shape[1]}, the model's are {identity_dim}")
    table = table.float()
    if not torch.isfinite(table).all():
        raise LibraryError(f"{path}: embeddings contain NaN or infinity")
    return names, table


def attach_library(model, model_folder: str | Path) -> str | None:
    """Append the identities users enrolled into ``model_folder``'s model to ``model`` (a loaded
    :class:`~core.model.network.DiffusionTalker`). A library that cannot be trusted is left out:
    the model serves its trained identities, and the message saying so is returned (else None)."""
    path = library_for(model_folder)
    if not path.is_file():
        return None
    try:
        names, table = read_library(path, model.config.identity_dim, model.config.identity_names)
    except LibraryError as err:
        log.warning("%s", err)
        return f"The enrolled identities of {Path(model_folder).name} are not used: {err}"
    model.add_identities(names, table)
    return None


def data_folder() -> Path:
    """The user data folder (see the module docstring)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    if os.environ.get("SPACE_ID") and os.access("/data", os.W_OK):   # a Space's persistent storage
        return Path("/data/diffusiontalker")
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "diffusiontalker"


@contextmanager
def data_folder_at(path: str | Path):
    """Read and write every library under ``path`` meanwhile: for evaluations that enrol into
    copies of the shipped models, whose libraries would otherwise land in the user's folder (a
    library is found by the model's weights, and a copy has the same weights)."""
    previous = os.environ.get(DATA_ENV)
    os.environ[DATA_ENV] = str(path)
    try:
        yield Path(path)
    finally:
        if previous is None:
            os.environ.pop(DATA_ENV, None)
        else:
            os.environ[DATA_ENV] = previous


def identities_root() -> Path:
    """Where the libraries (and the journal of a change under way) live."""
    return data_folder() / "identities"


def library_for(model_folder: str | Path) -> Path:
    """The library file of the model in ``model_folder`` (it may not exist yet)."""
    from core.model.checkpoint import WEIGHTS_NAME
    folder = Path(model_folder).resolve()
    weights = folder / WEIGHTS_NAME
    stat = weights.stat()
    key = _weights_key(str(weights), stat.st_mtime_ns, stat.st_size)
    return identities_root() / f"{folder.name}-{key}" / LIBRARY_NAME


@functools.lru_cache(maxsize=64)
def _weights_key(path: str, mtime_ns: int, size: int) -> str:
    """16 hex digits of the weights' sha256, hashed once per file version (the page asks often)."""
    from core.model.checkpoint import sha256_of
    return sha256_of(path)[:16]


def library_names(model_folder: Path) -> list[str]:
    """Enrolled identity names of the model in ``model_folder`` ([] without a library)."""
    path = library_for(model_folder)
    return read_library(path)[0] if path.is_file() else []


def _write(path: Path, names: list[str], table: torch.Tensor) -> None:
    from safetensors.torch import save_file
    save_file({"embeddings": table.detach().cpu().float().contiguous()}, str(path),
              metadata={"names": json.dumps(list(names))})


def write_library(path: Path, names: list[str], table: torch.Tensor) -> None:
    """One library, replaced atomically (a temp file renamed over it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    _write(tmp, names, table)
    tmp.replace(path)


def commit(root: Path, libraries: dict[Path, tuple[list[str], torch.Tensor]]) -> None:
    """Replace every library in ``libraries`` (path -> names, table) or none of them."""
    root = Path(root).resolve()
    pending = {path: path.with_name(path.name + PENDING_SUFFIX) for path in libraries}
    for path, (names, table) in libraries.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(pending[path], names, table)
    journal = root / JOURNAL_NAME
    tmp = journal.with_name(journal.name + ".tmp")
    tmp.write_text(json.dumps({"libraries": [os.path.relpath(p, root) for p in libraries]}))
    tmp.replace(journal)                     # the commit point
    _carry_out(root, journal)


def _carry_out(root: Path, journal: Path) -> None:
    for relative in json.loads(journal.read_text())["libraries"]:
        path = root / relative
        staged = path.with_name(path.name + PENDING_SUFFIX)
        if staged.is_file():
            staged.replace(path)
    journal.unlink()


def repair(root: Path, paths: Sequence[Path], trained: Sequence[str]) -> list[str]:
    """Finish or undo a commit that a crash interrupted, then make the libraries agree.

    ``paths``: the library files that must list the same identities (one per model, existing
    or not); ``trained``: their models' trained identity names. An identity enrolled into only some of them
    (by a crash before commits were journaled) is removed from those; each library changed
    so is first copied to ``*.before-repair``. Returns a line per change made (empty when
    there was nothing to do).
    """
    root, done = Path(root).resolve(), []
    journal = root / JOURNAL_NAME
    if journal.is_file():
        _carry_out(root, journal)
        done.append("finished an interrupted library change")
    for path in paths:
        for stray in Path(path).parent.glob(f"*{PENDING_SUFFIX}"):
            stray.unlink()
            done.append(f"rolled back an unfinished library change in {Path(path).parent.name}")
    try:
        libraries = {Path(p): read_library(Path(p), trained=trained) for p in paths if Path(p).is_file()}
    except LibraryError as err:               # a damaged library: leave every file as it is
        log.warning("identity libraries not checked for agreement: %s", err)
        return done
    everywhere = set.intersection(*(set(names) for names, _ in libraries.values())) \
        if len(libraries) == len(paths) else set()
    changes = {}
    for path, (names, table) in libraries.items():
        keep = [i for i, name in enumerate(names) if name in everywhere]
        if len(keep) < len(names):
            changes[path] = ([names[i] for i in keep], table[keep])
            done.append(f"removed {', '.join(n for n in names if n not in everywhere)} from {path.parent.name} "
                        "(not enrolled in every model)")
    if changes:
        for path in changes:
            shutil.copyfile(path, path.with_name(path.name + ".before-repair"))
        commit(root, changes)
    for line in done:
        log.warning("identity library: %s", line)
    return done


def without(path: Path, name: str) -> tuple[list[str], torch.Tensor]:
    """The library at ``path`` with ``name`` taken out (ValueError if it is not enrolled there)."""
    names, table = read_library(path) if Path(path).is_file() else ([], torch.zeros(0, 0))
    if name not in names:
        raise ValueError(f"{name!r} is not an enrolled identity")
    keep = [i for i, n in enumerate(names) if n != name]
    return [names[i] for i in keep], table[keep]
