"""load_audio: every supported input becomes clean 16 kHz mono; bad input fails clearly."""
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from core.audio import (MAX_SECONDS, MIN_SECONDS, SAMPLE_RATE, AudioError, duration_frames,
                        load_audio)


def tone(seconds=1.0, rate=SAMPLE_RATE, freq=440.0, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(x):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * SAMPLE_RATE / len(x)


def assert_clean_tone(x, seconds=1.0, freq=440.0, amp=0.5, tol=0.03):
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - seconds * SAMPLE_RATE) <= 0.01 * SAMPLE_RATE
    assert abs(dominant_freq(x) - freq) < 3
    assert abs(np.abs(x[1000:-1000]).max() - amp) < tol   # no loudness normalisation
    assert abs(x.mean()) < 1e-3


def test_wav_44k_stereo_int16(tmp_path):
    rate = 44100
    stereo = np.stack([tone(1, rate), tone(1, rate)], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, (stereo * 32767).astype(np.int16), rate, subtype="PCM_16")
    assert_clean_tone(load_audio(path))


def test_wav_8k_upsampled(tmp_path):
    path = tmp_path / "phone.wav"
    sf.write(path, tone(1, 8000, freq=300), 8000)
    assert_clean_tone(load_audio(path), freq=300)


def test_float_wav_with_dc_offset(tmp_path):
    path = tmp_path / "float.wav"
    sf.write(path, tone() + 0.2, SAMPLE_RATE, subtype="FLOAT")
    assert_clean_tone(load_audio(str(path)))


@pytest.mark.parametrize("suffix", [".flac", ".ogg"])
def test_flac_and_ogg(tmp_path, suffix):
    path = tmp_path / f"tone{suffix}"
    sf.write(path, tone(1, 22050), 22050)
    assert_clean_tone(load_audio(path), tol=0.05)   # vorbis is lossy


def ffmpeg_tone(path, seconds=1):
    """Encode a 440 Hz stereo tone with the bundled ffmpeg (codec chosen by the suffix)."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi",
           "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
           "-filter:a", "volume=0.5", "-ac", "2", str(path)]
    subprocess.run(cmd, check=True)
    return path


@pytest.mark.parametrize("suffix", [".mp3", ".m4a"])
def test_compressed_formats_via_ffmpeg(tmp_path, suffix):
    x = load_audio(ffmpeg_tone(tmp_path / f"tone{suffix}"))
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) / SAMPLE_RATE - 1.0) < 0.1   # codecs add a little priming/padding
    assert abs(dominant_freq(x) - 440) < 3


def test_gradio_tuple_int16_and_clipping():
    stereo = (np.stack([tone(1, 48000)] * 2, axis=1) * 32767).astype(np.int16)
    assert_clean_tone(load_audio((48000, stereo)))
    loud = load_audio((SAMPLE_RATE, tone(amp=3.0)))      # float beyond full scale
    assert np.abs(loud).max() <= 1.0 + 1e-6 and np.abs(loud).max() > 0.99


def test_bare_array_is_16k():
    x = load_audio(tone(0.5, freq=1000).astype(np.float64))
    assert len(x) == SAMPLE_RATE // 2 and x.dtype == np.float32


def test_duration_frames():
    assert duration_frames(SAMPLE_RATE) == 30
    assert duration_frames(SAMPLE_RATE * 10) == 300
    assert duration_frames(800) == 2          # 1.5 frames rounds half up
    assert duration_frames(799) == 1
    assert duration_frames(0) == 0


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200)), "not a sound file"),
    (lambda p: sf.write(p, np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE), "silent"),
    (lambda p: sf.write(p, tone(MIN_SECONDS / 2), SAMPLE_RATE), "too short"),
])
def test_bad_files(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")


def test_bad_arrays():
    x = tone()
    x[100] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        load_audio(x)
    with pytest.raises(AudioError, match="no audio"):
        load_audio((SAMPLE_RATE, np.zeros(0, np.int16)))
    with pytest.raises(AudioError, match="too long"):
        load_audio(tone(3), max_seconds=2)


def test_too_long_file_is_rejected_before_decoding(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, tone(3, 8000), 8000)
    with pytest.raises(AudioError, match="too long"):
        load_audio(path, max_seconds=2)
    with pytest.raises(AudioError, match="too long"):
        load_audio(ffmpeg_tone(tmp_path / "long.mp3", seconds=3), max_seconds=2)
    assert MAX_SECONDS >= 60
