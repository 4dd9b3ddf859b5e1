"""Offline speech synthesis with per-phone timings, normalised to one phone set.

Four engines, all deterministic and much faster than real time on a CPU (festival in
:mod:`core.data.festival`, piper in :mod:`core.data.piper_tts`):

* **espeak-ng** through ``libespeak-ng.so.1`` (ctypes). The command line prints phonemes but no
  times; the library reports a phoneme event (IPA, start in ms) for every phone it speaks.
* **flite** through its command line: ``-psdur`` prints every phone with its end time.

Every engine's phones are mapped to lower-case ARPAbet (the CMU dictionary set) plus ``pau``,
so the viseme model downstream needs to know a single inventory (:mod:`core.data.phones`; the
voices in :mod:`core.data.voices`). Audio comes back as float32
16 kHz mono.
"""
from __future__ import annotations

import ctypes
import os
import pickle
import subprocess
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import soundfile as sf

from core.data.phones import Phone, merge_phones, parse_end_times
from core.data.voices import Voice, engine_audio
from core.rates import SAMPLE_RATE


# ---------------------------------------------------------------------------------------------
# Phone set normalisation

# espeak-ng's English IPA (all accents) -> ARPAbet. Multi-phone entries split the span evenly.
_IPA_TO_ARPABET: dict[str, tuple[str, ...]] = {
    # vowels
    "ɑ": ("aa",), "ɒ": ("aa",), "ɑ̃": ("aa",), "æ": ("ae",), "a": ("ae",), "ʌ": ("ah",),
    "ɐ": ("ah",), "ə": ("ax",), "ᵻ": ("ax",), "ɨ": ("ax",), "ɔ": ("ao",), "aʊ": ("aw",),
    "aɪ": ("ay",), "ʌɪ": ("ay",), "ɑɪ": ("ay",), "ɑe": ("ay",), "ɛ": ("eh",), "e": ("eh",),
    "ɜ": ("er",), "ɚ": ("er",), "ɝ": ("er",), "eɪ": ("ey",), "ɪ": ("ih",), "i": ("iy",),
    "oʊ": ("ow",), "əʊ": ("ow",), "o": ("ow",), "ɔʊ": ("ow",), "ɔɪ": ("oy",), "ʊ": ("uh",),
    "u": ("uw",), "ʉ": ("uw",), "ɪə": ("ih", "ax"), "iə": ("iy", "ax"), "eə": ("eh", "ax"),
    "ɛə": ("eh", "ax"), "ʊə": ("uh", "ax"), "aɪə": ("ay", "ax"), "aʊə": ("aw", "ax"),
    "ɑɹ": ("aa", "r"), "ɔɹ": ("ao", "r"), "ɪɹ": ("ih", "r"), "ɛɹ": ("eh", "r"),
    "ʊɹ": ("uh", "r"), "əɹ": ("er",), "ɜɹ": ("er",), "oː": ("ow",), "eː": ("ey",),
    "aa": ("aa",), "æʊ": ("aw",), "ʌʊ": ("ow",), "əu": ("ow",), "ʌʉ": ("ow",), "oɪ": ("oy",),
    "ei": ("ey",), "əɪ": ("ay",), "əl": ("ax", "l"),
    # consonants
    "p": ("p",), "b": ("b",), "t": ("t",), "d": ("d",), "k": ("k",), "g": ("g",), "ɡ": ("g",),
    "m": ("m",), "n": ("n",), "ŋ": ("ng",), "f": ("f",), "v": ("v",), "θ": ("th",),
    "ð": ("dh",), "s": ("s",), "z": ("z",), "ʃ": ("sh",), "ʒ": ("zh",), "h": ("hh",),
    "l": ("l",), "w": ("w",), "j": ("y",), "ɹ": ("r",), "r": ("r",), "tʃ": ("ch",),
    "dʒ": ("jh",), "ɾ": ("d",), "ʔ": ("t",), "x": ("k",), "ʍ": ("w",), "ɬ": ("l",),
    "ɫ": ("l",), "ç": ("hh",), "ʋ": ("v",), "ɣ": ("g",), "ɦ": ("hh",),
}
_IPA_MAX = max(len(k) for k in _IPA_TO_ARPABET)
_IGNORED_MARKS = set("ːˑˈˌ‿-|#:")


def ipa_to_arpabet(ipa: str) -> tuple[str, ...]:
    """Map one espeak-ng IPA phoneme (stress, length and diacritics ignored) to ARPAbet.

    Unknown symbols fall back to a greedy match of the known ones; a phoneme with no known
    symbol at all becomes the neutral vowel ``ax`` so that it still occupies its time.
    """
    base = "".join(c for c in unicodedata.normalize("NFD", ipa)
                   if c not in _IGNORED_MARKS and not unicodedata.combining(c))
    base = unicodedata.normalize("NFC", base)
    if not base or base == "_":
        return ("pau",)
    if base in _IPA_TO_ARPABET:
        return _IPA_TO_ARPABET[base]
    out: list[str] = []
    i = 0
    while i < len(base):
        for size in range(min(_IPA_MAX, len(base) - i), 0, -1):
            if base[i:i + size] in _IPA_TO_ARPABET:
                out.extend(_IPA_TO_ARPABET[base[i:i + size]])
                i += size
                break
        else:
            i += 1
    return tuple(out) or ("ax",)


def _split_span(labels: tuple[str, ...], start: float, end: float) -> list[Phone]:
    step = (end - start) / len(labels)
    return [Phone(lab, start + k * step, start + (k + 1) * step) for k, lab in enumerate(labels)]


