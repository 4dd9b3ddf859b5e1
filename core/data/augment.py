"""Audio augmentation that keeps phone timings true: what real recordings have and TTS lacks.

Voice: tempo (SoX ``tempo``, WSOLA: duration without pitch; phone times are rescaled by the actual
length ratio), pitch (SoX ``pitch`` moves F0 *and* formants by one ratio, i.e. a vocal-tract
length change; the engines' own pitch controls move F0 alone, so the two vary independently),
breathiness (aspiration noise that follows the speech envelope). Microphone and channel: a random
equaliser tilt and peak, band limits (high-pass, low-pass, or an 8 kHz GSM telephone line), lossy
codecs (mp3 or opus at low bit rates, re-aligned to the original samples). Room: SoX reverb.
Background: coloured noise, or babble-like noise modulated at syllable rate. Everything is
deterministic for a given :class:`Augmentation` and noise generator.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass

import numpy as np

from core.rates import FPS, SAMPLE_RATE
from core.data.phones import Phone, merge_phones

SAMPLES_PER_STEP = SAMPLE_RATE // 10   # 0.1 s = exactly 3 frames: audio length <-> frame count
BANDS = ("full", "highpass", "lowpass", "telephone")
CODECS = ("none", "mp3", "opus")
# Which augmentations Augmentation.sample may switch on; synth-3 corpora used the first four.
KINDS = ("tempo", "pitch", "reverb", "noise", "breath", "babble", "microphone", "band", "codec")
CODEC_MAX_SHIFT_S = 0.15          # largest encoder delay looked for when re-aligning a codec


@dataclass(frozen=True)
class Augmentation:
    tempo: float = 1.0          # >1 = faster speech
    pitch: float = 0.0          # semitones
    pad_before: float = 0.2     # seconds of silence added at the start
    pad_after: float = 0.2
    reverb: float = 0.0         # SoX reverberance 0..100 (0 = dry)
    room: float = 50.0          # SoX room scale 0..100
    snr_db: float | None = None  # additive noise level (None = clean)
    noise_color: str = "white"  # white | pink | brown
    peak: float = 0.8           # final peak amplitude
    breath_db: float | None = None   # aspiration noise, dB below the speech (None = none)
    babble_snr_db: float | None = None  # syllable-rate modulated background noise
    eq_gain_db: float = 0.0     # microphone colour: a peak/dip of this gain ...
    eq_hz: float = 1000.0       # ... at this frequency
    band: str = "full"          # full | highpass | lowpass | telephone
    band_hz: float = 0.0        # cut-off of highpass / lowpass
    codec: str = "none"         # none | mp3 | opus
    bitrate_kbps: int = 32

    def __post_init__(self):
        if not 0.5 <= self.tempo <= 2.0:
            raise ValueError(f"tempo {self.tempo} outside [0.5, 2]")
        if self.noise_color not in ("white", "pink", "brown"):
            raise ValueError(f"unknown noise colour {self.noise_color!r}")
        if not 0 < self.peak <= 1:
            raise ValueError(f"peak {self.peak} outside (0, 1]")
        if self.band not in BANDS:
            raise ValueError(f"unknown band {self.band!r}; choose from {BANDS}")
        if self.codec not in CODECS:
            raise ValueError(f"unknown codec {self.codec!r}; choose from {CODECS}")

    def names(self) -> list[str]:
        """Which augmentations are active (for the corpus index)."""
        active = []
        if abs(self.tempo - 1.0) > 1e-3:
            active.append("tempo")
        if abs(self.pitch) > 1e-3:
            active.append("pitch")
        if self.reverb > 0:
            active.append("reverb")
        if self.snr_db is not None:
            active.append("noise")
        if self.breath_db is not None:
            active.append("breath")
        if self.babble_snr_db is not None:
            active.append("babble")
        if abs(self.eq_gain_db) > 1e-3:
            active.append("microphone")
        if self.band != "full":
            active.append(self.band)
        if self.codec != "none":
            active.append(self.codec)
        return active

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def sample(cls, rng: np.random.Generator, probability: float, pitch: float = 0.0,
               kinds: tuple[str, ...] = KINDS) -> "Augmentation":
        """Random padding and level always; with ``probability`` also a random non-empty mix of
        ``kinds`` (each drawn with chance 0.35). ``pitch`` is the speaker's fixed offset in
        semitones (voices without a pitch control get their pitch this way).

        Every value is drawn whatever the mix, so the same generator state gives the same
        choices for the kinds that are on, whichever others are off."""
        on = dict.fromkeys(KINDS, False)
        if kinds and rng.random() < probability:
            while not any(on.values()):
                on.update({k: bool(rng.random() < 0.35) for k in kinds})
        draw = {
            "tempo": float(rng.uniform(0.75, 1.35)), "pitch": float(rng.uniform(-4.0, 4.0)),
            "reverb": float(rng.uniform(20, 80)), "room": float(rng.uniform(20, 100)),
            "noise": float(rng.uniform(5, 35)), "color": str(rng.choice(["white", "pink", "brown"])),
            "breath": float(rng.uniform(12, 30)), "babble": float(rng.uniform(5, 25)),
            "eq_gain": float(rng.uniform(-9, 9)), "eq_hz": float(np.exp(rng.uniform(np.log(300), np.log(5000)))),
            "band": str(rng.choice(BANDS[1:])), "highpass": float(rng.uniform(150, 500)),
            "lowpass": float(rng.uniform(3000, 7000)), "codec": str(rng.choice(CODECS[1:])),
            "bitrate": int(rng.choice([12, 16, 24, 32])),
        }
        band = draw["band"] if on["band"] else "full"
        return cls(
            tempo=draw["tempo"] if on["tempo"] else 1.0,
            pitch=pitch + (draw["pitch"] if on["pitch"] else 0.0),
            pad_before=float(rng.uniform(0.1, 0.6)), pad_after=float(rng.uniform(0.1, 0.6)),
            reverb=draw["reverb"] if on["reverb"] else 0.0, room=draw["room"],
            snr_db=draw["noise"] if on["noise"] else None, noise_color=draw["color"],
            peak=float(rng.uniform(0.3, 0.95)),
            breath_db=draw["breath"] if on["breath"] else None,
            babble_snr_db=draw["babble"] if on["babble"] else None,
            eq_gain_db=draw["eq_gain"] if on["microphone"] else 0.0, eq_hz=draw["eq_hz"],
            band=band, band_hz={"highpass": draw["highpass"], "lowpass": draw["lowpass"]}.get(band, 0.0),
            codec=draw["codec"] if on["codec"] else "none", bitrate_kbps=draw["bitrate"])


def _sox(audio: np.ndarray, effects: list[str]) -> np.ndarray:
    if shutil.which("sox") is None:
        raise RuntimeError("sox not found: apt-get install sox")
    fmt = ["-t", "f32", "-r", str(SAMPLE_RATE), "-c", "1"]
    run = subprocess.run(["sox", "-D", "-V1", *fmt, "-", *fmt, "-", *effects],
                         input=audio.astype("<f4").tobytes(), capture_output=True, check=True)
    return np.frombuffer(run.stdout, dtype="<f4").astype(np.float32)


def colored_noise(n: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a 1/f^0 (white), 1/f (pink) or 1/f^2 (brown) power spectrum."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    spectrum /= freqs ** {"white": 0.0, "pink": 0.5, "brown": 1.0}[color]
    noise = np.fft.irfft(spectrum, n)
    return (noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)).astype(np.float32)


def apply(audio: np.ndarray, phones: list[Phone], aug: Augmentation,
          rng: np.random.Generator) -> tuple[np.ndarray, list[Phone]]:
    """Return augmented audio (length a multiple of 0.1 s) and phones on the new timeline.

    ``rng`` draws the noise samples only, so the same (aug, rng state) gives the same result.
    """
    audio = np.asarray(audio, np.float32)
    scale = 1.0
    effects = []
    if abs(aug.tempo - 1.0) > 1e-3:
        effects += ["tempo", "-s", f"{aug.tempo:.4f}"]
    if abs(aug.pitch) > 1e-3:
        effects += ["pitch", f"{100 * aug.pitch:.1f}"]
    if effects:
        peak = float(np.abs(audio).max()) or 1.0
        shifted = _sox(audio / peak * 0.5, effects) * (peak / 0.5)
        scale = len(shifted) / len(audio)
        audio = shifted

    before = int(round(aug.pad_before * SAMPLE_RATE))
    total = before + len(audio) + int(round(aug.pad_after * SAMPLE_RATE))
    total = -(-total // SAMPLES_PER_STEP) * SAMPLES_PER_STEP
    padded = np.zeros(total, np.float32)
    padded[before:before + len(audio)] = audio
    shift = before / SAMPLE_RATE
    end = total / SAMPLE_RATE
    moved = [Phone("pau", 0.0, shift)] + [
        Phone(p.label, p.start * scale + shift, p.end * scale + shift) for p in phones]
    moved.append(Phone("pau", moved[-1].end, end))
    moved = [Phone(p.label, min(p.start, end), min(p.end, end)) for p in moved]

    if aug.reverb > 0:
        peak = float(np.abs(padded).max()) or 1.0
        wet = _sox(padded / peak * 0.3, ["reverb", f"{aug.reverb:.1f}", "50", f"{aug.room:.1f}"])
        padded = np.zeros(total, np.float32) + np.pad(wet, (0, max(0, total - len(wet))))[:total]
    speech_rms = np.sqrt(np.mean(padded[before:before + len(audio)] ** 2)) + 1e-9
    if aug.breath_db is not None:
        padded = padded + breath_noise(padded, rng) * speech_rms * 10 ** (-aug.breath_db / 20)
    if aug.snr_db is not None:
        padded = padded + colored_noise(total, aug.noise_color, rng) * speech_rms * 10 ** (-aug.snr_db / 20)
    if aug.babble_snr_db is not None:
        padded = padded + babble_noise(total, rng) * speech_rms * 10 ** (-aug.babble_snr_db / 20)
    padded = channel(padded, aug)
    padded *= aug.peak / (float(np.abs(padded).max()) or 1.0)
    return padded.astype(np.float32), merge_phones(moved)


def time_stretch(audio: np.ndarray, rate: float) -> np.ndarray:
    """``audio`` spoken ``rate`` times faster, same pitch (SoX WSOLA tempo)."""
    peak = float(np.abs(audio).max()) or 1.0
    return _sox(audio / peak * 0.5, ["tempo", "-s", f"{rate:.4f}"]) * (peak / 0.5)


def _envelope(audio: np.ndarray, seconds: float = 0.02) -> np.ndarray:
    width = max(1, int(seconds * SAMPLE_RATE))
    return np.sqrt(np.convolve(audio ** 2, np.ones(width) / width, mode="same"))


def breath_noise(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Aspiration: high-passed noise shaped by the speech envelope, unit RMS over the speech."""
    noise = np.diff(rng.standard_normal(len(audio) + 1)).astype(np.float32)   # tilts towards highs
    shaped = noise * _envelope(audio)
    return (shaped / (np.sqrt(np.mean(shaped ** 2)) + 1e-12)).astype(np.float32)


