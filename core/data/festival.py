"""Festival voices with per-phone timings: the diphone voices kal and ked, the HTS voice slt.

Festival runs a small Scheme script per utterance and prints every segment with its end time,
so the timings come from the synthesiser itself (no alignment needed). Its phone set for these
US voices is ARPAbet-like (``ax``, ``pau``), mapped like flite's.

    apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from core.data.phones import Phone, parse_end_times
from core.data.voices import FESTIVAL_VOICES, Voice, engine_audio
from core.rates import SAMPLE_RATE

# HTS voices ignore Duration_Stretch: their rate is set by a time stretch of the audio instead.
_STRETCH_IGNORED = {"cmu_us_slt_arctic_hts"}


def _scheme_string(text: str) -> str:
    """``text`` as a Scheme string literal (quotes and backslashes escaped, one line)."""
    flat = " ".join(text.split())
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _script(text: str, voice: Voice, wav: Path) -> str:
    stretch = 1.0 if voice.name in _STRETCH_IGNORED else 1.0 / voice.rate
    return (f"(voice_{voice.name})\n"
            f"(Parameter.set 'Duration_Stretch {stretch:.4f})\n"
            f"(set! utt (SynthText {_scheme_string(text)}))\n"
            f"(utt.save.wave utt {_scheme_string(str(wav))} 'riff)\n"
            "(mapcar (lambda (s) (format t \"%s:%f \" (item.name s) (item.feat s \"end\")))"
            " (utt.relation.items utt 'Segment))\n")


def synth_festival(text: str, voice: Voice) -> tuple[np.ndarray, list[Phone]]:
    if voice.name not in FESTIVAL_VOICES:
        raise ValueError(f"unknown festival voice {voice.name!r}; choose from {FESTIVAL_VOICES}")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        script = Path(tmp) / "say.scm"
        script.write_text(_script(text, voice, wav))
        try:
            run = subprocess.run(["festival", "--batch", str(script)], capture_output=True, text=True,
                                 check=True, timeout=120)
        except FileNotFoundError as err:
            raise RuntimeError("festival not found: apt-get install festival") from err
        if not wav.exists():
            raise RuntimeError(f"festival wrote no audio for voice {voice.name}: {run.stderr.strip()[-300:]}")
        audio, rate = sf.read(wav, dtype="float32")
    audio = engine_audio(audio, rate)
    scale = 1.0
    if voice.name in _STRETCH_IGNORED and abs(voice.rate - 1.0) > 1e-3:
        from core.data.augment import time_stretch
        stretched = time_stretch(audio, voice.rate)
        scale = len(stretched) / len(audio)
        audio = stretched
    return audio, parse_end_times(run.stdout, len(audio) / SAMPLE_RATE, scale)
