"""The DiffusionTalker network: identity library + personalisation adapter + GRU talker decoder.

Data flow per frame (paper Fig. 2)::

    audio features [F, A] --audio projection--> a_f ----------------------------+
    identity id --embedding (32)--> identity encoder (MLP) --> i ---------------+--> GRU x2 --> x0_hat [F, 52]
    step t --sinusoid(s = t/T)--> step encoder (MLP) --> e ---------------------+
    noisy curves x_t [F, 52] ---------------------------------------------------+
    emotion [4] x intensity --projection--> added to i (zero for neutral) ------^

Models with ``head_channels`` 3 also generate the head's yaw/pitch/roll as three more channels
(core/head_pose.py): x_t and x0_hat are then [F, 55]. Models with ``emotions`` read the emotion
vector (core/emotion.py) as an offset to the identity feature, a per-clip constant like the
identity itself; a dropped condition (classifier-free guidance) is a learned offset of its own.

The head's output is x0_hat itself (``prediction="x0"``, the first models) or v_hat, from which
x0_hat = alpha_t x_t - sigma_t v_hat (``"v"``, trained today): see core/model/diffusion.py.

Personalisation adapter (eq. 14): the audio, pooled over time and projected, and every
identity feature are L2-normalised; similarity / temperature are the logits of a
cross-entropy against the true identity.  At inference the same similarities rank the
library and pick the talking identity.

Blendshape weights live in [0, 1]; the network works in model space 2x - 1 so that the
data has roughly unit range against unit-variance diffusion noise. Models with
``upper_face_scale`` s > 1 hold the brow*, eye* and head channels s times larger there, about
their rest (a curve at 0, the head straight): small upper-face motion is then formed at noise
levels the model denoises well instead of in the last steps, where it left a frame-to-frame
wobble (docs/DECISIONS.md "Jitter in the upper face").
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.arkit import NUM_BLENDSHAPES, UPPER_INDICES
from core.model.diffusion import NoiseSchedule, ScheduleConfig
from core.model.checkpoint import CONFIG_NAME, WEIGHTS_NAME  # noqa: F401  (re-exported: checkpoints are loaded from here)
from core.inputs import shown



@dataclass
class TalkerConfig:
    identity_names: list[str] = field(default_factory=list)
    audio_dim: int = 384                 # speech encoder output size
    encoder: str = "whisper-tiny.en"     # name understood by core.audio.encoders.get_encoder
    audio_proj_dim: int = 128
    identity_dim: int = 32               # paper: identity embedding size 32
    identity_feat_dim: int = 64
    step_dim: int = 64
    hidden: int = 256                    # paper: 2-layer GRU, hidden 256
    layers: int = 2
    bidirectional: bool = False          # Whisper features already carry look-ahead; 2x cheaper
    audio_lookahead: int = 0             # also feed each frame the features this many frames later
    contrast_dim: int = 128
    temperature: float = 0.07
    use_identity: bool = True            # ablation "without identity embedding"
    steps: int = 256
    schedule: str = "linear"
    prediction: str = "x0"               # what the head outputs: "x0" (first models) or "v" (core/diffusion.py)
    sampler: str = "ddpm"                # "ddpm" (ancestral: teachers, baselines) or "ddim" (distilled students)
    parent: str | None = None            # name of the checkpoint this one was distilled from
    distilled: bool = False
    data_fingerprint: str | None = None
    head_channels: int = 0               # 3: head yaw/pitch/roll beside the 52 curves (core/head_pose.py)
    emotions: list[str] = field(default_factory=list)   # the emotion vector's axes (core/emotion.py); [] none
    upper_face_scale: float = 1.0        # brow*, eye*, head channels this many times larger in model space
    extra: dict = field(default_factory=dict)

    @property
    def channels(self) -> int:
        """Channels the diffusion runs on: the 52 curves, then the head's angles if it makes them."""
        return NUM_BLENDSHAPES + self.head_channels

    @property
    def schedule_config(self) -> ScheduleConfig:
        return ScheduleConfig(steps=self.steps, kind=self.schedule)


def to_model_space(curves: torch.Tensor) -> torch.Tensor:
    return curves * 2.0 - 1.0


def from_model_space(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1.0) * 0.5).clamp(0.0, 1.0)