# ---------------------------------------------------------------------------------------------
# espeak-ng (ctypes)

class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h."""
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))
_EVENT_END_OF_LIST, _EVENT_PHONEME = 0, 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_PHONEME_IPA, _INIT_DONT_EXIT = 0x1, 0x2, 0x8000
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
_CHARS_UTF8, _POS_CHARACTER = 1, 1
ESPEAK_DEFAULT_WPM = 175
ESPEAK_PITCH_PER_SEMITONE = 1.4   # measured: +4 on the 0-100 scale raises F0 by ~2.8 semitones


class _Espeak:
    """libespeak-ng, initialised once per process; every utterance is spoken in a fork."""

    def __init__(self):
        try:
            self.lib = ctypes.CDLL("libespeak-ng.so.1")
        except OSError as err:
            raise RuntimeError("libespeak-ng.so.1 not found: apt-get install libespeak-ng1") from err
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200, None,
                                          _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT)
        if self.rate <= 0:
            raise RuntimeError("espeak_Initialize failed (espeak-ng-data missing?)")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._on_audio)   # keep a reference: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != _EVENT_END_OF_LIST:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                name = bytes(ev.id.string).split(b"\0")[0].decode("utf-8", "replace")
                self._events.append((ev.sample, name))
            i += 1
        return 0

    def speak(self, text: str, voice: Voice) -> tuple[np.ndarray, list[tuple[float, str]], int]:
        """Synthesise in a forked child so that every utterance starts from the same state.

        libespeak-ng carries wave-generator state (pitch phase, flutter) from one utterance to
        the next, and re-initialising does not reset it; a child forked from a process that has
        initialised the library but never spoken always starts pristine. Forking costs ~ms.
        """
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:                                   # child: speak, send, exit
            status = 0
            try:
                os.close(read_fd)
                payload = pickle.dumps(self._speak_here(text, voice))
            except BaseException as err:               # report any failure to the parent
                payload, status = pickle.dumps(err), 1
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
            os._exit(status)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
        if not payload:
            raise RuntimeError(f"espeak-ng child process died (wait status {status})")
        result = pickle.loads(payload)      # written by our own child just above
        if isinstance(result, BaseException):
            raise result
        pcm, events = result
        audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        return audio, [(sample / self.rate, name) for sample, name in events], self.rate

    def _speak_here(self, text: str, voice: Voice) -> tuple[bytes, list[tuple[int, str]]]:
        lib = self.lib
        if lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice.name!r} (try e.g. 'en-us+m3')")
        lib.espeak_SetParameter(_PARAM_RATE, int(round(ESPEAK_DEFAULT_WPM * voice.rate)), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(np.clip(round(50 + ESPEAK_PITCH_PER_SEMITONE
                                                                * voice.pitch), 0, 100)), 0)
        lib.espeak_SetParameter(_PARAM_RANGE, int(np.clip(50 * voice.pitch_range, 0, 99)), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data)
        lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        return b"".join(c.tobytes() for c in self._chunks), self._events


_ESPEAK: _Espeak | None = None


def _espeak_phones(starts: list[tuple[float, str]], total: float) -> list[Phone]:
    phones: list[Phone] = []
    if starts and starts[0][0] > 0:
        phones.append(Phone("pau", 0.0, starts[0][0]))
    for k, (start, name) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else total
        phones.extend(_split_span(ipa_to_arpabet(name), start, min(max(end, start), total)))
    if phones and phones[-1].end < total:
        phones.append(Phone("pau", phones[-1].end, total))
    return merge_phones(phones)


def synth_espeak(text: str, voice: Voice) -> tuple[np.ndarray, list[Phone]]:
    global _ESPEAK
    if _ESPEAK is None:
        _ESPEAK = _Espeak()
    audio, starts, rate = _ESPEAK.speak(text, voice)
    audio = engine_audio(audio, rate)
    return audio, _espeak_phones(starts, len(audio) / SAMPLE_RATE)


# ---------------------------------------------------------------------------------------------
# flite (command line)

def synth_flite(text: str, voice: Voice) -> tuple[np.ndarray, list[Phone]]:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1.0 / voice.rate:.4f}",
               "-psdur", "-t", text, "-o", str(wav)]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
        except FileNotFoundError as err:
            raise RuntimeError("flite not found: apt-get install flite") from err
        audio, rate = sf.read(wav, dtype="float32")
    audio = engine_audio(audio, rate)
    return audio, parse_end_times(run.stdout, len(audio) / SAMPLE_RATE)


def synthesize(text: str, voice: Voice) -> tuple[np.ndarray, list[Phone]]:
    """Speak ``text``; return (float32 16 kHz mono audio, gap-free ARPAbet phones in seconds).

    Only espeak-ng follows ``voice.pitch`` (shift the others' audio afterwards, see
    ``core.data.augment``). festival and piper live in their own modules (imported on use).
    """
    if not text.strip():
        raise ValueError("nothing to say: empty text")
    if voice.engine == "festival":
        from core.data.festival import synth_festival as engine
    elif voice.engine == "piper":
        from core.data.piper_tts import synth_piper as engine
    else:
        engine = synth_espeak if voice.engine == "espeak" else synth_flite
    audio, phones = engine(text, voice)
    if len(audio) == 0 or not phones:
        raise ValueError(f"{voice.engine} produced no speech for {text!r}")
    return audio, phones
