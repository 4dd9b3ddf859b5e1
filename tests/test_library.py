"""Identity libraries change all or nothing across models, are repaired after a crash, and
enrolled identities can be removed again (core.library, core.enroll)."""
import pytest
import torch

from core import library
from core.enroll import remove_identity, shipped_folders
from core.library import LIBRARY_NAME, JOURNAL_NAME, commit, library_names, read_library, repair, write_library
from core.pipeline import Talker
from demo.service import load_talker
from tests.helpers import NAMES, ToyEncoder

SHIPPED = ("teacher-8", "distilled-4")


def enrol_by_hand(root, folders, names):
    for folder in folders:
        write_library(root / folder / LIBRARY_NAME, list(names), torch.randn(len(names), 32))


def test_a_failure_midway_changes_no_library_and_repair_cleans_up(toy_checkpoints, monkeypatch):
    root = toy_checkpoints
    enrol_by_hand(root, SHIPPED, ["carol"])
    before = {f: read_library(root / f / LIBRARY_NAME)[1].clone() for f in SHIPPED}
    calls, write = [], library._write

    def crash_on_second(path, names, table):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        write(path, names, table)

    monkeypatch.setattr(library, "_write", crash_on_second)
    with pytest.raises(OSError):
        commit(root, {root / f / LIBRARY_NAME: (["carol", "dave"], torch.zeros(2, 32)) for f in SHIPPED})
    monkeypatch.undo()
    assert all(library_names(root / f) == ["carol"] for f in SHIPPED)
    assert list(root.glob("*/*.pending")) and not (root / JOURNAL_NAME).exists()
    assert repair(root, [root / f for f in SHIPPED], NAMES) == [f"rolled back an unfinished library change in {f}"
                                                                for f in SHIPPED[:1]]
    assert not list(root.glob("*/*.pending"))
    assert all(torch.equal(read_library(root / f / LIBRARY_NAME)[1], before[f]) for f in SHIPPED)


def test_a_commit_past_its_journal_is_finished_by_repair(toy_checkpoints, monkeypatch):
    root = toy_checkpoints
    monkeypatch.setattr(library, "_carry_out", lambda root, journal: None)   # killed right after the journal
    commit(root, {root / f / LIBRARY_NAME: (["erin"], torch.zeros(1, 32)) for f in SHIPPED})
    monkeypatch.undo()
    assert (root / JOURNAL_NAME).is_file() and not any(library_names(root / f) for f in SHIPPED)
    load_talker(root)                                                       # the app starting up
    assert all(library_names(root / f) == ["erin"] for f in SHIPPED)
    assert not (root / JOURNAL_NAME).exists()


def test_an_identity_in_only_some_models_is_rolled_back_with_a_copy_kept(toy_checkpoints):
    root = toy_checkpoints
    enrol_by_hand(root, SHIPPED, ["carol"])
    enrol_by_hand(root, SHIPPED[:1], ["carol", "half"])          # what a killed old-style enrolment left
    shipped_folders(root)
    assert all(library_names(root / f) == ["carol"] for f in SHIPPED)
    assert read_library(root / SHIPPED[0] / (LIBRARY_NAME + ".before-repair"))[0] == ["carol", "half"]
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
