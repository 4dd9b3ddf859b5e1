"""Audio augmentation that keeps phone timings true: tempo, pitch, padding, reverb, noise, gain.

Tempo and pitch go through SoX (``tempo`` is WSOLA, so it changes duration without changing
pitch; phone times are rescaled by the actual length ratio). Reverb is SoX's freeverb; noise and
gain are NumPy. Everything is deterministic for a given :class:`Augmentation`.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass

import numpy as np

from core.rates import FPS, SAMPLE_RATE
from core.data.tts import Phone, merge_phones

SAMPLES_PER_STEP = SAMPLE_RATE // 10   # 0.1 s = exactly 3 frames: audio length <-> frame count


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

    def __post_init__(self):
        if not 0.5 <= self.tempo <= 2.0:
            raise ValueError(f"tempo {self.tempo} outside [0.5, 2]")
        if self.noise_color not in ("white", "pink", "brown"):
            raise ValueError(f"unknown noise colour {self.noise_color!r}")
        if not 0 < self.peak <= 1:
            raise ValueError(f"peak {self.peak} outside (0, 1]")

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
        return active

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def sample(cls, rng: np.random.Generator, probability: float, pitch: float = 0.0) -> "Augmentation":
        """Random padding and level always; with ``probability`` also a random non-empty mix of
        tempo, pitch, reverb and noise. ``pitch`` is the speaker's fixed offset in semitones
        (flite voices get their pitch this way)."""
        active = np.zeros(4, bool)
        if rng.random() < probability:
            while not active.any():
                active = rng.random(4) < 0.5
        return cls(
            tempo=float(rng.uniform(0.85, 1.18)) if active[0] else 1.0,
            pitch=pitch + (float(rng.uniform(-2.5, 2.5)) if active[1] else 0.0),
            pad_before=float(rng.uniform(0.1, 0.6)), pad_after=float(rng.uniform(0.1, 0.6)),
            reverb=float(rng.uniform(20, 80)) if active[2] else 0.0,
            room=float(rng.uniform(20, 100)),
            snr_db=float(rng.uniform(8, 35)) if active[3] else None,
            noise_color=str(rng.choice(["white", "pink", "brown"])),
            peak=float(rng.uniform(0.3, 0.95)))


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
    if aug.snr_db is not None:
        speech_rms = np.sqrt(np.mean(padded[before:before + len(audio)] ** 2)) + 1e-9
        padded = padded + colored_noise(total, aug.noise_color, rng) * speech_rms * 10 ** (-aug.snr_db / 20)
    padded *= aug.peak / (float(np.abs(padded).max()) or 1.0)
    return padded.astype(np.float32), merge_phones(moved)


def frames_for(audio: np.ndarray) -> int:
    """Frame count for audio produced by :func:`apply` (exactly 30 fps over its duration)."""
    return len(audio) * FPS // SAMPLE_RATE