def babble_noise(n: int, rng: np.random.Generator, talkers: int = 4) -> np.ndarray:
    """Babble-like background: pink noise bands switched on and off at syllable rate (3-6 Hz)
    by a few independent "talkers"; unit RMS."""
    t = np.arange(n) / SAMPLE_RATE
    total = np.zeros(n, np.float32)
    for _ in range(talkers):
        rate, phase = rng.uniform(3.0, 6.0), rng.uniform(0, 2 * np.pi)
        gate = np.clip(np.sin(2 * np.pi * rate * t + phase) + rng.uniform(-0.2, 0.6), 0, None)
        total += colored_noise(n, "pink", rng) * gate.astype(np.float32)
    return (total / (np.sqrt(np.mean(total ** 2)) + 1e-12)).astype(np.float32)


def channel(audio: np.ndarray, aug: Augmentation) -> np.ndarray:
    """Microphone colour, band limit and codec; same length as ``audio``, same timeline."""
    effects = []
    if abs(aug.eq_gain_db) > 1e-3:
        effects += ["equalizer", f"{aug.eq_hz:.0f}", "1.0q", f"{aug.eq_gain_db:.2f}"]
    if aug.band == "highpass":
        effects += ["highpass", f"{aug.band_hz:.0f}"]
    elif aug.band == "lowpass":
        effects += ["sinc", f"-{aug.band_hz:.0f}"]
    if effects:
        audio = _fit(_sox(_headroom(audio), effects), len(audio))
    if aug.band == "telephone":
        audio = realigned(audio, telephone(_headroom(audio)))
    if aug.codec != "none":
        audio = codec_roundtrip(_headroom(audio), aug.codec, aug.bitrate_kbps)
    return audio


