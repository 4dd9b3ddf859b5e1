"""Identity libraries change all or nothing across models, are repaired after a crash, and
enrolled identities can be removed again (core.identities.store, core.identities.enrolment)."""
import pytest
import torch

from core.identities import store as library
from core.identities.enrolment import remove_identity, shipped_folders
from core.identities.store import (JOURNAL_NAME, LIBRARY_NAME, commit, identities_root, library_for, library_names,
                          read_library, repair, write_library)
from core.inference.talker import Talker
from demo.service import load_talker
from tests.helpers import NAMES, ToyEncoder

SHIPPED = ("teacher-8", "distilled-4")


def enrol_by_hand(root, folders, names):
    for folder in folders:
        write_library(library_for(root / folder), list(names), torch.randn(len(names), 32))


def test_a_failure_midway_changes_no_library_and_repair_cleans_up(toy_checkpoints, monkeypatch):
    root = toy_checkpoints
    enrol_by_hand(root, SHIPPED, ["carol"])
    before = {f: read_library(library_for(root / f))[1].clone() for f in SHIPPED}
    calls, write = [], library._write

    def crash_on_second(path, names, table):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        write(path, names, table)

    with monkeypatch.context() as patch, pytest.raises(OSError):
        patch.setattr(library, "_write", crash_on_second)
        commit(identities_root(), {library_for(root / f): (["carol", "dave"], torch.zeros(2, 32)) for f in SHIPPED})
    assert all(library_names(root / f) == ["carol"] for f in SHIPPED)
    assert list(identities_root().glob("*/*.pending")) and not (identities_root() / JOURNAL_NAME).exists()
    assert repair(identities_root(), [library_for(root / f) for f in SHIPPED], NAMES) == [
        f"rolled back an unfinished library change in {library_for(root / f).parent.name}" for f in SHIPPED[:1]]
    assert not list(identities_root().glob("*/*.pending"))
    assert all(torch.equal(read_library(library_for(root / f))[1], before[f]) for f in SHIPPED)


def test_a_commit_past_its_journal_is_finished_by_repair(toy_checkpoints, monkeypatch):
    root = toy_checkpoints
    with monkeypatch.context() as patch:
        patch.setattr(library, "_carry_out", lambda root, journal: None)   # killed right after the journal
        commit(identities_root(), {library_for(root / f): (["erin"], torch.zeros(1, 32)) for f in SHIPPED})
    assert (identities_root() / JOURNAL_NAME).is_file() and not any(library_names(root / f) for f in SHIPPED)
    load_talker(root)                                                       # the app starting up
    assert all(library_names(root / f) == ["erin"] for f in SHIPPED)
    assert not (identities_root() / JOURNAL_NAME).exists()


def test_an_identity_in_only_some_models_is_rolled_back_with_a_copy_kept(toy_checkpoints):
    root = toy_checkpoints
    enrol_by_hand(root, SHIPPED, ["carol"])
    enrol_by_hand(root, SHIPPED[:1], ["carol", "half"])          # what a killed old-style enrolment left
    shipped_folders(root)
    assert all(library_names(root / f) == ["carol"] for f in SHIPPED)
    backup = library_for(root / SHIPPED[0]).with_name(LIBRARY_NAME + ".before-repair")
    assert read_library(backup)[0] == ["carol", "half"]
    talker = Talker.from_pretrained(root, encoder=ToyEncoder())
    assert [talker.model(s).identity_names[-1] for s in (8, 4)] == ["carol", "carol"]


def test_removal_takes_an_enrolled_identity_out_of_every_model(toy_checkpoints):
    root = toy_checkpoints
    enrol_by_hand(root, SHIPPED, ["carol", "dave"])
    assert remove_identity(root, "carol") == NAMES + ["dave"]
    assert all(library_names(root / f) == ["dave"] for f in SHIPPED)
    with pytest.raises(ValueError, match="not an enrolled identity"):
        remove_identity(root, "carol")
    with pytest.raises(ValueError, match="trained into the models"):
        remove_identity(root, NAMES[0])


def test_libraries_live_in_the_user_data_folder_and_old_ones_move_there(toy_checkpoints):
    root = toy_checkpoints
    old = root / SHIPPED[0] / LIBRARY_NAME
    enrol_by_hand(root, SHIPPED[1:], ["carol"])
    write_library(old, ["carol"], torch.randn(1, 32))                  # where an older version kept it
    assert library_for(root / SHIPPED[0]).is_relative_to(identities_root())
    load_talker(root)
    assert not old.exists() and library_names(root / SHIPPED[0]) == ["carol"]
    assert not any(p.name.startswith("library") for p in root.rglob("*"))   # nothing enrolled under checkpoints/
    model = Talker.from_pretrained(root, encoder=ToyEncoder()).model(8)
    assert model.identity_names == NAMES + ["carol"]


def test_a_scratch_data_folder_keeps_evaluation_libraries_out_of_the_users(tmp_path):
    import os
    from core.identities.store import DATA_ENV, data_folder_at, identities_root
    user = identities_root()
    with data_folder_at(tmp_path / "scratch") as scratch:
        assert identities_root() == scratch / "identities" != user
    assert identities_root() == user and os.environ.get(DATA_ENV) is not None
