"""Where the models come from: :class:`ModelRegistry` reads the manifest, checks every model
file's sha256 before use, loads one model per step count lazily (start-up stays fast) with the
users' enrolled identities attached (:func:`core.identities.store.attach_library`), picks the
decoder backend that samples it (ONNX Runtime on the CPU, else torch) and warms it all up.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from core.cpu import limit_numpy_blas
from core.identities.store import attach_library
from core.inputs import shown, whole_number
from core.model.diffusion import noise_temperature, sample
from core.model.manifest import ChecksumError, entry_folder, is_checkpoint_folder, model_entries, verify
from core.model.network import DiffusionTalker, TalkerConfig, read_config
from core.rates import SAMPLE_RATE

# Decoder backends: "onnx" (ONNX Runtime, CPU; core.inference.onnx_decoder) or "torch". "auto" picks ONNX
# Runtime on the CPU when it is installed (measured 3-4x faster there, see experiments.bench), torch on CUDA.
BACKENDS = ("auto", "onnx", "torch")
WARM_UP_TONE = (0.1 * np.sin(np.linspace(0, 2000, SAMPLE_RATE))).astype(np.float32)  # 1 s, not silent


class TorchDecoder:
    """The reverse process with the decoder run by torch (CUDA, or a CPU without ONNX Runtime).

    Same interface as :class:`core.inference.onnx_decoder.OnnxDecoder`: ``sample`` returns x0 [K, F, 52].
    """
    name = "torch"

    def __init__(self, model: DiffusionTalker):
        self.model = model

    def sample(self, cond: tuple[torch.Tensor, torch.Tensor], seeds: list[int], frames: int,
               method: str, *, rows_share_clip: bool) -> torch.Tensor:
        model = self.model
        return sample(model.schedule, lambda x, t: model.denoise(x, t, cond), seeds, frames,
                      method=method, device=cond[0].device, channels=model.config.channels,
                      temperature=noise_temperature(model.config))


class ModelRegistry:
    """The models of one checkpoints folder, loaded when first used: the manifest and its sha256
    checks, one model per step count with the users' enrolled identities attached, the decoder
    backend that samples it, the speech encoder, warm-up. :class:`~core.inference.talker.Talker`
    adds ``generate`` on top (as a diffusers pipeline's ``__call__`` sits on ``from_pretrained``)."""

    def __init__(self, root: Path | None, entries: dict[int, dict], *, device: str | torch.device | None = None,
                 verify_checksums: bool = True, encoder=None, backend: str = "auto"):
        if backend not in BACKENDS:
            raise ValueError(f"unknown decoder backend {backend!r}; use one of {', '.join(BACKENDS)}")
        limit_numpy_blas()
        self.root = root
        self.entries = entries               # steps -> manifest entry
        self.device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.verify_checksums = verify_checksums
        self._models: dict[int, DiffusionTalker] = {}
        self._library_problems: dict[int, str] = {}     # steps -> why its enrolled identities are not used
        self.backend = backend
        self._decoders: dict[int, object] = {}   # steps -> TorchDecoder | OnnxDecoder, built on first use
        self.unavailable: dict[str, str] = {}    # model name -> why it is not offered (see check_all)
        self._encoder = encoder              # default: the encoder named in the checkpoint config

    # -- loading -----------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path = "checkpoints", device=None, role: str = "shipped",
                        verify_checksums: bool = True, encoder=None, backend: str = "auto") -> "ModelRegistry":
        """``path``: one checkpoint folder, or a folder with ``manifest.json`` (all its ``role`` models)."""
        path = Path(path)
        entries = model_entries(path, role)
        if is_checkpoint_folder(path):       # no manifest, so nothing to check the files against
            verify_checksums = False
        return cls(path, {e["steps"]: e for e in entries}, device=device, verify_checksums=verify_checksums,
                   encoder=encoder, backend=backend)

    @property
    def steps_available(self) -> list[int]:
        return sorted(self.entries, reverse=True)

    def check_steps(self, value) -> int:
        """``value`` (a form field, an API argument) as one of the step counts available."""
        try:
            steps = whole_number(value, "the number of steps", 1, max(self.entries))
        except ValueError:
            steps = None
        if steps not in self.entries:
            raise ValueError(f"There is no model with {shown(value)} steps; choose one of "
                             f"{', '.join(map(str, self.steps_available))}.")
        return steps

    def seed_check(self, steps: int) -> dict | None:
        """Whether ``steps``' model keeps the seed (its upper face varies across seeds as the data's,
        on validation clips: ``experiments.evaluate upper-face --split val --offer``), or None if not measured."""
        return self.entries[steps].get("metrics", {}).get("seed_check")

    def folder(self, steps: int) -> Path:
        """The checkpoint folder of ``steps``' model."""
        return entry_folder(self.root, self.entries[self.check_steps(steps)])

    def config(self, steps: int) -> TalkerConfig:
        """``steps``' model config; read from its folder while the model is not loaded (what a page
        needs to know which controls it honours, without loading every model at start)."""
        steps = self.check_steps(steps)
        return self._models[steps].config if steps in self._models else read_config(self.folder(steps))

    def model(self, steps: int) -> DiffusionTalker:
        steps = self.check_steps(steps)
        if steps not in self._models:
            entry = self.entries[steps]
            if self.verify_checksums:
                verify(self.root, entry)
            folder = entry_folder(self.root, entry)
            model = DiffusionTalker.from_pretrained(folder, self.device)
            problem = attach_library(model, folder)      # the users' enrolled identities, served with it
            if problem:
                self._library_problems[steps] = problem
            self._models[steps] = model
        return self._models[steps]

    def check_all(self) -> dict[str, str]:
        """Check every model's files against the manifest now; a model that fails is no longer
        offered (the others still are). Returns model name -> why, for the models dropped."""
        broken = {}
        for steps, entry in list(self.entries.items()):
            if not self.verify_checksums:
                break
            try:
                verify(self.root, entry)
            except (ChecksumError, OSError) as err:
                broken[str(entry.get("name", f"{steps}-step model"))] = str(err)
                del self.entries[steps]
        self.unavailable.update(broken)
        return broken

    def problems(self) -> list[str]:
        """What a user of these models should know: models not offered, libraries not used."""
        lines = [f"{name} is not offered: {why}" for name, why in self.unavailable.items()]
        return lines + [self._library_problems[s] for s in self._models if s in self._library_problems]

    def reload(self) -> None:
        """Forget loaded models so the next use re-reads them (e.g. after an enrolment)."""
        self._models.clear()
        self._library_problems.clear()
        self._decoders.clear()

    def decoder(self, steps: int):
        """The decoder that samples ``steps``' model (built and cached on first use): ONNX Runtime
        on the CPU when ``backend`` allows it and the packages are present, else torch.
        Its ``name`` says which."""
        if self.device.type != "cpu" and self.backend == "onnx":
            raise ValueError("the ONNX decoder runs on the CPU only; use backend='torch' on CUDA")
        if steps not in self._decoders:
            model = self.model(steps)
            decoder = TorchDecoder(model)
            if self.backend != "torch" and self.device.type == "cpu":
                from core.inference.onnx_decoder import OnnxDecoder
                from core.inference.onnx_graph import OnnxUnavailable
                try:
                    decoder = OnnxDecoder(model)
                except OnnxUnavailable:
                    if self.backend == "onnx":
                        raise
            self._decoders[steps] = decoder
        return self._decoders[steps]

    def identities(self) -> list[str]:
        """The identity library (the same in every model); loads and checksums the smallest model
        on first use."""
        return self.model(self.steps_available[-1]).identity_names

    def identity_label(self, name: str) -> str:
        """What a person reads for an identity: its voice and talking style in words
        ("flite awb · calm, wide jaw") where the training corpus described it, else its name."""
        labels = self.model(self.steps_available[-1]).config.extra.get("identity_labels", {})
        return labels.get(name, name)

    def warm_up(self, steps: int) -> None:
        """Do now what the first request would otherwise wait for: check and load ``steps``' model,
        build its decoder, load the speech encoder and the voice-activity detector and run them once."""
        from core.audio.speech_check import check_speech
        self.decoder(steps)
        self.features(WARM_UP_TONE)
        check_speech(WARM_UP_TONE)

    def encoder(self):
        if self._encoder is None:
            from core.audio.encoders import get_encoder
            self._encoder = get_encoder(self.model(self.steps_available[-1]).config.encoder)
        return self._encoder

    def features(self, audio) -> tuple[np.ndarray, dict[str, float]]:
        """Speech-encoder features [frames, dim] of a path / (rate, array) / 16 kHz array."""
        from core.audio.decode import load_audio
        t0 = time.perf_counter()
        wave = load_audio(audio)
        t1 = time.perf_counter()
        feats = self.encoder().encode(wave)
        return feats, {"decode": t1 - t0, "encoder": time.perf_counter() - t1}
