"""The one phone set every voice engine is mapped to: lower-case ARPAbet (the CMU dictionary
set) plus ``pau``; a phone with its span in seconds, and the helpers that keep a phone list
gap-free (shared by the engines in :mod:`core.data.tts`, :mod:`core.data.festival`,
:mod:`core.data.piper_tts`, the aligner and the augmentations)."""
from __future__ import annotations

from dataclasses import dataclass

VOWELS = frozenset("aa ae ah ao aw ax ay eh er ey ih iy ow oy uh uw".split())
CONSONANTS = frozenset("b ch d dh f g hh jh k l m n ng p r s sh t th v w y z zh".split())
PHONES = VOWELS | CONSONANTS | {"pau"}


@dataclass(frozen=True)
class Phone:
    """One phone of an utterance: ARPAbet label and its span in seconds."""
    label: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


_FLITE_ALIASES = {"ssil": "pau", "sil": "pau", "h#": "pau", "ax": "ax", "axr": "er"}


def flite_to_arpabet(label: str) -> str:
    label = _FLITE_ALIASES.get(label.lower(), label.lower())
    if label not in PHONES:
        raise ValueError(f"flite printed a phone outside ARPAbet: {label!r}")
    return label


def merge_phones(phones: list[Phone]) -> list[Phone]:
    """Drop empty spans and fuse neighbouring pauses, keeping the timeline gap-free."""
    out: list[Phone] = []
    for p in phones:
        if p.end <= p.start:
            continue
        if out and out[-1].label == "pau" and p.label == "pau":
            out[-1] = Phone("pau", out[-1].start, p.end)
        else:
            out.append(p)
    return out


def parse_end_times(stdout: str, total: float, scale: float = 1.0) -> list[Phone]:
    """``label:end label:end ...`` (flite's ``-psdur``, festival's segment list; seconds, times
    multiplied by ``scale``) -> gap-free ARPAbet phones up to ``total`` seconds."""
    phones: list[Phone] = []
    start = 0.0
    for token in stdout.split():
        label, _, end = token.rpartition(":")
        if not label:
            continue
        end_t = min(float(end) * scale, total)
        phones.append(Phone(flite_to_arpabet(label), start, end_t))
        start = max(start, end_t)
    if start < total:
        phones.append(Phone("pau", start, total))
    return merge_phones(phones)
