"""Speech encoders give one finite feature row per 30 fps frame, seamlessly across windows;
the feature cache returns stored features without calling the encoder."""
import subprocess

import numpy as np
import pytest

from core.audio.decode import duration_frames, load_audio
from core.rates import FPS, SAMPLE_RATE
from core.audio.encoders import EncoderError, SpeechEncoder, get_encoder
from core.audio.windows import overlap_add, to_animation_frames
from core.audio.feature_cache import cache_path, cached_encode

SENTENCES = [
    "Speech drives the face, and every syllable opens the jaw a little.",
    "The lips close for the sounds p, b and m, then open again for the vowel.",
    "A good model follows real voices as well as synthetic ones.",
    "The quick brown fox jumps over the lazy dog while seven wizards hex the jovial boxer.",
    "We measure everything twice, because numbers beat opinions.",
]


def espeak(path, text, rate=150):
    subprocess.run(["espeak-ng", "-s", str(rate), "-w", str(path), text], check=True)
    return load_audio(path)


@pytest.fixture(scope="module")
def sentence(tmp_path_factory):
    return espeak(tmp_path_factory.mktemp("speech") / "one.wav", SENTENCES[1])


@pytest.fixture(scope="module")
def speech_25s(tmp_path_factory):
    """25 s of continuous espeak-ng speech (longer than one 10 s window: three windows)."""
    audio = espeak(tmp_path_factory.mktemp("speech") / "long.wav", " ".join(SENTENCES * 2))
    assert len(audio) >= 25 * SAMPLE_RATE
    return audio[: 25 * SAMPLE_RATE]


def test_whisper_shape_and_values(sentence):
    encoder = get_encoder("whisper-tiny.en")
    features = encoder.encode(sentence)
    assert encoder.dim == 384
    assert features.shape == (duration_frames(len(sentence)), 384)
    assert features.dtype == np.float32 and np.all(np.isfinite(features))
    assert features.std(axis=0).mean() > 0.1          # not constant over time


def test_whisper_int8_close_to_float32(sentence):
    f32 = get_encoder("whisper-tiny.en").encode(sentence)
    i8 = get_encoder("whisper-tiny.en-int8").encode(sentence)
    assert i8.shape == f32.shape
    cosine = np.sum(f32 * i8, axis=1) / (np.linalg.norm(f32, axis=1) * np.linalg.norm(i8, axis=1))
    assert np.median(cosine) > 0.98                   # measured 0.999


def test_whisper_windows_join_without_seams(speech_25s):
    features = get_encoder().encode(speech_25s)
    assert features.shape == (750, 384)
    jumps = np.linalg.norm(np.diff(features, axis=0), axis=1)
    # Windows start at 0, 8 and 16 s and overlap for 2 s: cross-fades start at 8 s and 16 s
    # and end at 10 s and 18 s. Jump i is between frames i and i + 1.
    joins = [s * FPS for s in (8, 10, 16, 18)]
    near = np.zeros(len(jumps), bool)
    for j in joins:
        near[j - 3: j + 3] = True
    # On this fixture the cross-fade measured 0.89x the 99th percentile elsewhere; a hard
    # cut at 8 s (no cross-fade) 1.39x.
    assert jumps[near].max() < 1.2 * np.percentile(jumps[~near], 99)


def testoverlap_add_is_a_linear_crossfade():
    a, b = np.zeros((10, 2)), np.ones((10, 2))
    out = overlap_add([a, b], starts=[0, 6], fade=4)
    assert out.shape == (16, 2)
    np.testing.assert_allclose(out[:6, 0], 0)
    np.testing.assert_allclose(out[6:10, 0], [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(out[10:, 0], 1)


def testto_animation_frames_interpolates_times():
    ramp = np.arange(100, dtype=np.float32)[:, None]       # value = frame index at 50 Hz
    out = to_animation_frames(ramp, rate=50, num_frames=30)
    np.testing.assert_allclose(out[:, 0], np.arange(30) * 50 / 30, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_hubert_dir(tmp_path_factory):
    from transformers import HubertConfig, HubertModel

    config = HubertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=128, conv_dim=(32,) * 7,
                          num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    path = tmp_path_factory.mktemp("tiny_hubert")
    HubertModel(config).save_pretrained(path)              # no preprocessor_config.json
    return path


def test_hubert_from_local_directory(tiny_hubert_dir, sentence):
    encoder = get_encoder(f"hubert:{tiny_hubert_dir}")
    assert encoder.dim == 64
    features = encoder.encode(sentence)
    assert features.shape == (duration_frames(len(sentence)), 64)
    assert np.all(np.isfinite(features))


def test_hubert_long_audio_is_windowed(tiny_hubert_dir, speech_25s):
    audio = np.concatenate([speech_25s, speech_25s])         # 50 s > one 30 s window
    features = get_encoder(f"hubert:{tiny_hubert_dir}").encode(audio)
    assert features.shape == (1500, 64) and np.all(np.isfinite(features))


def test_hubert_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderError, match="local directory"):
        get_encoder("hubert:no-such-org/no-such-hubert")


def test_unknown_encoder_name():
    with pytest.raises(EncoderError, match="whisper-tiny.en"):
        get_encoder("wav2vec-giant")


class CountingEncoder(SpeechEncoder):
    """Loudness per frame; counts calls so the test can see cache hits."""

    name, dim = "counting/test v1", 1

    def __init__(self):
        self.calls = 0

    def encode(self, audio):
        self.calls += 1
        frames = np.array_split(np.abs(audio), duration_frames(len(audio)))
        return np.array([[f.mean()] for f in frames], dtype=np.float32)


def test_feature_cache_hits_and_recovers(tmp_path, sentence):
    encoder = CountingEncoder()
    first = cached_encode(encoder, sentence, cache_dir=tmp_path)
    second = cached_encode(encoder, sentence, cache_dir=tmp_path)
    assert encoder.calls == 1
    np.testing.assert_array_equal(first, second)
    path = cache_path(encoder.name, sentence, tmp_path)
    assert path.is_file() and path.parent.parent.parent == tmp_path
    assert not list(path.parent.glob("*.tmp"))               # atomic write left nothing behind
    cached_encode(encoder, sentence[:-1600], cache_dir=tmp_path)   # other audio: a miss
    assert encoder.calls == 2
    path.write_bytes(b"garbage")                                # damaged entry: recomputed
    np.testing.assert_array_equal(cached_encode(encoder, sentence, cache_dir=tmp_path), first)
    assert encoder.calls == 3


def test_cache_dir_from_environment(tmp_path, monkeypatch, sentence):
    monkeypatch.setenv("DIFFUSIONTALKER_CACHE", str(tmp_path))
    cached_encode(CountingEncoder(), sentence)
    assert len(list(tmp_path.rglob("*.npy"))) == 1


def test_whisper_encoder_flops_hand_value():
    from core.audio.encoder_bench import whisper_encoder_flops
    dims = {"mels": 2, "width": 4, "layers": 1, "ffn": 8}
    # 10 mel frames -> 5 positions: convs 3*2*4*10 + 3*4*4*5; layer 4*5*16 + 2*25*4 + 2*5*4*8
    assert whisper_encoder_flops(10, dims) == 2.0 * (240 + 240 + 320 + 200 + 320)
    assert 9e9 < whisper_encoder_flops() < 1e10     # tiny.en on a 10 s window: about 9.2 GFLOP
