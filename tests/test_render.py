"""Headless face rendering (pyrender + EGL) and mp4 writing (imageio-ffmpeg)."""
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from core.arkit import INDEX, NUM_BLENDSHAPES
from core.face.render import (BACKGROUND, FaceRenderer, render_grid_video, render_video, tile_frames,
                         write_video)

SIZE = 128


def pose(**channels) -> np.ndarray:
    weights = np.zeros(NUM_BLENDSHAPES, np.float32)
    for name, value in channels.items():
        weights[INDEX[name]] = value
    return weights


def probe(path) -> tuple[int, float, str]:
    """(video frames, video seconds, ffmpeg's stream listing) of a media file."""
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    listing = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                             capture_output=True, text=True).stderr
    return frames, seconds, listing


def audio_seconds(listing: str) -> float:
    hours, minutes, seconds = re.search(r"Duration: (\d+):(\d+):([\d.]+)", listing).groups()
    return 3600 * int(hours) + 60 * int(minutes) + float(seconds)


@pytest.fixture(scope="module")
def renderer():
    with FaceRenderer(size=SIZE) as face:
        yield face


def test_frame_shape_and_background(renderer):
    frame = renderer.render_frame(pose())
    assert frame.shape == (SIZE, SIZE, 3) and frame.dtype == np.uint8 and frame.flags.c_contiguous
    np.testing.assert_allclose(frame[0, 0], np.round(np.array(BACKGROUND) * 255), atol=1)
    face = np.abs(frame.astype(int) - frame[0, 0]).sum(axis=2) > 30
    assert 0.2 < face.mean() < 0.9  # the face fills a good part of the picture


