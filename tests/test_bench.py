import torch

from core.bench import decoder_flops_per_frame, run, spread
from core.distill import make_student
from core.manifest import build_manifest
from core.pipeline import Talker
from tests.helpers import ToyEncoder, toy_clip
from tests.test_model import tiny_model


def test_flops_count_matches_hand_value():
    model = tiny_model()  # GRU: input 16+16+16+52=100, hidden 32, 2 layers, bidirectional
    c = model.config
    dirs = 2 if c.bidirectional else 1
    first = dirs * 2 * 3 * (100 * 32 + 32 * 32)
    second = dirs * 2 * 3 * (32 * dirs * 32 + 32 * 32)
    assert decoder_flops_per_frame(model) == first + second + 2 * 32 * dirs * 52


def test_benchmark_rows_for_every_step_count(tmp_path):
    import soundfile as sf
    teacher = tiny_model(steps=4)
    teacher.save_pretrained(tmp_path / "teacher-4")
    make_student(teacher, "teacher-4").save_pretrained(tmp_path / "distilled-2")
    build_manifest(tmp_path)
    wav = tmp_path / "a.wav"
    sf.write(wav, toy_clip(0, 1, seconds=1.0).audio, 16000)
    rows = run(Talker.from_pretrained(tmp_path, encoder=ToyEncoder()), wav, repeats=2, seeds=2)
    assert set(rows) == {4, 2}
    assert rows[4]["decoder_gflops_per_frame"] > rows[2]["decoder_gflops_per_frame"]
    assert all(r["itf"]["median"] >= r["itf_decoder"]["median"] > 0 for r in rows.values())
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}


def test_chunk_check_reports_speed_and_difference(tmp_path):
    import soundfile as sf
    from core.bench import chunk_check
    tiny_model(steps=2).save_pretrained(tmp_path / "teacher-2")
    build_manifest(tmp_path)
    wav = tmp_path / "a.wav"
    sf.write(wav, toy_clip(0, 1, seconds=2.0).audio, 16000)
    talker = Talker.from_pretrained(tmp_path, encoder=ToyEncoder())
    rows = chunk_check(talker, wav, 2, options=((10, 5), (10, 60)), repeats=1)
    assert [r["chunk"] for r in rows] == [(10, 5), (10, 60)] and talker.chunk is None
    assert rows[1]["max_abs_diff"] < 1e-4     # clip shorter than chunk + warm-up: one pass, same result
    assert rows[0]["max_abs_diff"] > 0
