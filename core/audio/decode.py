"""Audio input: anything a user or a data loader hands us -> float32 16 kHz mono.

One entry point, :func:`load_audio`, so that the demo, training and evaluation all see
exactly the same samples for the same recording. It accepts

* a path: wav/flac/ogg are read with soundfile (libsndfile); anything else (mp3, m4a,
  webm, video files ...) or a file libsndfile rejects is decoded by the static ffmpeg
  shipped in the ``imageio-ffmpeg`` wheel, piped out as 16 kHz mono float32;
* a ``(sample_rate, array)`` tuple as Gradio's ``gr.Audio(type="numpy")`` gives it
  (int16/int32/uint8/float, mono ``[n]`` or ``[n, channels]``);
* a bare 1-D float array, taken to be 16 kHz already.

Only the given bytes are ever decoded: ffmpeg reads the one file through its ``file``
protocol alone and may only use the audio/video container demuxers of
:data:`FFMPEG_DEMUXERS`, so playlists (HLS), concat lists, SDP and image sequences, which
would open further files or the network, are refused as "not a sound file".

Clean-up is deliberately mild: channels are averaged, the DC offset is removed, the
signal is resampled with a polyphase filter (:mod:`core.audio.resample`, its ratio kept
small so that any accepted rate costs bounded time and memory) and scaled down only if it
would clip. Loudness is otherwise left alone - the speech encoders do
their own normalisation and a quiet speaker should stay recognisably quiet.

Every way the input can be unusable raises :class:`AudioError` (a ``ValueError``) with a
message meant for the person who uploaded the file.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

from core.audio.resample import resample
from core.rates import FPS, SAMPLE_RATE

MIN_SECONDS = 0.3            # shorter than this holds no syllable worth animating
MAX_SECONDS = 600.0          # default upper bound (10 min) to keep memory and time sane
MAX_REQUEST_SECONDS = 120.0  # one app / API request (rendering time grows with length)
SILENCE_PEAK = 1e-4          # peak amplitude (full scale = 1) below which audio is "silent"
MIN_RATE, MAX_RATE = 4_000, 384_000   # Hz accepted: telephone band and below to studio rates
MAX_CHANNELS = 8
# ffmpeg demuxers allowed to read an input: containers of one recording, none that opens other
# files or URLs (hls, concat, sdp, image2 ... are left out). "mov" covers mp4/m4a/3gp.
FFMPEG_DEMUXERS = ("wav,w64,aiff,flac,ogg,mp3,aac,ac3,mov,matroska,webm,amr,caf,au,wv,asf,avi,flv,"
                   "mpegts")
UNKNOWN_LENGTH = 2 ** 62     # libsndfile's frame count for streams whose length the header omits

# libsndfile reads these reliably; everything else goes straight to ffmpeg.
_SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".w64"}


class AudioError(ValueError):
    """The input cannot be used as speech; the message says why, in plain words."""


def duration_frames(num_samples: int, fps: int = FPS, sample_rate: int = SAMPLE_RATE) -> int:
    """Number of animation frames for ``num_samples`` of audio: round(seconds * fps).

    Integer arithmetic with halves rounded up, so the answer never depends on float
    rounding and every module (encoders, data, video) agrees on the frame count.
    """
    return (2 * int(num_samples) * fps + sample_rate) // (2 * sample_rate)


def load_audio(source, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Return ``source`` as a float32 16 kHz mono array (see module docstring).

    Raises :class:`AudioError` for a missing, unreadable, empty, too short, too long,
    silent or non-finite input.
    """
    if isinstance(source, (str, os.PathLike)):
        samples, rate = _read_file(Path(source), max_seconds)
        what = f"'{Path(source).name}'"
    elif isinstance(source, tuple):
        if len(source) != 2:
            raise AudioError("Expected audio as a (sample_rate, samples) pair.")
        rate, samples = source
        samples, rate, what = _to_float(np.asarray(samples)), _checked_rate(rate, "the audio"), "the audio"
    elif isinstance(source, np.ndarray):
        samples, rate, what = _to_float(source), SAMPLE_RATE, "the audio"
    else:
        raise AudioError(f"Cannot read audio from a {type(source).__name__}; "
                         "give a file path, a (sample_rate, array) pair or a 16 kHz array.")
    return _clean(samples, rate, what, max_seconds)