def test_open_jaw_changes_the_lower_half(renderer):
    closed = renderer.render_frame(pose()).astype(int)
    opened = renderer.render_frame(pose(jawOpen=1.0)).astype(int)
    changed = np.abs(opened - closed).sum(axis=2) > 40
    assert changed[SIZE // 2:].sum() > 0.02 * SIZE * SIZE
    assert changed[SIZE // 2:].sum() > 5 * changed[:SIZE // 3].sum()
    # Where the lips part the picture darkens: the mouth's inside shows, not more skin.
    was_face = np.abs(closed - closed[0, 0]).sum(axis=2) > 30
    lips = changed & was_face
    assert opened[lips].mean() < closed[lips].mean() - 20


def test_left_blink_shows_on_the_viewers_right(renderer):
    open_eyes = renderer.render_frame(pose()).astype(int)
    blink = renderer.render_frame(pose(eyeBlinkLeft=1.0)).astype(int)
    changed = np.abs(blink - open_eyes).sum(axis=2) > 40
    assert changed[:SIZE // 2, SIZE // 2:].sum() > 10
    assert changed[:, :SIZE // 2].sum() < 0.1 * changed[:, SIZE // 2:].sum()


def test_renderers_of_different_sizes_coexist(renderer):
    small = FaceRenderer(size=(64, 48))
    assert small.render_frame(pose()).shape == (48, 64, 3)
    big = renderer.render_frame(pose())
    small.close()  # must not tear down the GL context the others use
    np.testing.assert_array_equal(renderer.render_frame(pose()), big)
    with pytest.raises(RuntimeError, match="closed"):
        small.render_frame(pose())


def test_renderers_work_from_several_threads(renderer):
    """Gradio calls handlers from worker threads; EGL contexts are bound to one thread."""
    weights = np.random.default_rng(2).uniform(0, 0.6, (4, NUM_BLENDSHAPES))
    expected = np.stack(list(renderer.render_frames(weights)))
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: np.stack(list(renderer.render_frames(weights))), range(3)))
    for frames in results:
        np.testing.assert_array_equal(frames, expected)


def test_rendering_is_deterministic(renderer):
    weights = np.random.default_rng(1).uniform(0, 0.6, NUM_BLENDSHAPES)
    np.testing.assert_array_equal(renderer.render_frame(weights), renderer.render_frame(weights))


@pytest.mark.parametrize("bad", [np.zeros(51), np.zeros((2, NUM_BLENDSHAPES))])
def test_render_frame_rejects_wrong_shapes(renderer, bad):
    with pytest.raises(ValueError, match="weights"):
        renderer.render_frame(bad)


def test_video_with_audio_array_lasts_as_long_as_the_curves(renderer, tmp_path):
    n_frames = 45
    weights = np.zeros((n_frames, NUM_BLENDSHAPES), np.float32)
    weights[:, INDEX["jawOpen"]] = 0.5 + 0.5 * np.sin(np.arange(n_frames) / 3)
    speech = 0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000).astype(np.float32)  # 2 s > 1.5 s
    path = render_video(weights, speech, tmp_path / "talk.mp4", renderer=renderer)
    frames, seconds, listing = probe(path)
    assert frames == n_frames
    assert abs(seconds - n_frames / 30) <= 1 / 30
    assert "Audio: aac" in listing and "Video: h264" in listing
    assert audio_seconds(listing) == pytest.approx(n_frames / 30, abs=0.1)  # trimmed to the video


def test_video_from_wav_path_and_without_audio(tmp_path):
    wav = tmp_path / "short.wav"
    sf.write(wav, np.zeros(8000, np.float32), 16000)  # 0.5 s, padded to 1 s of video
    weights = np.zeros((30, NUM_BLENDSHAPES), np.float32)
    frames, seconds, listing = probe(render_video(weights, wav, tmp_path / "a.mp4", size=64))
    assert frames == 30 and abs(seconds - 1.0) <= 1 / 30 and "Audio: aac" in listing
    frames, _, listing = probe(render_video(weights, None, tmp_path / "b.mp4", size=64))
    assert frames == 30 and "Audio:" not in listing


def test_grid_video_tiles_sequences_side_by_side(tmp_path):
    short = np.zeros((10, NUM_BLENDSHAPES), np.float32)
    long = np.tile(pose(jawOpen=1.0), (20, 1))
    path = render_grid_video([short, long], ["truth", "model"], None, tmp_path / "grid.mp4", size=64)
    frames, _, listing = probe(path)
    assert frames == 20 and "128x88" in listing       # two 64-pixel tiles, each under a 24-pixel caption strip


def test_tile_frames_places_frames_row_by_row():
    frames = [np.full((4, 6, 3), value, np.uint8) for value in (10, 20, 30)]
    grid = tile_frames(frames, cols=2)
    assert grid.shape == (8, 12, 3)
    assert grid[0, 0, 0] == 10 and grid[0, 6, 0] == 20 and grid[4, 0, 0] == 30 and grid[4, 6, 0] == 0
    with pytest.raises(ValueError):
        tile_frames([frames[0], np.zeros((5, 6, 3), np.uint8)], cols=2)
    with pytest.raises(ValueError):
        tile_frames([], cols=1)


def test_bad_video_inputs_raise_value_errors(renderer, tmp_path):
    weights = np.zeros((5, NUM_BLENDSHAPES), np.float32)
    with pytest.raises(ValueError, match="mono"):
        render_video(weights, np.zeros((2, 100), np.float32), tmp_path / "x.mp4", renderer=renderer)
    with pytest.raises(ValueError, match="not found"):
        render_video(weights, tmp_path / "missing.wav", tmp_path / "x.mp4", renderer=renderer)
    with pytest.raises(ValueError, match="weights"):
        render_video(np.zeros((0, NUM_BLENDSHAPES)), None, tmp_path / "x.mp4", renderer=renderer)
    with pytest.raises(ValueError, match="NaN"):
        render_video(np.full((3, NUM_BLENDSHAPES), np.nan), None, tmp_path / "x.mp4", renderer=renderer)
    with pytest.raises(ValueError, match="even"):
        FaceRenderer(size=101)
    with pytest.raises(ValueError, match="frames"):
        write_video([np.zeros((4, 4), np.uint8)], 1, None, tmp_path / "x.mp4")


def _face_centre_x(frame: np.ndarray) -> float:
    face = np.clip(np.abs(frame.astype(float) - frame[0, 0]).sum(axis=2) - 30, 0, None)
    return float((face.sum(axis=0) * np.arange(frame.shape[1])).sum() / face.sum())


def test_the_head_turns_in_the_picture(renderer):
    rest = renderer.render_frame(pose())
    np.testing.assert_array_equal(renderer.render_frame(pose(), head=[0.0, 0.0, 0.0]), rest)   # zeros: still
    turned = renderer.render_frame(pose(), head=[0.5, 0.0, 0.0])
    assert (np.abs(turned.astype(int) - rest).sum(axis=2) > 40).mean() > 0.05
    assert _face_centre_x(turned) > _face_centre_x(rest) + 2        # positive yaw: to the viewer's right
    assert _face_centre_x(renderer.render_frame(pose(), head=[-0.5, 0.0, 0.0])) < _face_centre_x(rest) - 2
    # positive roll tilts the top of the head to the viewer's left
    tilted = renderer.render_frame(pose(), head=[0.0, 0.0, 0.3])
    top = slice(0, SIZE // 3)
    assert _face_centre_x(tilted[top]) < _face_centre_x(rest[top]) - 2


def test_video_follows_the_head_frame_by_frame(renderer, tmp_path):
    n_frames = 12
    head = np.zeros((n_frames, 3), np.float32)
    head[6:, 0] = 0.5
    frames = list(renderer.render_frames(np.zeros((n_frames, NUM_BLENDSHAPES), np.float32), chunk=5, head=head))
    assert np.array_equal(frames[0], frames[5]) and not np.array_equal(frames[5], frames[6])
    assert np.array_equal(frames[6], frames[11])
    path = render_video(np.zeros((n_frames, NUM_BLENDSHAPES)), None, tmp_path / "turn.mp4", renderer=renderer, head=head)
    assert probe(path)[0] == n_frames
    grid = render_grid_video([np.zeros((4, NUM_BLENDSHAPES))] * 2, ["still", "turned"], None, tmp_path / "g.mp4",
                             size=64, heads=[None, np.full((4, 3), 0.3, np.float32)])
    assert probe(grid)[0] == 4


def test_bad_head_angles_raise_value_errors(renderer, tmp_path):
    weights = np.zeros((5, NUM_BLENDSHAPES), np.float32)
    with pytest.raises(ValueError, match="NaN"):
        render_video(weights, None, tmp_path / "x.mp4", renderer=renderer, head=np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match="4 frames of head angles for 5"):
        render_video(weights, None, tmp_path / "x.mp4", renderer=renderer, head=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="radians"):
        renderer.render_frame(pose(), head=[90.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="1 head sequences for 2"):
        render_grid_video([weights, weights], None, None, tmp_path / "g.mp4", heads=[None])
    assert not (tmp_path / "x.mp4").exists()


def test_the_picture_holds_a_turned_head(renderer):
    """The camera frames the head turned FRAME_TURN either way: nothing touches the picture's edge."""
    from core.face.mesh import FRAME_TURN
    for axis in range(3):
        for sign in (1, -1):
            head = np.zeros(3)
            head[axis] = sign * FRAME_TURN
            frame = renderer.render_frame(pose(jawOpen=1.0), head=head)
            face = np.abs(frame.astype(int) - frame[0, 0]).sum(axis=2) > 30
            assert not (face[0].any() or face[-1].any() or face[:, 0].any() or face[:, -1].any()), (axis, sign)
