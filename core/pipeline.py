"""Inference API: ``Talker.from_pretrained("checkpoints").generate("speech.wav", steps=8, seed=0)``.

The app, the CLIs, the evaluation and the benchmark all go through :class:`Talker`:
audio -> frozen speech encoder (30 fps features) -> identity match over the library ->
N-step reverse diffusion (K seeds as one batch; the decoder runs on ONNX Runtime on the CPU,
see core.onnx_decoder, or on torch) -> ARKit-52 curves in [0, 1].
Checkpoints load lazily (one per step count, on first use) after their sha256 is checked
against the manifest, so start-up stays fast.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.arkit import ARKIT_NAMES
from core.cpu import limit_numpy_blas
from core.diffusion import make_generator, sample
from core.manifest import read_manifest, verify
from core.model import CONFIG_NAME, DiffusionTalker, from_model_space

FPS = 30
# Decoder backends: "onnx" (ONNX Runtime, CPU; core.onnx_decoder) or "torch". "auto" picks ONNX
# Runtime on the CPU when it is installed (measured 3-4x faster there, see core.bench), torch on CUDA.
BACKENDS = ("auto", "onnx", "torch")


@dataclass
class Generation:
    blendshapes: np.ndarray                 # float32 [K, frames, 52], canonical ARKit order
    identity: str                           # identity used for the style
    matched_identity: str                   # best match from the voice
    scores: list[tuple[str, float]]         # every library identity with its cosine similarity, best first
    steps: int
    seeds: list[int]
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    decoder: str = "torch"                  # backend that ran the decoder: "onnx" or "torch"
    names: tuple[str, ...] = ARKIT_NAMES
    fps: int = FPS

    @property
    def frames(self) -> int:
        return int(self.blendshapes.shape[1])

    @property
    def itf(self) -> float:
        """End-to-end inference time per frame (decode + encoder + match + sampling)."""
        return self.timings["total"] / max(1, self.frames)


class Talker:
    def __init__(self, root: Path | None, entries: dict[int, dict], models: dict[int, DiffusionTalker] | None = None,
                 device: str | torch.device | None = None, verify_checksums: bool = True, encoder=None,
                 backend: str = "auto"):
        if backend not in BACKENDS:
            raise ValueError(f"unknown decoder backend {backend!r}; use one of {', '.join(BACKENDS)}")
        limit_numpy_blas()
        self.root = root
        self.entries = entries               # steps -> manifest entry
        self.device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.verify_checksums = verify_checksums
        self._models: dict[int, DiffusionTalker] = dict(models or {})
        self.backend = backend
        self._onnx: dict[int, object] = {}   # steps -> OnnxDecoder, built on first use
        self._encoder = encoder              # default: the encoder named in the checkpoint config

    # -- loading -----------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path = "checkpoints", device=None, role: str = "shipped",
                        verify_checksums: bool = True, encoder=None, backend: str = "auto") -> "Talker":
        """``path``: one checkpoint folder, or a folder with ``manifest.json`` (all its ``role`` models)."""
        path = Path(path)
        if (path / CONFIG_NAME).is_file():
            model = DiffusionTalker.from_pretrained(path)
            entry = {"name": path.name, "path": ".", "steps": model.config.steps}
            return cls(path, {model.config.steps: entry}, {model.config.steps: model}, device, False, encoder, backend)
        manifest = read_manifest(path)
        entries = {m["steps"]: m for m in manifest["models"] if m.get("role", "shipped") == role}
        if not entries:
            raise ValueError(f"{path}/manifest.json lists no {role} models")
        return cls(path, entries, None, device, verify_checksums, encoder, backend)

    @property
    def steps_available(self) -> list[int]:
        return sorted(self.entries, reverse=True)

    def model(self, steps: int) -> DiffusionTalker:
        if steps not in self.entries:
            raise ValueError(f"no model with {steps} steps; available: {', '.join(map(str, self.steps_available))}")
        if steps not in self._models:
            entry = self.entries[steps]
            if self.verify_checksums:
                verify(self.root, entry)
            self._models[steps] = DiffusionTalker.from_pretrained(self.root / entry["path"], self.device)
        return self._models[steps]

    def reload(self) -> None:
        """Forget loaded models so the next use re-reads them (e.g. after an enrolment)."""
        self._models.clear()
        self._onnx.clear()

    def decoder_backend(self, steps: int) -> str:
        """The backend that runs ``steps``' decoder: ONNX Runtime on the CPU when ``backend``
        allows it and the packages are present, else torch."""
        if self.device.type != "cpu" and self.backend == "onnx":
            raise ValueError("the ONNX decoder runs on the CPU only; use backend='torch' on CUDA")
        if self.backend == "torch" or self.device.type != "cpu":
            return "torch"
        if steps not in self._onnx:
            from core.onnx_decoder import OnnxDecoder, OnnxUnavailable
            try:
                self._onnx[steps] = OnnxDecoder(self.model(steps))
            except OnnxUnavailable:
                if self.backend == "onnx":
                    raise
                self._onnx[steps] = None
        return "torch" if self._onnx[steps] is None else "onnx"

    @property
    def identity_names(self) -> list[str]:
        return self.model(self.steps_available[-1]).identity_names

    def encoder(self):
        if self._encoder is None:
            from core.encoders import get_encoder
            self._encoder = get_encoder(self.model(self.steps_available[-1]).config.encoder)
        return self._encoder

    # -- inference ---------------------------------------------------------------------------------
    def features(self, audio) -> tuple[np.ndarray, dict[str, float]]:
        """Speech-encoder features [frames, dim] of a path / (rate, array) / 16 kHz array."""
        from core.audio import load_audio
        t0 = time.perf_counter()
        wave = load_audio(audio)
        t1 = time.perf_counter()
        feats = self.encoder().encode(wave)
        return feats, {"decode": t1 - t0, "encoder": time.perf_counter() - t1}

    @torch.inference_mode()
    def generate(self, audio, steps: int = 8, seed: int = 0, identity: str | None = None, num_samples: int = 1,
                 sampler: str | None = None, features: np.ndarray | None = None) -> Generation:
        """Curves for ``audio``; ``identity=None`` uses the identity matched from the voice.

        Sample k uses seed ``seed + k`` (independent of ``num_samples``).  Teachers sample
        ancestrally (DDPM), distilled students deterministically (DDIM) from the initial noise.
        """
        if not 1 <= int(num_samples) <= 16:
            raise ValueError("num_samples must be between 1 and 16")
        seed = int(seed)
        if not 0 <= seed < 2 ** 31:
            raise ValueError("seed must be a whole number between 0 and 2147483647")
        model = self.model(int(steps))
        timings: dict[str, float] = {}
        began = time.perf_counter()
        if features is None:
            features, timings = self.features(audio)
        t0 = time.perf_counter()
        audio_t = torch.from_numpy(np.asarray(features, np.float32)).to(self.device)
        scores = model.match(audio_t)
        matched = scores[0][0]
        used = matched if identity in (None, "", "auto") else identity
        ids = torch.full((num_samples,), model.identity_index(used), dtype=torch.long, device=self.device)
        timings["match"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch_audio = audio_t.unsqueeze(0).expand(num_samples, -1, -1)
        cond = model.condition(batch_audio, ids)
        seeds = [seed + k for k in range(num_samples)]
        gens = [make_generator(s, "cpu") for s in seeds]
        method = sampler or ("ddim" if model.config.distilled else "ddpm")
        backend = self.decoder_backend(int(steps))
        if backend == "onnx":
            x0 = self._onnx[int(steps)].sample(cond, gens, len(features), method)
        else:
            x0 = sample(model.schedule, lambda x, t: model.denoise(x, t, cond), (num_samples, len(features), 52),
                        method=method, generator=gens, device=self.device)
        curves = from_model_space(x0).float().cpu().numpy()
        timings["sampling"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - began
        return Generation(curves, used, matched, scores, int(steps), seeds, timings, backend)
