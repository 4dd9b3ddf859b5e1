from experiments.bench import against, decoder_flops_per_frame, run, spread
from core.training.distill import make_student
from core.model.manifest import build_manifest
from core.inference.talker import Talker
from tests.helpers import ToyEncoder, tiny_model, toy_clip


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
    talker = Talker.from_pretrained(tmp_path, encoder=ToyEncoder())
    others = {name: Talker.from_pretrained(tmp_path, encoder=ToyEncoder()) for name in ("a", "b")}
    same = against(talker, others, wav, 2, repeats=3)
    assert same["steps"] == 2 and same["shipped_s"] > 0 and [o["other"] for o in same["others"]] == ["a", "b"]
    assert all(o["other_s"] > 0 and o["ratio"] == same["shipped_s"] / o["other_s"] for o in same["others"])


def test_folded_flops_drop_the_identity_and_step_columns():
    model = tiny_model()
    c = model.config
    dirs = 2 if c.bidirectional else 1
    saved = dirs * 2 * 3 * (c.identity_feat_dim + c.step_dim) * c.hidden
    assert decoder_flops_per_frame(model) - decoder_flops_per_frame(model, folded=True) == saved


def test_decoder_variants_and_targets(tmp_path):
    import soundfile as sf
    from experiments.bench import decoder_variants, seeds_bound, targets
    student = make_student(tiny_model(steps=4, bidirectional=False), "teacher-4")
    student.save_pretrained(tmp_path / "distilled-2")
    build_manifest(tmp_path)
    wav = tmp_path / "a.wav"
    sf.write(wav, toy_clip(0, 1, seconds=1.0).audio, 16000)
    talker = Talker.from_pretrained(tmp_path, encoder=ToyEncoder())
    rows = {v["variant"]: v for v in decoder_variants(talker, wav, 2, repeats=1, seeds=2, compile_model=False)}
    assert rows["torch GRU"]["max_abs_diff_model_space"] == 0.0
    assert rows["ONNX Runtime GRU, one step after another"]["max_abs_diff_model_space"] < 1e-4
    assert rows["ONNX Runtime GRU, steps side by side in chunks (kept)"]["max_abs_diff_model_space"] < 1e-4
    assert rows["ONNX Runtime, 2 seeds as one batch (kept)"]["max_abs_diff_model_space"] < 1e-4  # seed 0 row
    assert all(v["seconds"] > 0 for v in rows.values())
    fake = {8: {"itf": {"median": 2e-4}, "itf_decoder": {"median": 1.6e-4}, "4_seeds_vs_1": {"median": 3.0},
                "achieved_gflops": 50.0},
            1: {"itf_decoder": {"median": 2e-5}}}
    met = {t[0]: t[3] for t in targets(fake, {"render_fps": 40.0}, "cpu")}
    assert met == {"8-step end-to-end ITF (s/frame)": True, "8-step decoder-only ITF (s/frame)": False,
                   "4 seeds vs 1 seed": False, "decoder ITF per halving of steps (8 -> 1)": True,
                   "renderer at 512x512": True}
    assert targets(fake, None, "cpu")[-1][1] == "2.00"                 # 8x slower over three halvings
    assert "100 GFLOP/s, 50% of the peak" in seeds_bound(fake, 4, 200.0)


def test_interleaved_medians_time_every_variant_in_turn():
    from experiments.bench import interleaved_medians
    order = []
    medians = interleaved_medians({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3)
    assert order == ["a", "b"] * 4 and set(medians) == {"a", "b"} and all(v >= 0 for v in medians.values())
