"""Phones of real speech with pocketsphinx (CMU's en-us acoustic model, 100 Hz phone frames).

Forced alignment to a known text, or phone recognition where no text is known. Labels are
lower-case ARPAbet as in :mod:`core.data.tts`; silence and noise phones become ``pau``.
"""
from __future__ import annotations

import re

import numpy as np

from core.data.phones import PHONES, Phone
from core.rates import SAMPLE_RATE

PHONE_FRAME_RATE = 100          # pocketsphinx's default frame rate (-frate), frames per second
ALIGN_PAD_S = 0.2               # silence added around a clip before aligning it
DITHER_LSB = 2.0                # std of the noise added before aligning, in 16-bit steps


def pocketsphinx_available() -> bool:
    from importlib.util import find_spec
    return find_spec("pocketsphinx") is not None


def transcript_words(text: str) -> list[str]:
    """The words the aligner's dictionary is looked up with: lower case, punctuation dropped
    (apostrophes inside words kept: "don't")."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)*", text.lower())


def align_phones(audio: np.ndarray, transcript: str | None = None) -> list[Phone]:
    """Phones of 16 kHz ``audio``: forced alignment to ``transcript``, else phone recognition.

    Labels are lower-case ARPAbet as in :mod:`core.data.tts`; silence and pocketsphinx's noise
    phones become ``pau``. Raises ``ValueError`` when the text cannot be aligned to the audio.
    """
    if not pocketsphinx_available():
        raise RuntimeError("phone alignment needs pocketsphinx: pip install pocketsphinx==5.1.1")
    from pocketsphinx import Decoder, get_model_path

    # Silence around the speech lets the aligner start and end in its silence model even when a
    # clip begins or ends mid-word; the pad is taken off the times again below. A little fixed
    # noise (dither) keeps exact digital silence (the pad, synthetic speech) from giving
    # log(0) features, which otherwise wreck the search.
    pad = np.zeros(int(ALIGN_PAD_S * SAMPLE_RATE))
    padded = np.concatenate([pad, np.asarray(audio, np.float64), pad]) * 32767
    padded += np.random.default_rng(0).normal(0.0, DITHER_LSB, len(padded))
    pcm = np.clip(np.round(padded), -32768, 32767).astype("<i2").tobytes()

    def decode(decoder):
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()

    if transcript is None:
        decoder = Decoder(loglevel="FATAL", allphone=get_model_path("en-us/en-us-phone.lm.bin"),
                          lw=2.0, pip=0.3, beam=1e-200, pbeam=1e-20)
        decode(decoder)
        spans = [(s.word, s.start_frame, s.end_frame + 1) for s in decoder.seg()]
    else:
        words = transcript_words(transcript)
        decoder = Decoder(loglevel="FATAL", lm=None)
        try:
            decoder.set_align_text(" ".join(words))
        except RuntimeError as err:          # a word missing from the pronouncing dictionary
            raise ValueError(f"cannot align the text {transcript!r}: {err}") from None
        try:
            decode(decoder)                  # word alignment first, then phones within the words
            decoder.set_alignment()
            decode(decoder)
            alignment = decoder.get_alignment()
        except RuntimeError:                 # the search never reached the end of the text
            alignment = None
        # When the search cannot reach the end of the text it may return just a prefix of it.
        aligned = [] if alignment is None else [w.name.split("(")[0] for w in alignment
                                                if not w.name.startswith(("<", "+", "["))]
        if aligned != words:
            raise ValueError(f"could not align the text {transcript!r} to the audio "
                             f"(aligned: {' '.join(aligned) or 'nothing'})")
        spans = [(p.name, p.start, p.start + p.duration) for p in alignment.phones()]
    seconds = len(audio) / SAMPLE_RATE
    phones = []
    for label, start, end in spans:
        label = label.lower()
        start = min(max(start / PHONE_FRAME_RATE - ALIGN_PAD_S, 0.0), seconds)
        end = min(max(end / PHONE_FRAME_RATE - ALIGN_PAD_S, 0.0), seconds)
        if end > start:
            phones.append(Phone(label if label in PHONES else "pau", start, end))
    return phones

