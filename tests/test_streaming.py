"""The streaming API against the offline path: features of the audio so far, carried decoder
state, replay, the ``python -m core stream`` command."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from core.inference.talker import Talker
from core.rates import FPS, SAMPLE_RATE
from core.audio.stream_features import PrefixFeatures, WhisperStreamFeatures
from core.inference.streaming import DEFAULT_LOOKAHEAD, Stream, frames_due, replay
from core.model.diffusion import frame_noise
from tests.helpers import ToyEncoder, toy_clip


def offline_curves(talker, features, steps, seed, identity=None):
    """``Talker.generate`` on given features: (curves [F, 52], identity)."""
    result = talker.generate(None, steps=steps, seed=seed, identity=identity, features=features)
    return result.blendshapes[0], result.identity


def _stream_all(stream: Stream, audio: np.ndarray, chunk: int) -> np.ndarray:
    outs = [stream.feed(audio[i:i + chunk]) for i in range(0, len(audio), chunk)] + [stream.finish()]
    assert [o.first for o in outs] == list(np.cumsum([0] + [len(o.curves) for o in outs[:-1]]))
    return np.concatenate([o.curves for o in outs])


@pytest.fixture()
def toy_talker(toy_checkpoints):
    return Talker.from_pretrained(toy_checkpoints, encoder=ToyEncoder())


@pytest.mark.parametrize("steps", [4, 8])   # distilled-4 samples with DDIM, teacher-8 ancestrally
def test_stream_equals_offline_decoding_for_every_chunk_size(toy_talker, steps):
    # The toy encoder is local (frame f sees only its own 1/30 s), so with a look-ahead of 2 frames
    # every streamed feature equals the offline one and the curves must be the same up to rounding.
    audio = toy_clip(1, 3, seconds=2.5).audio
    reference, used = offline_curves(toy_talker, ToyEncoder().encode(audio), steps, seed=5, identity="id1")
    assert used == "id1" and reference.shape == (75, 52)
    for chunk in (160, 777, 1600, 4000, len(audio)):
        stream = Stream(toy_talker, steps, seed=5, identity="id1", lookahead=2 / FPS)
        np.testing.assert_allclose(_stream_all(stream, audio, chunk), reference, atol=2e-6)
    other, _ = offline_curves(toy_talker, ToyEncoder().encode(audio), steps, seed=6, identity="id1")
    assert np.abs(other - reference).max() > 1e-3          # the seed matters


@pytest.mark.parametrize("steps", [4, 8])   # DDIM and ancestral DDPM
def test_a_streamed_replay_equals_generate_for_the_same_seed(toy_talker, steps):
    # One reverse process and one noise draw (per frame, from the seed) everywhere: Generate and
    # Live give the same curves for a seed wherever the stream's features equal the offline ones.
    audio = toy_clip(2, 3, seconds=3.0).audio
    offline = toy_talker.generate(audio, steps=steps, seed=11, identity="id0").blendshapes[0]
    stream = Stream(toy_talker, steps, seed=11, identity="id0", lookahead=2 / FPS)
    np.testing.assert_allclose(replay(stream, audio, chunk=0.02).curves, offline, atol=2e-6)
    torch_talker = Talker.from_pretrained(toy_talker.root, encoder=ToyEncoder(), backend="torch")
    on_torch = torch_talker.generate(audio, steps=steps, seed=11, identity="id0").blendshapes[0]
    np.testing.assert_allclose(on_torch, offline, atol=1e-4)


def test_state_is_carried_not_recomputed(toy_talker):
    # Decoding frames [n, F) after [0, n) equals decoding [0, F) only if every step's GRU state is
    # carried over; a fresh state per chunk would change the frames after each boundary.
    audio = toy_clip(2, 1, seconds=2.0).audio
    stream = Stream(toy_talker, 4, seed=0, identity="id2", lookahead=2 / FPS)
    first = stream.feed(audio[: SAMPLE_RATE])
    assert 0 < len(first.curves) < 30 and first.identity == "id2"
    stateless = Stream(toy_talker, 4, seed=0, identity="id2", lookahead=2 / FPS)
    stateless.feed(audio[: SAMPLE_RATE])
    stateless._frames.carried.states.clear()                # what recomputing from scratch would start from
    carried = np.concatenate([stream.feed(audio[SAMPLE_RATE:]).curves, stream.finish().curves])
    fresh = np.concatenate([stateless.feed(audio[SAMPLE_RATE:]).curves, stateless.finish().curves])
    reference, _ = offline_curves(toy_talker, ToyEncoder().encode(audio), 4, seed=0, identity="id2")
    np.testing.assert_allclose(carried, reference[len(first.curves):], atol=2e-6)
    assert np.abs(fresh - carried).max() > 1e-3


def test_frames_come_out_after_the_lookahead_and_noise_depends_only_on_the_frame(toy_talker):
    stream = Stream(toy_talker, 4, seed=0, identity="id0", lookahead=0.3, hop=0.1)
    assert len(stream.feed(np.zeros(int(0.29 * SAMPLE_RATE), np.float32)).curves) == 0
    out = stream.feed(np.zeros(int(0.21 * SAMPLE_RATE), np.float32))      # 0.5 s heard: frames up to 0.2 s
    assert out.stop == frames_due(int(0.5 * SAMPLE_RATE), int(0.3 * SAMPLE_RATE)) == 7
    whole = frame_noise(3, 1, 0, 140)
    np.testing.assert_array_equal(frame_noise(3, 1, 13, 135), whole[13:135])
    assert not np.allclose(frame_noise(4, 1, 0, 140), whole) and not np.allclose(frame_noise(3, 0, 0, 140), whole)


def test_identity_is_matched_from_the_voice_and_kept(toy_talker):
    audio = toy_clip(0, 2, seconds=4.0).audio
    stream = Stream(toy_talker, 4, seed=0, lookahead=0.1, match_after=1.0)
    early = stream.feed(audio[: SAMPLE_RATE // 2])
    assert early.identity in toy_talker.identities()
    stream.feed(audio[SAMPLE_RATE // 2: 2 * SAMPLE_RATE])
    kept = stream.identity
    features = ToyEncoder().encode(audio[: int(1.1 * SAMPLE_RATE)])
    assert kept == toy_talker.model(4).match(torch.from_numpy(features[:30]))[0][0]
    stream.feed(audio[2 * SAMPLE_RATE:])
    assert stream.finish().identity == kept


def test_bad_stream_input_is_refused_clearly(toy_talker):
    with pytest.raises(ValueError, match="look-ahead"):
        Stream(toy_talker, 4, lookahead=5)
    with pytest.raises(ValueError, match="unknown identity"):
        Stream(toy_talker, 4, identity="nobody")
    with pytest.raises(ValueError, match="no model with 3 steps"):
        Stream(toy_talker, 3)
    stream = Stream(toy_talker, 4)
    with pytest.raises(ValueError, match="NaN"):
        stream.feed(np.array([0.0, np.nan], np.float32))
    stream.finish()
    with pytest.raises(ValueError, match="finished"):
        stream.feed(np.zeros(10, np.float32))


def test_replay_reports_latency_per_chunk_and_the_same_curves(toy_talker):
    audio = toy_clip(1, 4, seconds=1.5).audio
    fast = replay(Stream(toy_talker, 4, seed=2, identity="id1"), audio, chunk=0.02)
    again = replay(Stream(toy_talker, 4, seed=2, identity="id1"), audio, chunk=0.1)
    np.testing.assert_allclose(fast.curves, again.curves, atol=2e-6)      # a stream equals itself on replay
    summary = fast.summary()
    assert summary["frames"] == 45 and summary["rtf"] > 0
    assert 0 < summary["latency_ms_p50"] <= summary["latency_ms_p95"]
    assert len(fast.log) == 75 and sum(row["frames_out"] for row in fast.log) <= 45
    before = int(DEFAULT_LOOKAHEAD / 0.02)                                # chunks that end before the look-ahead
    assert all(row["latency_ms"] is None for row in fast.log[:before]) and fast.log[before]["latency_ms"] is not None


def test_prefix_features_are_the_offline_features_of_the_audio_so_far():
    audio = toy_clip(0, 0, seconds=1.0).audio
    features = PrefixFeatures(ToyEncoder())
    features.push(audio[:8000])
    (got,) = features.run([features.plan(5, 12)])
    np.testing.assert_array_equal(got, ToyEncoder().encode(audio[:8000])[5:12])


def _speechlike(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    voiced = 0.3 * np.sin(2 * np.pi * 150 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) ** 2
    return (voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_whisper_stream_features_equal_offline_features_of_the_prefix():
    from core.audio.encoders import get_encoder
    encoder = get_encoder()
    audio = _speechlike(19.0)
    stream = WhisperStreamFeatures(encoder)
    heard = 0
    # inside the first window, exactly at its end (Whisper reflects there), in the 2 s overlap, past it
    for end in (4000, 160000, 163200, 200000, 272000, len(audio)):
        stream.push(audio[heard:end])
        heard = end
        stop = -(-end * FPS // SAMPLE_RATE)
        stop = min(stop, len(encoder.encode(audio[:end])))
        first = max(0, stop - 20)
        stream.forget_before(first)
        (got,) = stream.run([stream.plan(first, stop)])
        np.testing.assert_allclose(got, encoder.encode(audio[:end])[first:stop], atol=1e-4)
    assert len(stream._audio) <= 12 * SAMPLE_RATE        # old audio is dropped


def test_whisper_stream_memory_stays_bounded():
    from core.audio.encoders import get_encoder
    stream = WhisperStreamFeatures(get_encoder())
    chunk = _speechlike(1.0)
    for second in range(1, 61):
        stream.push(chunk)
        stream.forget_before(max(0, (second - 1) * FPS))
    assert len(stream._audio) <= 12 * SAMPLE_RATE and stream._power.shape[1] <= 1200


def test_experiment_shortcut_equals_the_stream(whisper_checkpoints):
    from core.audio.stream_features import stream_features
    from experiments.live import streamed_features
    talker = Talker.from_pretrained(whisper_checkpoints)
    audio = _speechlike(2.43)
    features = streamed_features(stream_features(talker.encoder()), audio, [0.0, 0.2])
    for lookahead, feats in features.items():
        stream = Stream(talker, 2, seed=1, identity="a", lookahead=lookahead)
        reference, _ = offline_curves(talker, feats, 2, seed=1, identity="a")
        np.testing.assert_allclose(_stream_all(stream, audio, 500), reference, atol=1e-5)


def test_a_stream_reads_another_precision_of_its_encoder_and_refuses_another_encoder(whisper_checkpoints, toy_talker):
    from core.audio.encoders import variant_of
    from core.audio.stream_features import stream_features
    from experiments.live import streamed_features
    talker = Talker.from_pretrained(whisper_checkpoints)
    int8 = variant_of(talker.encoder(), "int8")
    assert int8.name == "whisper-tiny.en-int8" and variant_of(int8, "int8") is int8 and variant_of(int8, threads=1).threads == 1
    audio = _speechlike(2.43)
    got = _stream_all(Stream(talker, 2, seed=1, identity="a", lookahead=0.2, encoder=int8, one_thread=True), audio, 500)
    apart = {}
    for encoder in (int8, talker.encoder()):
        reference, _ = offline_curves(talker, streamed_features(stream_features(encoder), audio, [0.2])[0.2], 2, seed=1,
                                      identity="a")
        apart[encoder.name] = np.abs(got - reference).mean()
    # int8 products differ a little with the batch of windows they are computed in, float32's far more
    assert apart["whisper-tiny.en-int8"] < 1e-3 and apart["whisper-tiny.en"] > 3 * apart["whisper-tiny.en-int8"]
    with pytest.raises(ValueError, match="another encoder"):
        Stream(toy_talker, 4, encoder=int8)


def test_stream_command_prints_chunk_latency_and_one_json_line(whisper_checkpoints, tmp_path, capsys):
    from core.__main__ import main
    wav = tmp_path / "speech.wav"
    sf.write(wav, _speechlike(1.5), SAMPLE_RATE)
    out = tmp_path / "curves.npy"
    assert main(["--checkpoints", str(whisper_checkpoints), "stream", str(wav), "--steps", "2",
                 "--chunk-ms", "50", "--json", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 31 and lines[0].startswith("chunk ending")
    summary = json.loads(lines[-1])
    assert set(summary) == {"latency_ms_p50", "latency_ms_p95", "rtf", "frames"} and summary["frames"] == 45
    assert np.load(out).shape == (45, 52)
    assert main(["--checkpoints", str(whisper_checkpoints), "stream", str(tmp_path / "missing.wav")]) == 2
    assert "error:" in capsys.readouterr().err


def test_stream_with_audio_lookahead_equals_offline(tmp_path):
    # A model that also sees the features 3 frames later: the stream holds each frame back until
    # they are heard (even with a shorter look-ahead asked for) and equals whole-clip decoding.
    from tests.helpers import tiny_model
    tiny_model(steps=4, audio_lookahead=3).save_pretrained(tmp_path / "teacher-4")
    talker = Talker.from_pretrained(tmp_path / "teacher-4", encoder=ToyEncoder())
    audio = toy_clip(1, 4, seconds=2.0).audio
    reference, _ = offline_curves(talker, ToyEncoder().encode(audio), 4, seed=3, identity="id1")
    for chunk in (160, 1600, len(audio)):
        stream = Stream(talker, 4, seed=3, identity="id1", lookahead=1 / FPS)
        np.testing.assert_allclose(_stream_all(stream, audio, chunk), reference, atol=2e-6)
    stream = Stream(talker, 4, seed=3, identity="id1", lookahead=1 / FPS)
    out = stream.feed(audio[: SAMPLE_RATE])            # 30 frames heard: 27 have their later features
    assert out.stop == 27


@pytest.mark.parametrize("steps", [4, 8])   # deterministic DDIM and ancestral DDPM noise
def test_bidirectional_stream_decodes_windows_with_the_offline_noise(tmp_path, steps):
    # A bidirectional decoder needs the frames after each frame: the stream decodes a window (the
    # context before, every frame heard after) and keeps the due frames. A window that covers the
    # whole clip gives exactly the offline curves; a short one comes close to them, much closer
    # than another seed's.
    from tests.helpers import tiny_model
    model = tiny_model(steps=steps, bidirectional=True, audio_lookahead=2)
    model.config.sampler = "ddim" if steps == 4 else "ddpm"
    model.save_pretrained(tmp_path / "bi")
    talker = Talker.from_pretrained(tmp_path / "bi", encoder=ToyEncoder())
    audio = toy_clip(1, 4, seconds=2.0).audio
    features = ToyEncoder().encode(audio)
    reference, _ = offline_curves(talker, features, steps, seed=3, identity="id1")
    other, _ = offline_curves(talker, features, steps, seed=4, identity="id1")
    whole = Stream(talker, steps, seed=3, identity="id1", lookahead=2.0, context=2.0)
    np.testing.assert_allclose(_stream_all(whole, audio, 1600), reference, atol=2e-5)
    live = Stream(talker, steps, seed=3, identity="id1", lookahead=0.3, context=0.5)
    curves = _stream_all(live, audio, 1600)
    assert curves.shape == reference.shape
    near, seeds_apart = np.abs(curves - reference).mean(), np.abs(other - reference).mean()
    assert near < 0.25 * seeds_apart, (near, seeds_apart)


@pytest.fixture()
def head_emotion_talker(tmp_path):
    """A tiny model of the new family: three head channels and the emotion condition, its emotion
    projection made non-zero (a trained model's is; zeros would hide an emotion that never arrives)."""
    from core.emotion import AXES
    from tests.helpers import tiny_model
    model = tiny_model(steps=4, head_channels=3, emotions=list(AXES))
    with torch.no_grad():
        model.emotion_projection.weight.normal_(0, 2.0)
    model.save_pretrained(tmp_path / "teacher-4")
    return Talker.from_pretrained(tmp_path / "teacher-4", encoder=ToyEncoder())


def test_a_stream_with_emotion_and_head_equals_generate(head_emotion_talker):
    # The emotion reaches the condition, the head's channels get their own noise and the
    # strengths shape every chunk: a replay equals Talker.generate, head included.
    from core.inference.controls import Controls
    talker, audio = head_emotion_talker, toy_clip(1, 5, seconds=2.0).audio
    controls = Controls.checked("happy", 0.8, True, 1.5, 0.5)
    offline = talker.generate(audio, steps=4, seed=7, identity="id1", controls=controls)
    live = replay(Stream(talker, 4, seed=7, identity="id1", lookahead=2 / FPS, controls=controls), audio, chunk=0.05)
    assert live.curves.shape == (60, 52) and live.head.shape == (60, 3) and live.head.dtype == np.float32
    np.testing.assert_allclose(live.curves, offline.blendshapes[0], atol=2e-6)
    np.testing.assert_allclose(live.head, offline.head[0], atol=2e-6)
    assert np.abs(live.head).max() > 1e-3                          # the model's head moves
    neutral = replay(Stream(talker, 4, seed=7, identity="id1", lookahead=2 / FPS), audio, chunk=0.05)
    assert np.abs(neutral.curves - live.curves).max() > 1e-3       # the emotion and strengths matter
    still = replay(Stream(talker, 4, seed=7, identity="id1", lookahead=2 / FPS,
                          controls=Controls(emotion="happy", intensity=0.8, head_motion=False)), audio, chunk=0.05)
    assert not still.head.any() and np.abs(still.curves - neutral.curves).max() > 1e-3


def test_a_stream_refuses_an_emotion_its_model_never_learnt(toy_talker):
    from core.inference.controls import Controls
    with pytest.raises(ValueError, match="The 4-step model was trained without emotions; choose neutral"):
        Stream(toy_talker, 4, controls=Controls(emotion="sad"))
    out = replay(Stream(toy_talker, 4, seed=1, identity="id0", controls=Controls(upper_strength=0.0)),
                 toy_clip(0, 1, seconds=1.0).audio)
    assert out.head.shape == (30, 3) and not out.head.any()        # no head channels: a still head
    from core.inference.controls import UPPER
    assert not out.curves[:, list(UPPER)].any()                    # upper face strength 0: still brows and eyes