def stretch_upper_face(config: TalkerConfig, x: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Scale the brow*, eye* and head channels of x [..., C] (model space) by ``upper_face_scale``
    about their rest (-1: a curve at 0; 0: the head straight), or undo it."""
    if config.upper_face_scale == 1.0:
        return x
    scale = torch.ones(config.channels, dtype=x.dtype, device=x.device)
    scale[list(UPPER_INDICES)] = config.upper_face_scale
    scale[NUM_BLENDSHAPES:] = config.upper_face_scale
    rest = torch.full((config.channels,), -1.0, dtype=x.dtype, device=x.device)
    rest[NUM_BLENDSHAPES:] = 0.0
    return rest + (x - rest) * (1.0 / scale if inverse else scale)


def model_targets(model: "DiffusionTalker", curves: torch.Tensor) -> torch.Tensor:
    """The clean sample x0 in model space with the model's channels. Data without the head's
    channels (e.g. an enrolment's takes) gets a straight head there; callers that must not learn
    it score only the data's own channels."""
    x0 = to_model_space(curves[..., :model.config.channels])
    missing = model.config.channels - x0.shape[-1]
    return stretch_upper_face(model.config, F.pad(x0, (0, missing)) if missing > 0 else x0)


def curves_from_model(config: TalkerConfig, x: torch.Tensor) -> torch.Tensor:
    """A sample in model space [..., C] -> the curves (and head channels) in [0, 1]."""
    return from_model_space(stretch_upper_face(config, x, inverse=True))


def masked_moments(audio: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-clip mean and variance [B, 1, A] of frame features [B, F, A] over the valid frames."""
    w = mask.to(audio.dtype).unsqueeze(-1)
    n = w.sum(1, keepdim=True).clamp(min=1.0)
    mean = (audio * w).sum(1, keepdim=True) / n
    return mean, ((audio - mean) ** 2 * w).sum(1, keepdim=True) / n


def sinusoidal_embedding(s: torch.Tensor, dim: int) -> torch.Tensor:
    """Embed continuous time s in [0, 1] (scaled to 0..1000 as in DDPM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=s.device, dtype=torch.float32) / half)
    angles = (s.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def mlp(dim_in: int, dim_hidden: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim_hidden), nn.SiLU(), nn.Linear(dim_hidden, dim_out))


class DiffusionTalker(nn.Module):
    def __init__(self, config: TalkerConfig):
        super().__init__()
        if not config.identity_names:
            raise ValueError("a talker needs at least one identity in its library")
        self.config = c = config
        self.schedule = NoiseSchedule(c.schedule_config)
        audio_in = c.audio_dim * (2 if c.audio_lookahead else 1)
        self.audio_proj = nn.Sequential(nn.Linear(audio_in, c.audio_proj_dim), nn.SiLU(),
                                        nn.Linear(c.audio_proj_dim, c.audio_proj_dim))
        self.identity_embedding = nn.Embedding(len(c.identity_names), c.identity_dim)
        self.identity_encoder = mlp(c.identity_dim, c.identity_feat_dim, c.identity_feat_dim)
        self.step_encoder = mlp(c.step_dim, c.step_dim, c.step_dim)
        # Adapter heads: pooled (mean, std) audio -> contrast space; identity feature -> contrast space.
        self.audio_contrast = mlp(2 * c.audio_dim, c.contrast_dim * 2, c.contrast_dim)
        self.identity_contrast = nn.Linear(c.identity_feat_dim, c.contrast_dim)
        dec_in = c.audio_proj_dim + c.identity_feat_dim + c.step_dim + c.channels
        self.decoder = nn.GRU(dec_in, c.hidden, num_layers=c.layers, batch_first=True,
                              bidirectional=c.bidirectional)
        self.head = nn.Linear(c.hidden * (2 if c.bidirectional else 1), c.channels)
        if c.emotions:
            # zero at the start: a model widened to read emotions first computes what it did without
            self.emotion_projection = nn.Linear(len(c.emotions), c.identity_feat_dim, bias=False)
            nn.init.zeros_(self.emotion_projection.weight)
            self.emotion_dropped = nn.Parameter(torch.zeros(c.identity_feat_dim))

    @property
    def identity_names(self) -> list[str]:
        return self.config.identity_names

    # -- personalisation adapter -------------------------------------------------------------------
    def identity_features(self, ids: torch.Tensor | None = None, table: torch.Tensor | None = None) -> torch.Tensor:
        """Identity encoder output for the given ids (all identities when None).

        ``table`` replaces the embedding table, e.g. library + one embedding being enrolled.
        """
        table = self.identity_embedding.weight if table is None else table
        return self.identity_encoder(table if ids is None else table[ids])

    def audio_embedding(self, audio: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised utterance embedding from frame features [B, F, A] (mask [B, F])."""
        if mask is None:
            mask = torch.ones(audio.shape[:2], device=audio.device, dtype=audio.dtype)
        mean, var = masked_moments(audio, mask)
        std = var.clamp(min=1e-6).sqrt()
        return F.normalize(self.audio_contrast(torch.cat([mean[:, 0], std[:, 0]], -1)), dim=-1)

    def identity_logits(self, audio: torch.Tensor, mask: torch.Tensor | None = None,
                        table: torch.Tensor | None = None) -> torch.Tensor:
        """Cosine similarity / temperature between each clip and every library identity [B, M]."""
        ident = F.normalize(self.identity_contrast(self.identity_features(table=table)), dim=-1)
        return self.audio_embedding(audio, mask) @ ident.T / self.config.temperature

    def match(self, audio: torch.Tensor) -> list[tuple[str, float]]:
        """Rank the library for one clip's features [F, A]: [(identity, cosine similarity), ...]."""
        with torch.inference_mode():
            sims = self.identity_logits(audio.unsqueeze(0))[0] * self.config.temperature
        order = torch.argsort(sims, descending=True).tolist()
        return [(self.identity_names[i], float(sims[i])) for i in order]

    def identity_index(self, name: str) -> int:
        try:
            return self.identity_names.index(name)
        except ValueError:
            raise ValueError(f"unknown identity {shown(name)}; known: {', '.join(self.identity_names)}") from None

    # -- denoiser ----------------------------------------------------------------------------------
    def condition(self, audio: torch.Tensor, ids: torch.Tensor, table: torch.Tensor | None = None,
                  emotion: torch.Tensor | None = None,
                  dropped: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sequence conditioning that does not change across diffusion steps (computed once):
        the projected audio and the identity feature, with the emotion ([B, E], None: neutral)
        added to the latter; rows where ``dropped`` [B] is true get the dropped-condition offset
        instead (training with the condition dropped, and the unconditional half of guidance)."""
        a = self.project_audio(audio)
        ident = self.identity_features(ids, table)
        if not self.config.use_identity:
            ident = torch.zeros_like(ident)
        if self.config.emotions:
            offset = self.emotion_projection(emotion.to(ident)) if emotion is not None else torch.zeros_like(ident)
            if dropped is not None:       # the row's emotion is not seen: what guidance contrasts against
                offset = torch.where(dropped[:, None], self.emotion_dropped.expand_as(offset), offset)
            ident = ident + offset
        elif emotion is not None and bool(emotion.abs().sum() > 0):
            raise ValueError("this model was trained without emotions; ask for neutral")
        return a, ident

    def project_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Per-frame audio input of the decoder [B, F, audio_proj_dim] from features [B, F, A].

        With ``audio_lookahead`` k, frame f also sees the features of frame f + k (the last frame's
        beyond the end): lips close before the burst of a p/b/m, and the GRU runs forward in time.
        """
        k = self.config.audio_lookahead
        if k:
            later = audio[:, min(k, audio.shape[1] - 1):]
            later = torch.cat([later, later[:, -1:].expand(-1, audio.shape[1] - later.shape[1], -1)], 1)
            audio = torch.cat([audio, later], -1)
        return self.audio_proj(audio)

    def step_features(self, t: torch.Tensor) -> torch.Tensor:
        """Step-encoder output [B, step_dim] for step indices t [B] on this model's grid."""
        return self.step_encoder(sinusoidal_embedding(self.schedule.time(t), self.config.step_dim))

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Predict x0 [B, F, C] (model space) from x_t [B, F, C] at step indices t [B]; C = config.channels."""
        a, ident = cond
        frames = x_t.shape[1]
        step = self.step_features(t)
        inp = torch.cat([a, ident[:, None].expand(-1, frames, -1), step[:, None].expand(-1, frames, -1), x_t], -1)
        out, _ = self.decoder(inp)
        return self.schedule.x0_from_output(self.head(out), x_t, t, self.config.prediction)

    def forward(self, x_t, t, audio, ids, mask=None, emotion=None, dropped=None):
        """Training entry point (what DDP wraps): x0 prediction and identity logits."""
        cond = self.condition(audio, ids, emotion=emotion, dropped=dropped)
        return self.denoise(x_t, t, cond), self.identity_logits(audio, mask)

    def add_identities(self, names: list[str], embeddings: torch.Tensor) -> None:
        """Grow the library (enrolment); existing identities keep their index."""
        clash = set(names) & set(self.identity_names)
        if clash:
            raise ValueError(f"identity already in the library: {', '.join(sorted(clash))}")
        old = self.identity_embedding.weight.data
        table = torch.cat([old, embeddings.to(old)], 0)
        self.identity_embedding = nn.Embedding.from_pretrained(table, freeze=False)
        self.config.identity_names = list(self.identity_names) + list(names)

    # -- persistence -------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, dtype: torch.dtype = torch.float32) -> Path:
        from safetensors.torch import save_file
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in self.state_dict().items()}
        tmp = directory / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp), metadata={"format": "pt"})
        tmp.replace(directory / WEIGHTS_NAME)
        (directory / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "DiffusionTalker":
        """Load safetensors weights + JSON config (never pickle). Clear errors for broken files.

        Weights only: the identities users enrolled are user data, attached by whoever serves
        users (:func:`core.identities.store.attach_library`, which the Talker calls), so nothing
        that writes a model back can bake them into shipped weights."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        directory = Path(directory)
        cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not cfg_path.is_file() or not w_path.is_file():
            raise ValueError(f"{directory} is not a checkpoint (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
        model = cls(read_config(directory))
        try:
            state = load_file(str(w_path))
            model.load_state_dict({k: v.float() for k, v in state.items()})
        except (SafetensorError, RuntimeError, OSError) as err:
            raise ValueError(f"{w_path}: broken or mismatched weights ({str(err).splitlines()[0]})") from None
        return model.to(device).eval()


def read_config(directory: str | Path) -> TalkerConfig:
    """A checkpoint's :class:`TalkerConfig`, without its weights (what it can do, before it is loaded)."""
    cfg_path = Path(directory) / CONFIG_NAME
    try:
        raw = json.loads(cfg_path.read_text())
        raw.setdefault("sampler", "ddim" if raw.get("distilled") else "ddpm")  # configs older than the field
        return TalkerConfig(**raw)
    except (json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{cfg_path}: broken config ({err})") from None
