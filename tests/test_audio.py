"""load_audio: every supported input becomes clean 16 kHz mono; bad input fails clearly."""
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from core.audio.decode import (MAX_RATE, MAX_SECONDS, MIN_RATE, MIN_SECONDS, SAMPLE_RATE, AudioError, duration_frames,
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


# --------------------------------------------------------------------------- hostile and odd files

def wav_with_rate(path, rate: int, samples: np.ndarray) -> None:
    """A 16-bit WAV whose header declares ``rate`` (the wave module accepts any rate)."""
    import wave
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(rate)
        fh.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


@pytest.mark.parametrize("rate", [1, MIN_RATE - 1, MAX_RATE + 1, 6_000_011])
def test_rates_outside_the_range_are_refused_before_any_work(tmp_path, rate):
    path = tmp_path / "odd.wav"
    wav_with_rate(path, rate, tone(0.01, 16000))
    with pytest.raises(AudioError, match=f"{rate} Hz.*4 to 384 kHz"):
        load_audio(path)
    with pytest.raises(AudioError, match="4 to 384 kHz"):
        load_audio((rate, tone(1.0)))


@pytest.mark.parametrize("rate", [MIN_RATE, 4_001, 22_051, 44_100, 383_987])
def test_any_accepted_rate_resamples_to_the_right_length_and_pitch(rate):
    audio = tone(2.0, rate, freq=300.0)
    out = load_audio((rate, audio))
    assert abs(len(out) - 2.0 * SAMPLE_RATE) <= 1 + 2.5e-5 * 2.0 * SAMPLE_RATE
    assert abs(dominant_freq(out) - 300.0) < 3


def test_a_25_mb_upload_at_a_prime_rate_stays_within_memory(tmp_path):
    import tracemalloc
    path = tmp_path / "prime.wav"
    rate = 383_987                                    # a prime: the exact ratio would be 16000/383987
    n = 12_500_000                                    # 25 MB of 16-bit samples, 32.6 s
    wav_with_rate(path, rate, 0.3 * np.sin(np.arange(n) * (2 * np.pi * 200 / rate)))
    tracemalloc.start()
    out = load_audio(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert abs(len(out) - n * SAMPLE_RATE / rate) <= 1 + 2.5e-5 * len(out)
    assert peak < 300e6


def test_stream_flac_of_unknown_length_is_read(tmp_path):
    """``ffmpeg ... -f flac -`` cannot seek back to write the length: libsndfile reports 2**63 - 1 frames."""
    src = tmp_path / "a.wav"
    sf.write(src, tone(1.5), SAMPLE_RATE)
    data = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(src), "-f", "flac", "-"],
                          check=True, capture_output=True).stdout
    (tmp_path / "stream.flac").write_bytes(data)
    assert sf.info(str(tmp_path / "stream.flac")).frames > 2 ** 62
    assert_clean_tone(load_audio(tmp_path / "stream.flac"), seconds=1.5)


def test_files_that_point_to_other_files_are_never_followed(tmp_path, monkeypatch):
    """Playlists (absolute and relative names), concat lists and SDP must not decode what they name."""
    target = tmp_path / "secret.mp3"
    sf.write(tmp_path / "secret.wav", tone(2.0), SAMPLE_RATE)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / "secret.wav"), str(target)],
                   check=True)
    assert len(load_audio(target)) > SAMPLE_RATE      # the file itself is fine to decode
    playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\n{}\n#EXT-X-ENDLIST\n"
    files = {"absolute.m3u8": playlist.format(target), "relative.m3u8": playlist.format(target.name),
             "list.ffconcat": f"ffconcat version 1.0\nfile {target}\n",
             "list.txt": f"file '{target}'\n",
             "stream.sdp": "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 0\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(AudioError, match="not a sound file"):
            load_audio(tmp_path / name)


def test_an_array_with_no_channel_side_is_called_what_it_is():
    with pytest.raises(AudioError, match=r"shape \(9, 16000\).*\[samples, channels\]"):
        load_audio((SAMPLE_RATE, np.full((9, SAMPLE_RATE), 0.1, np.float32)))
