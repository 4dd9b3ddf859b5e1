import numpy as np

from core.evaluation import diversity, evaluate_checkpoint, identity_matching
from experiments.evaluate.tables import write_report
from core.pipeline import Talker
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
