"""Inference API: ``Talker.from_pretrained("checkpoints").generate("speech.wav", steps=8, seed=0)``.

The app, the CLIs, the evaluation and the benchmark all go through :class:`Talker`:
audio (decoded once) -> frozen speech encoder (30 fps features) -> identity match over the
library -> N-step reverse diffusion (K seeds as one batch; the decoder runs on ONNX Runtime on
the CPU, see core.inference.onnx_decoder, or on torch) -> ARKit-52 curves in [0, 1].
Loading (manifest, checksums, lazy models, backend, warm-up) is :class:`~core.inference.registry.ModelRegistry`'s.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from core.arkit import ARKIT_NAMES, LIP_INDICES
from core.audio.speech_check import SpeechCheck
from core.head_pose import HEAD_NAMES
from core.inference import closures
from core.inference.controls import Controls, check_honoured
from core.inference.output_filter import OutputFilter
from core.inference.registry import ModelRegistry
from core.inputs import MAX_SEED, matched_from_voice, whole_number
from core.model.network import curves_from_model
from core.rates import FPS

MAX_BATCH = 16            # seeds in one generate call (one batch); the app asks for fewer (demo.forms)


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
    wave: np.ndarray | None = None          # the 16 kHz audio the curves were made from (what a page should play);
                                            # None when the features were given
    head: np.ndarray | None = None          # float32 [K, frames, 3] head yaw/pitch/roll in radians (core/head_pose.py);
                                            # zeros from a model without head motion or with it switched off
    controls: Controls = field(default_factory=Controls)   # the emotion, strengths and head switch it was made with
    head_names: tuple[str, ...] = HEAD_NAMES

    def __post_init__(self):
        if self.head is None:
            self.head = np.zeros(self.blendshapes.shape[:2] + (len(HEAD_NAMES),), np.float32)

    @property
    def frames(self) -> int:
        return int(self.blendshapes.shape[1])

    @property
    def itf(self) -> float:
        """End-to-end inference time per frame (decode + encoder + match + sampling)."""
        return self.timings["total"] / max(1, self.frames)


class Talker(ModelRegistry):
    """Speech in, curves out: :meth:`generate` over the models of a :class:`ModelRegistry`."""

    @torch.inference_mode()
    def generate(self, audio, steps: int = 8, seed: int = 0, identity: str | None = None, num_samples: int = 1,
                 sampler: str | None = None, features: np.ndarray | None = None,
                 speech_check: "bool | SpeechCheck" = False, controls: Controls | None = None) -> Generation:
        """Curves for ``audio``; ``identity=None`` uses the identity matched from the voice.

        Sample k uses seed ``seed + k`` (independent of ``num_samples``).  ``sampler`` overrides
        the model's own (``config.sampler``: teachers ancestral DDPM, distilled students
        deterministic DDIM from the initial noise). ``speech_check`` runs the voice-activity
        detector (:mod:`core.audio.speech_check`): the result says whether the input sounds like
        speech, and in clips that do, the lips are closed in the pauses between phrases (a
        :class:`SpeechCheck` already made for this audio is used as it is).
        The evaluation measures the model alone (``speech_check=False``, the default).
        ``controls`` (:class:`~core.inference.controls.Controls`) sets the emotion and its intensity,
        the upper/lower face strengths and whether the head moves; a model trained without
        emotions refuses any but neutral.
        ``audio`` is decoded once (a 16 kHz float array is taken as decoded); the result's
        ``wave`` is that 16 kHz audio, so a page can play exactly what the curves follow.
        """
        controls = controls or Controls()
        num_samples = whole_number(num_samples, "num_samples", 1, MAX_BATCH)
        seed = whole_number(seed, "the seed", 0, MAX_SEED)
        steps = self.check_steps(steps)
        model = self.model(steps)
        check_honoured(controls, model.config, f"The {steps}-step model")   # before the audio is decoded
        timings: dict[str, float] = {}
        began = time.perf_counter()
        wave, features, speech = self._hear(audio, features, speech_check, timings)
        t0 = time.perf_counter()
        audio_t = torch.from_numpy(np.asarray(features, np.float32)).to(self.device)
        scores = model.match(audio_t)
        matched = scores[0][0]
        used = matched if matched_from_voice(identity) else identity
        ids = torch.full((num_samples,), model.identity_index(used), dtype=torch.long, device=self.device)
        timings["match"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch_audio = audio_t.unsqueeze(0).expand(num_samples, -1, -1)
        emotion = torch.from_numpy(controls.emotion_vector).to(self.device).expand(num_samples, -1)
        cond = model.condition(batch_audio, ids, emotion=emotion)
        seeds = [seed + k for k in range(num_samples)]
        decoder = self.decoder(steps)
        method = sampler or model.config.sampler
        x0 = decoder.sample(cond, seeds, len(features), method, rows_share_clip=True)
        channels = curves_from_model(model.config, x0).float().cpu().numpy()
        if closures.applies(controls, model.config):     # the same seeds' plain face: where its lips close
            plain = decoder.sample(model.condition(batch_audio, ids), seeds, len(features), method, rows_share_clip=True)
            channels = closures.give_way(channels, curves_from_model(model.config, plain).float().cpu().numpy())
        curves, head = controls.shape(*OutputFilter.of(model.config)(channels))
        if speech is not None and speech.sounds_like_speech:
            from core.audio.speech_check import pause_weights
            curves[:, :, list(LIP_INDICES)] *= pause_weights(speech, curves.shape[1])[None, :, None]
        timings["sampling"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - began
        return Generation(curves, used, matched, scores, steps, seeds, timings, decoder.name, speech=speech, wave=wave,
                          head=head, controls=controls)

    def _hear(self, audio, features, speech_check, timings: dict[str, float]):
        """(16 kHz wave, features, speech check) of a request: the audio is decoded once, and only
        when the features or the check need it (given features and no check: no wave)."""
        from core.audio.decode import load_audio
        from core.audio.speech_check import check_speech
        wave, speech = None, speech_check if isinstance(speech_check, SpeechCheck) else None
        if features is None or speech_check is True:
            t0 = time.perf_counter()
            wave = load_audio(audio)                  # a path, (rate, array), or 16 kHz samples
            timings["decode"] = time.perf_counter() - t0
        if speech_check is True:
            t0 = time.perf_counter()
            speech = check_speech(wave)
            timings["speech check"] = time.perf_counter() - t0
        if features is None:
            t0 = time.perf_counter()
            features = self.encoder().encode(wave)
            timings["encoder"] = time.perf_counter() - t0
        return wave, features, speech
