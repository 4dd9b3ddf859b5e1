"""The ONNX Runtime decoder matches the torch decoder (parity), in the model and in the pipeline."""
import numpy as np
import onnxruntime
import pytest
import torch

from core.model.network import DiffusionTalker, TalkerConfig
from core.inference.onnx_decoder import OnnxDecoder
from core.inference.onnx_graph import main as export_main
from core.inference.talker import Talker
from tests.helpers import ToyEncoder, toy_clip



@pytest.mark.parametrize("layers, bidirectional, prediction", [(2, False, "x0"), (1, True, "v"), (3, False, "v")])
def test_onnx_decoder_matches_torch(layers, bidirectional, prediction):
    torch.manual_seed(layers)
    model = DiffusionTalker(TalkerConfig(identity_names=["a", "b", "c"], audio_dim=12, hidden=24, layers=layers,
                                         bidirectional=bidirectional, steps=8, prediction=prediction)).eval()
    audio, ids = torch.randn(4, 37, 12), torch.tensor([2, 0, 1, 2])   # rows 0 and 3 share identity and step
    x_t, t = torch.randn(4, 37, 52), torch.tensor([8, 4, 1, 8])
    with torch.inference_mode():
        cond = model.condition(audio, ids)
        expected = model.denoise(x_t, t, cond)
        decoder = OnnxDecoder(model, threads=2)
        got = decoder.denoise(x_t, t, cond)
        single = decoder.with_one_thread()
        alone = single.denoise(x_t, t, cond)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(alone, got, atol=1e-6, rtol=1e-6)       # the same decoder on one thread
    assert single.session.get_session_options().intra_op_num_threads == 1 and decoder.with_one_thread() is single
    assert decoder.session.get_session_options().intra_op_num_threads == 2
    assert (expected - model.denoise(x_t, t.flip(0), cond)).abs().max() > 1e-3  # the step input matters


def test_pipeline_backends_agree_and_report(toy_checkpoints):
    audio = toy_clip(2, 5, seconds=1.2).audio
    onnx = Talker.from_pretrained(toy_checkpoints, encoder=ToyEncoder(), backend="onnx")
    torch_ = Talker.from_pretrained(toy_checkpoints, encoder=ToyEncoder(), backend="torch")
    for steps in (8, 4):   # ancestral teacher (fresh noise each step) and deterministic student
        a = onnx.generate(audio, steps=steps, seed=11, num_samples=2)
        b = torch_.generate(audio, steps=steps, seed=11, num_samples=2)
        assert (a.decoder, b.decoder) == ("onnx", "torch")
        np.testing.assert_allclose(a.blendshapes, b.blendshapes, atol=1e-4)
    assert Talker.from_pretrained(toy_checkpoints, encoder=ToyEncoder()).generate(audio, steps=4).decoder == "onnx"
    with pytest.raises(ValueError, match="unknown decoder backend"):
        Talker.from_pretrained(toy_checkpoints, backend="tensorrt")


def test_written_onnx_file_runs_in_onnxruntime(toy_checkpoints, tmp_path):
    out = tmp_path / "decoder.onnx"
    export_main([str(toy_checkpoints / "distilled-4"), str(out)])
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    model = DiffusionTalker.from_pretrained(toy_checkpoints / "distilled-4")
    feeds = {"audio": np.zeros((5, 1, model.config.audio_proj_dim), np.float32),
             "x_t": np.zeros((5, 1, 52), np.float32), "bias0": np.zeros((1, 6 * model.config.hidden), np.float32)}
    (x0,) = session.run(None, feeds)
    assert x0.shape == (5, 1, 52) and np.isfinite(x0).all()


@pytest.fixture()
def three_threads():
    saved = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(saved)


@pytest.mark.parametrize("method, prediction", [("ddim", "x0"), ("ddpm", "x0"), ("ddim", "v"), ("ddpm", "v")])
def test_pipelined_steps_equal_step_by_step_sampling(method, prediction, three_threads, monkeypatch):
    from core.inference import onnx_decoder
    from core.model.diffusion import sample
    monkeypatch.setattr(onnx_decoder, "PIPELINE_CHUNK", 7)          # 37 frames: 6 chunks, ragged last one
    torch.manual_seed(3)
    model = DiffusionTalker(TalkerConfig(identity_names=["a", "b"], audio_dim=12, hidden=24, steps=5,
                                         prediction=prediction)).eval()
    with torch.inference_mode():
        cond = model.condition(torch.randn(1, 37, 12).expand(2, -1, -1), torch.tensor([1, 1]))
        expected = sample(model.schedule, lambda x, t: model.denoise(x, t, cond), [4, 5], 37, method=method)
    decoder = OnnxDecoder(model)
    got = decoder.sample(cond, [4, 5], 37, method, rows_share_clip=True)
    assert decoder._stateful is not None                              # the pipeline ran (3 workers)
    torch.testing.assert_close(got, expected, atol=5e-5, rtol=1e-4)
    step_by_step = decoder.sample(cond, [4, 5], 37, method, rows_share_clip=False)
    torch.testing.assert_close(step_by_step, got, atol=5e-5, rtol=1e-4)


def test_batch_of_different_clips_samples_step_by_step(three_threads):
    from core.model.diffusion import sample
    torch.manual_seed(4)
    model = DiffusionTalker(TalkerConfig(identity_names=["a", "b"], audio_dim=12, hidden=24, steps=4)).eval()
    with torch.inference_mode():
        cond = model.condition(torch.randn(2, 20, 12), torch.tensor([0, 0]))      # two clips, one identity
        expected = sample(model.schedule, lambda x, t: model.denoise(x, t, cond), [1, 2], 20, method="ddim")
    decoder = OnnxDecoder(model)
    got = decoder.sample(cond, [1, 2], 20, "ddim", rows_share_clip=False)
    assert decoder._stateful is None                                  # not pipelined: rows need their own audio
    torch.testing.assert_close(got, expected, atol=5e-5, rtol=1e-4)


def test_pipeline_failure_in_one_worker_is_raised_not_hung(three_threads):
    from core.inference.onnx_decoder import StepPipeline

    class Flaky:
        calls = 0

        def run(self, _, feeds):
            Flaky.calls += 1
            if Flaky.calls == 3:
                raise RuntimeError("session broke")
            return [np.zeros_like(feeds["x_t"]), feeds["h0_0"]]

    pipe = StepPipeline(Flaky(), layers=1, hidden=4, workers=3, chunk=2)
    coefficients = ([1.0] * 4,) * 3
    with pytest.raises(RuntimeError, match="session broke"):
        pipe.run(np.zeros((6, 1, 3), np.float32), 6, [None] * 4, coefficients,
                 lambda draw, a, b: np.zeros((b - a, 1, 52), np.float32), ancestral=False)