def _headroom(audio: np.ndarray, peak: float = 0.5) -> np.ndarray:
    return audio * (peak / (float(np.abs(audio).max()) or 1.0))


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    return np.pad(audio, (0, max(0, n - len(audio))))[:n].astype(np.float32)


def telephone(audio: np.ndarray) -> np.ndarray:
    """A GSM 06.10 phone line: 300-3400 Hz, 8 kHz, GSM full-rate codec, back at 16 kHz."""
    if shutil.which("sox") is None:
        raise RuntimeError("sox not found: apt-get install sox")
    fmt = ["-t", "f32", "-r", str(SAMPLE_RATE), "-c", "1"]
    run = subprocess.run(["sox", "-D", "-V1", *fmt, "-", "-t", "gsm", "-r", "8000", "-c", "1", "-",
                          "sinc", "300-3400", "rate", "8000"],
                         input=audio.astype("<f4").tobytes(), capture_output=True, check=True)
    back = subprocess.run(["sox", "-D", "-V1", "-t", "gsm", "-r", "8000", "-c", "1", "-", *fmt, "-",
                           "rate", str(SAMPLE_RATE)], input=run.stdout, capture_output=True, check=True)
    return np.frombuffer(back.stdout, dtype="<f4").astype(np.float32)


def codec_roundtrip(audio: np.ndarray, codec: str, bitrate_kbps: int) -> np.ndarray:
    """Encode and decode with ffmpeg (libmp3lame / libopus); the result is shifted back onto the
    input's samples (encoder delay found by cross-correlation) and cut to its length."""
    import imageio_ffmpeg
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    fmt = ["-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", "1"]
    container, encoder = {"mp3": ("mp3", "libmp3lame"), "opus": ("ogg", "libopus")}[codec]
    raw = audio.astype("<f4").tobytes()
    coded = subprocess.run([ffmpeg, "-nostdin", "-v", "error", *fmt, "-i", "pipe:0", "-c:a", encoder,
                            "-b:a", f"{bitrate_kbps}k", "-f", container, "pipe:1"],
                           input=raw, capture_output=True, check=True).stdout
    decoded = subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-i", "pipe:0", *fmt, "pipe:1"],
                             input=coded, capture_output=True, check=True).stdout
    return realigned(audio, np.frombuffer(decoded, dtype="<f4").astype(np.float32))


def codec_delay(reference: np.ndarray, coded: np.ndarray) -> tuple[int, float]:
    """(lag, sign): ``coded`` lags ``reference`` by ``lag`` samples (negative: it leads), within
    CODEC_MAX_SHIFT_S, found by cross-correlation; ``sign`` is -1 where the channel inverted it."""
    from scipy.signal import correlate
    span = int(CODEC_MAX_SHIFT_S * SAMPLE_RATE)
    padded = np.pad(coded, (span, span))
    n = min(len(reference), len(coded))
    corr = correlate(padded[:n + 2 * span], reference[:n], mode="valid")
    best = int(np.argmax(np.abs(corr)))
    return best - span, float(np.sign(corr[best]) or 1.0)


def realigned(reference: np.ndarray, coded: np.ndarray) -> np.ndarray:
    """``coded`` moved back onto ``reference``'s samples and polarity, cut to its length."""
    lag, sign = codec_delay(reference, coded)
    shifted = coded[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, np.float32), coded])
    return sign * _fit(shifted, len(reference))


def frames_for(audio: np.ndarray) -> int:
    """Frame count for audio produced by :func:`apply` (exactly 30 fps over its duration)."""
    return len(audio) * FPS // SAMPLE_RATE
