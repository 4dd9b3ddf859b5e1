"""Inference API: ``Talker.from_pretrained("checkpoints").generate("speech.wav", steps=8, seed=0)``.

The app, the CLIs, the evaluation and the benchmark all go through :class:`Talker`:
audio -> frozen speech encoder (30 fps features) -> identity match over the library ->
N-step reverse diffusion (K seeds as one batch; the decoder runs on ONNX Runtime on the CPU,
see core.inference.onnx_decoder, or on torch) -> ARKit-52 curves in [0, 1].
Checkpoints load lazily (one per step count, on first use) after their sha256 is checked
against the manifest, so start-up stays fast.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.arkit import ARKIT_NAMES, LIP_INDICES
from core.cpu import limit_numpy_blas
from core.model.diffusion import sample
from core.inputs import MAX_SEED, matched_from_voice, shown, whole_number
from core.model.manifest import ChecksumError, entry_folder, is_checkpoint_folder, model_entries, verify
from core.identities.store import attach_library
from core.model.network import DiffusionTalker, from_model_space
from core.rates import FPS, SAMPLE_RATE
from core.audio.speech_check import SpeechCheck

# Decoder backends: "onnx" (ONNX Runtime, CPU; core.inference.onnx_decoder) or "torch". "auto" picks ONNX
# Runtime on the CPU when it is installed (measured 3-4x faster there, see experiments.bench), torch on CUDA.
BACKENDS = ("auto", "onnx", "torch")
MAX_BATCH = 16            # seeds in one generate call (one batch); the app asks for fewer (demo.forms)


WARM_UP_TONE = (0.1 * np.sin(np.linspace(0, 2000, SAMPLE_RATE))).astype(np.float32)  # 1 s, not silent


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
    speech: SpeechCheck | None = None       # the voice-activity check, when one was asked for

    @property
    def frames(self) -> int:
        return int(self.blendshapes.shape[1])

    @property
    def itf(self) -> float:
        """End-to-end inference time per frame (decode + encoder + match + sampling)."""
        return self.timings["total"] / max(1, self.frames)


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
                      method=method, device=cond[0].device)


class Talker:
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
                        verify_checksums: bool = True, encoder=None, backend: str = "auto") -> "Talker":
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

    def folder(self, steps: int) -> Path:
        """The checkpoint folder of ``steps``' model."""
        return entry_folder(self.root, self.entries[self.check_steps(steps)])

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

    # -- inference ---------------------------------------------------------------------------------
    def features(self, audio) -> tuple[np.ndarray, dict[str, float]]:
        """Speech-encoder features [frames, dim] of a path / (rate, array) / 16 kHz array."""
        from core.audio.decode import load_audio
        t0 = time.perf_counter()
        wave = load_audio(audio)
        t1 = time.perf_counter()
        feats = self.encoder().encode(wave)
        return feats, {"decode": t1 - t0, "encoder": time.perf_counter() - t1}

    @torch.inference_mode()
    def generate(self, audio, steps: int = 8, seed: int = 0, identity: str | None = None, num_samples: int = 1,
                 sampler: str | None = None, features: np.ndarray | None = None,
                 speech_check: "bool | SpeechCheck" = False) -> Generation:
        """Curves for ``audio``; ``identity=None`` uses the identity matched from the voice.

        Sample k uses seed ``seed + k`` (independent of ``num_samples``).  ``sampler`` overrides
        the model's own (``config.sampler``: teachers ancestral DDPM, distilled students
        deterministic DDIM from the initial noise). ``speech_check`` runs the voice-activity
        detector (:mod:`core.audio.speech_check`): the result says whether the input sounds like
        speech, and in clips that do, the lips are closed in the pauses between phrases (a
        :class:`SpeechCheck` already made for this audio is used as it is).
        The evaluation measures the model alone (``speech_check=False``, the default).
        """
        num_samples = whole_number(num_samples, "num_samples", 1, MAX_BATCH)
        seed = whole_number(seed, "the seed", 0, MAX_SEED)
        steps = self.check_steps(steps)
        model = self.model(steps)
        timings: dict[str, float] = {}
        began = time.perf_counter()
        speech = speech_check if isinstance(speech_check, SpeechCheck) else None
        if speech_check is True:
            from core.audio.decode import load_audio
            from core.audio.speech_check import check_speech
            if not (isinstance(audio, np.ndarray) and audio.ndim == 1):
                audio = load_audio(audio)                    # decoded once, for the check and the encoder
            timings["decode"] = time.perf_counter() - began
            speech = check_speech(audio)
            timings["speech check"] = time.perf_counter() - began - timings["decode"]
        if features is None:
            features, stages = self.features(audio)
            timings.update({k: timings.get(k, 0.0) + v for k, v in stages.items()})
        t0 = time.perf_counter()
        audio_t = torch.from_numpy(np.asarray(features, np.float32)).to(self.device)
        scores = model.match(audio_t)
        matched = scores[0][0]
        used = matched if matched_from_voice(identity) else identity
        ids = torch.full((num_samples,), model.identity_index(used), dtype=torch.long, device=self.device)
        timings["match"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch_audio = audio_t.unsqueeze(0).expand(num_samples, -1, -1)
        cond = model.condition(batch_audio, ids)
        seeds = [seed + k for k in range(num_samples)]
        decoder = self.decoder(steps)
        x0 = decoder.sample(cond, seeds, len(features), sampler or model.config.sampler, rows_share_clip=True)
        curves = from_model_space(x0).float().cpu().numpy()
        if speech is not None and speech.sounds_like_speech:
            from core.audio.speech_check import pause_weights
            curves[:, :, list(LIP_INDICES)] *= pause_weights(speech, curves.shape[1])[None, :, None]
        timings["sampling"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - began
        return Generation(curves, used, matched, scores, steps, seeds, timings, decoder.name, speech=speech)
