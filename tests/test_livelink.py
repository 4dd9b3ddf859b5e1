import numpy as np
import pytest
import soundfile as sf

from core.arkit import NUM_BLENDSHAPES
from core.audio.decode import load_audio
from core.data.livelink import load_livelink_folder
from core.data.takes import CHUNK_FRAMES, resample_curves
from core.face.export import export_curves


def speech_like(seconds, rate=16000, seed=0):
    """Non-silent test audio: a tone with a little noise."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.01, len(t))
    return (0.3 * np.sin(2 * np.pi * 180 * t) + noise).astype(np.float32)


def make_take(folder, name, seconds, fps, audio_seconds=None, seed=0):
    """A Live Link Face take: CSV at ``fps`` plus a 16 kHz wav; returns the curves."""
    frames = int(round(seconds * fps))
    curves = np.random.default_rng(seed).random((frames, NUM_BLENDSHAPES)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    export_curves(curves, folder / f"{name}.csv", fps=fps)
    sf.write(folder / f"{name}.wav", speech_like(audio_seconds or seconds, seed=seed), 16000)
    return curves


def test_60fps_take_becomes_30fps_ten_second_clips(tmp_path):
    folder = tmp_path / "alice"
    curves = make_take(folder, "Slate1_3_iPhone", 12.5, fps=60)
    clips = load_livelink_folder(folder)
    assert len(clips) == 1                                   # 375 frames: one chunk, tail dropped
    clip = clips[0]
    assert clip.identity == "alice" and clip.split == "train"
    assert clip.frames == CHUNK_FRAMES
    np.testing.assert_array_equal(clip.blendshapes, curves[::2][:CHUNK_FRAMES])
    audio = clip.load_audio()
    assert len(audio) == 160000
    np.testing.assert_array_equal(audio, load_audio(folder / "Slate1_3_iPhone.wav")[:160000])
    assert clip.extras["capture_fps"] == 60 and clip.extras["start_frame"] == 0


def test_short_tails_kept_on_request_with_matching_audio(tmp_path):
    folder = tmp_path / "capture"
    make_take(folder, "a", 12.5, fps=30)
    make_take(folder / "day2", "b", 4.0, fps=30, seed=1)
    clips = load_livelink_folder(folder, identity="bob", split="val", min_frames=60)
    assert [c.frames for c in clips] == [300, 75, 120]
    assert {c.identity for c in clips} == {"bob"} and {c.split for c in clips} == {"val"}
    assert len({c.id for c in clips}) == 3
    for clip in clips:
        assert abs(len(clip.load_audio()) - clip.frames * 16000 / 30) < 1


def test_audio_and_animation_of_different_lengths(tmp_path):
    make_take(tmp_path / "c", "take", 12.0, fps=30, audio_seconds=8.0)
    with pytest.raises(ValueError, match="audio lasts 8.00 s but the animation 12.00 s"):
        load_livelink_folder(tmp_path / "c")
    make_take(tmp_path / "d", "take", 10.0, fps=30, audio_seconds=10.3)   # within tolerance
    (clip,) = load_livelink_folder(tmp_path / "d")
    assert len(clip.load_audio()) == 160000


def test_folders_without_takes(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_livelink_folder(tmp_path / "nowhere")
    folder = tmp_path / "e"
    make_take(folder, "take", 10.0, fps=30)
    (folder / "take.wav").unlink()
    with pytest.raises(ValueError, match="no Live Link Face take found.*take.csv"):
        load_livelink_folder(folder)
    make_take(folder, "good", 10.0, fps=30)
    with pytest.warns(UserWarning, match="without audio: take.csv"):
        assert len(load_livelink_folder(folder)) == 1
    make_take(folder, "good", 5.0, fps=30)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="shorter than 300 frames"):
        load_livelink_folder(folder)


def test_resample_curves():
    curves = np.random.default_rng(0).random((7, 3)).astype(np.float32)
    np.testing.assert_array_equal(resample_curves(curves, 60, 30), curves[::2])
    np.testing.assert_array_equal(resample_curves(curves, 30, 30), curves)
    ramp = np.arange(5, dtype=np.float32)[:, None]          # 5 frames at 24 fps -> 6 at 30 fps
    np.testing.assert_allclose(resample_curves(ramp, 24, 30)[:, 0], [0, 0.8, 1.6, 2.4, 3.2, 4.0], atol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        resample_curves(curves, 0, 30)