def _read_file(path: Path, max_seconds: float) -> tuple[np.ndarray, int]:
    """Decode a file to float32 ``[n, channels]`` plus its sample rate."""
    if not path.exists():
        raise AudioError(f"Audio file not found: {path}")
    if not path.is_file():
        raise AudioError(f"Not a file: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"The file '{path.name}' is empty (0 bytes).")
    if path.suffix.lower() in _SOUNDFILE_SUFFIXES:
        import soundfile as sf
        try:
            info = sf.info(str(path))
            rate = _checked_rate(info.samplerate, f"'{path.name}'")
            if info.frames < UNKNOWN_LENGTH:     # else (a streamed FLAC): read up to the limit and see
                _check_length(info.frames / rate, f"'{path.name}'", max_seconds)
            data, _ = sf.read(str(path), frames=int((max_seconds + 1) * rate), dtype="float32", always_2d=True)
            return data, rate
        except AudioError:
            raise
        except Exception:
            pass  # e.g. a wav with an exotic codec: let ffmpeg have a go
    return _ffmpeg_decode(path, max_seconds)[:, None], SAMPLE_RATE


def _ffmpeg_decode(path: Path, max_seconds: float) -> np.ndarray:
    """Decode any container/codec ffmpeg knows to 16 kHz mono float32 through a pipe.

    Reading stops a little past ``max_seconds`` so a huge file cannot fill memory; the
    length check in :func:`_clean` then reports it as too long.
    """
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-protocol_whitelist", "file",
           "-format_whitelist", FFMPEG_DEMUXERS, "-i", f"file:{path.resolve()}",
           "-t", f"{max_seconds + 1:.3f}", "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE),
           "-f", "f32le", "-"]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        hint = f" (ffmpeg: {detail[-1]})" if detail else ""
        if any("not on whitelist" in line for line in detail):
            hint = (" (ffmpeg found a format that is not a recording: an image, or a playlist or list that names "
                    "other files, which are never opened)")
        raise AudioError(f"Could not read '{path.name}' as audio: the file is corrupt or "
                         f"not a sound file{hint}.")
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)


def _to_float(samples: np.ndarray) -> np.ndarray:
    """Integer PCM -> float in [-1, 1]; shape -> ``[n, channels]``."""
    if samples.dtype.kind == "i":
        scale = float(2 ** (8 * samples.dtype.itemsize - 1))
        samples = samples.astype(np.float32) / scale
    elif samples.dtype.kind == "u":
        half = float(2 ** (8 * samples.dtype.itemsize - 1))
        samples = (samples.astype(np.float32) - half) / half
    elif samples.dtype.kind == "f":
        samples = samples.astype(np.float32, copy=False)
    else:
        raise AudioError(f"Audio samples of type {samples.dtype} are not supported.")
    if samples.ndim == 1:
        return samples[:, None]
    if samples.ndim == 2:
        # [channels, n] layouts (torch/librosa style) are recognised by their few rows.
        if samples.shape[0] <= MAX_CHANNELS < samples.shape[1]:
            samples = samples.T
        if samples.shape[1] > MAX_CHANNELS:
            raise AudioError(f"Audio of shape {samples.shape} has no side of at most {MAX_CHANNELS} channels; "
                             "give [samples] or [samples, channels].")
        return samples
    raise AudioError(f"Audio must be 1-D or [samples, channels]; got shape {samples.shape}.")


def _checked_rate(rate, what: str) -> int:
    """The sample rate as an int within [MIN_RATE, MAX_RATE], else an AudioError saying so."""
    try:
        rate = int(rate)
    except (TypeError, ValueError, OverflowError):
        raise AudioError(f"Invalid sample rate {rate!r}.") from None
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{what.capitalize()} declares a sample rate of {rate} Hz; speech is accepted at "
                         f"{MIN_RATE // 1000} to {MAX_RATE // 1000} kHz.")
    return rate


def read_pcm16(data: bytes, rate, max_seconds: float) -> tuple[np.ndarray, int]:
    """One upload of a live stream: raw 16-bit little-endian mono PCM at ``rate`` Hz, as the page's
    recorder sends it (``demo/static/microphone.js``) -> (float32 [n] in [-1, 1), rate), or
    :class:`AudioError`.

    Nothing is parsed but a length and a rate, both checked before anything is allocated: no header
    or container can claim a length, and no name or content can make the server open a file. Empty
    data gives no samples.
    """
    rate = _checked_rate(rate, "the microphone's audio")
    if len(data) % 2:
        raise AudioError("The microphone's audio arrived cut in the middle of a sample (an odd number of "
                         "bytes); press Record again.")
    if len(data) // 2 > max_seconds * rate:
        raise AudioError(f"The microphone sent {len(data) / 2 / rate:.1f} s of audio at once; a live upload may "
                         f"be at most {max_seconds:g} s. Press Record again.")
    return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0, rate


def _check_length(seconds: float, what: str, max_seconds: float) -> None:
    if seconds <= 0:
        raise AudioError(f"{what.capitalize()} contains no audio samples.")
    if seconds < MIN_SECONDS:
        raise AudioError(f"{what.capitalize()} is too short ({seconds:.2f} s); "
                         f"at least {MIN_SECONDS} s of speech is needed.")
    if seconds > max_seconds:
        raise AudioError(f"{what.capitalize()} is too long ({seconds:.0f} s); "
                         f"the limit is {max_seconds:.0f} s.")


def _clean(samples: np.ndarray, rate: int, what: str, max_seconds: float) -> np.ndarray:
    """[n, channels] float at ``rate`` -> validated, DC-free, clip-safe 16 kHz mono."""
    rate = _checked_rate(rate, what)
    _check_length(samples.shape[0] / rate, what, max_seconds)
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{what.capitalize()} contains invalid samples (NaN or infinity).")
    mono = samples.mean(axis=1, dtype=np.float64)
    mono -= mono.mean()
    if np.max(np.abs(mono)) < SILENCE_PEAK:
        raise AudioError(f"{what.capitalize()} is silent; nothing to animate.")
    if rate != SAMPLE_RATE:
        mono = resample(mono, rate)
    peak = np.max(np.abs(mono))
    if peak > 1.0:
        mono /= peak
    return mono.astype(np.float32)
