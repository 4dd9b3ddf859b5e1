import numpy as np

from core.evaluation.evaluate import diversity, evaluate_checkpoint, identity_matching
from experiments.evaluate.tables import write_report
from core.inference.talker import Talker
from tests.helpers import ToyEncoder, tiny_model, toy_clip


def test_evaluation_of_a_checkpoint_writes_tables(tmp_path):
    tiny_model(steps=4).save_pretrained(tmp_path / "teacher-4")
    talker = Talker.from_pretrained(tmp_path / "teacher-4", encoder=ToyEncoder())
    clips = [toy_clip(i, 50 + i, "test", seconds=1.0) for i in range(3)]
    res = evaluate_checkpoint(talker, clips, progress=False)
    assert res["clips"] == 3 and res["lbe"] > 0 and res["mbe"] >= res["lbe"] and res["itf"] > res["itf_decoder"] > 0
    ident = identity_matching(talker, clips, [toy_clip(0, 9, "test_unseen", seconds=1.0)])
    assert 0 <= ident["seen"]["f1"] <= 1 and sum(ident["unseen"]["id0"].values()) == 1
    div = diversity(talker, clips[:1], samples=3)
    assert div["upper"] > 0 and div["lower"] > 0
    res.update(name="teacher-4", role="shipped", steps=4, distilled=False)
    results = {"command": "test", "data": "toy", "clips": 3, "machine": "test", "models": {"teacher-4": res},
               "identity": {"model": "teacher-4", **ident}, "diversity": {"teacher-4": div}}
    write_report(results, tmp_path / "RESULTS.md")
    text = (tmp_path / "RESULTS.md").read_text()
    assert "Table 1" in text and "Table 4" in text and "Seed diversity" in text
    assert np.isfinite(res["fdd_abs"])


def test_splits_compares_two_releases_on_two_corpora(tmp_path, monkeypatch):
    import argparse
    from experiments.evaluate import checks
    for release in ("new", "old"):
        tiny_model(steps=4).save_pretrained(tmp_path / release / "distilled-4")
    clips = {"corpus-a": [toy_clip(i, 70 + i, "test", seconds=1.0) for i in range(2)],
             "corpus-b": [toy_clip(i, 90 + i, "test", seconds=1.0) for i in range(3)]}
    monkeypatch.setattr(checks, "test_split", lambda folder, n: (clips[str(folder)], clips[str(folder)]))
    original = Talker.from_pretrained
    monkeypatch.setattr(Talker, "from_pretrained", classmethod(lambda cls, path: original(path, encoder=ToyEncoder())))
    results = tmp_path / "RESULTS.md"
    checks.splits(argparse.Namespace(data="corpus-a", old_data="corpus-b", max_clips=40, model="distilled-4",
                                     checkpoints=tmp_path / "new", previous=[str(tmp_path / "old")],
                                     results=results, command_line="python -m experiments.evaluate splits"))
    text = results.read_text()
    assert "<!-- BEGIN corpus-change -->" in text and "2 test clips of corpus-a and 3 of corpus-b" in text
    ratio_row = [line for line in text.splitlines() if line.startswith("| shipped / previous")][0]
    assert all(float(x) > 0 for x in ratio_row.strip("|").split("|")[1:])


def test_training_budgets_say_which_weights_were_kept(tmp_path):
    import json
    from experiments.evaluate.tables import training_budgets
    for name, extra in (("teacher-8", {"selected": {"kept": "epoch-0002"}}), ("scratch-8", {})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"steps": 8, "parent": None, "extra": extra}))
        (tmp_path / name / "log.jsonl").write_text("".join(json.dumps({"epoch": e, "minutes": 1.5 * e}) + "\n"
                                                           for e in (1, 2, 3)))
    rows = training_budgets(tmp_path, ["teacher-8", "scratch-8", "missing"])
    assert rows == [["teacher-8", 8, "-", 3, 4.5, "epoch 2 (3.0 min) kept by real-speech validation"],
                    ["scratch-8", 8, "-", 3, 4.5, "last epoch"]]
