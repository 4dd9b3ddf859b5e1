"""Does a model trained only on synthetic TTS lip-sync *real human* speech?

Real recordings with a known text are forced-aligned with pocketsphinx (CMU's en-us acoustic
model, 100 Hz phone frames), or phone-recognised where no text is known; every animation frame
(30 fps) then gets the phone under its centre. The check asks what any viewer would: is the
mouth open on open vowels (aa ae ah ao aw ay) and closed on bilabials (p b m)? It reports the
AUC of telling open-vowel frames from bilabial frames

* by the model's ``jawOpen``;
* by its lip aperture, ``jawOpen - mouthClose`` (ARKit's ``mouthClose`` means "lips together
  despite an open jaw", and the corpus draws it so: ``mouthClose = closure^2 * jawOpen``, see
  :mod:`core.data.visemes`);
* by a lips-pressed score, ``mean(mouthPressLeft, mouthPressRight) + mouthRollLower`` (what the
  corpus adds for p/b/m), with the sign flipped so that higher always means "more open";
* by loudness alone (frame RMS in dB, no model): the baseline the model must beat, since open
  vowels are loud and closures quiet.

The same texts spoken by espeak-ng go through the same steps as a control (the kind of voice
the model was trained on). It also reports how closely the model's ``jawOpen`` and aperture
follow the corpus's own rules applied to the aligned phones (Pearson r against
:func:`core.data.visemes.lower_face` with the neutral style), the AUC of those rule-drawn curves
(the ceiling at this labelling), and which library identity each real voice matches.

The recordings (all real people, none synthetic) come from two packages' test data:

* PyPI ``pocketsphinx==5.1.1`` source distribution: five LibriVox clips of *Sense and
  Sensibility* (public domain) and six CMU test utterances (BSD-style CMU licence);
* Debian ``codec2-examples``: a female reading four Harvard sentences (16 kHz) and seven
  classic 8 kHz speech-coding samples (LGPL-2.1 per the package's copyright file).

``--fetch`` downloads both with their ordinary clients (``pip download``, ``apt-get download``)
and stores each clip as a 16 kHz wav in ``--audio-dir``; two short clips ship in
``demo/examples`` (see its SOURCES.md), so the check runs on those without fetching.

    python -m core.realspeech --fetch                      # once: ~35 MB of downloads
    python -m core.realspeech --checkpoints checkpoints --steps 8 --out docs/real_speech.png
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.arkit import INDEX
from core.audio import FPS, SAMPLE_RATE, load_audio
from core.data.tts import PHONES, Phone

OPEN_VOWELS = frozenset("aa ae ah ao aw ay".split())
BILABIALS = frozenset("p b m".split())
PHONE_FRAME_RATE = 100          # pocketsphinx's default frame rate (-frate), frames per second
ALIGN_PAD_S = 0.2               # silence added around a clip before aligning it
DITHER_LSB = 2.0                # std of the noise added before aligning, in 16-bit steps
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "demo" / "examples"
DEFAULT_AUDIO_DIR = Path.home() / ".cache" / "diffusiontalker" / "real_speech"
SECTION = "real-speech"


# ---------------------------------------------------------------------------------------------
# The recordings

@dataclass(frozen=True)
class Package:
    """Where a set of recordings is published: a PyPI sdist or a Debian binary package."""
    kind: str                    # "pypi" | "debian"
    spec: str                    # what the client is asked for
    prefix: str                  # path of the recordings inside the archive
    licence: str


PACKAGES = {
    "pocketsphinx": Package("pypi", "pocketsphinx==5.1.1", "pocketsphinx-5.1.1/test/data/",
                            "BSD-style (CMU), see the sdist's LICENSE"),
    "codec2": Package("debian", "codec2-examples", "./usr/share/codec2/",
                      "LGPL-2.1 (Debian copyright file of codec2-examples)"),
}


@dataclass(frozen=True)
class Recording:
    name: str                    # file stem in the audio folder
    speaker: str                 # as far as the source tells
    package: str                 # key of PACKAGES
    member: str                  # path under the package's prefix (.raw = 16 kHz int16, headerless)
    transcript: str | None       # None: phones by recognition instead of forced alignment
    group: str                   # results are pooled per group
    seconds: float | None = None  # keep only the first seconds (shipped clips must stay short)


_LIBRIVOX = "librivox/sense_and_sensibility_01_austen_64kb-{}.wav"
_ALIGNED, _NARROW = "16 kHz, forced-aligned", "8 kHz, phone-recognised"
RECORDINGS: tuple[Recording, ...] = (
    Recording("librivox-0870", "LibriVox reader (male)", "pocketsphinx", _LIBRIVOX.format("0870"),
              "and mister john dashwood had then leisure to consider how much there might be "
              "prudently in his power to do for them", _ALIGNED),
    Recording("librivox-0880", "LibriVox reader (male)", "pocketsphinx", _LIBRIVOX.format("0880"),
              "he was not an ill disposed young man", _ALIGNED),
    Recording("librivox-0890", "LibriVox reader (male)", "pocketsphinx", _LIBRIVOX.format("0890"),
              "unless to be rather cold hearted and rather selfish is to be ill disposed", _ALIGNED),
    Recording("librivox-0920", "LibriVox reader (male)", "pocketsphinx", _LIBRIVOX.format("0920"),
              "had he married a more a amiable woman he might have been made still more "
              "respectable than he was", _ALIGNED),
    Recording("librivox-0930", "LibriVox reader (male)", "pocketsphinx", _LIBRIVOX.format("0930"),
              "he might even have been made amiable himself", _ALIGNED),
    *(Recording(f"cmu-cards-{i:03d}", "CMU test speaker (male)", "pocketsphinx", f"cards/{i:03d}.wav",
                text, _ALIGNED)
      for i, text in enumerate(("ten of clubs", "four queen of clubs", "seven of clubs", "five five",
                                "eight of spades four of clubs seven of hearts"), start=1)),
    Recording("cmu-goforward", "CMU test speaker (male)", "pocketsphinx", "goforward.raw",
              "go forward ten meters", _ALIGNED),
    Recording("harvard-f", "codec2 sample speaker (female)", "codec2", "raw/speech_orig_16k.wav",
              "the birch canoe slid on the smooth planks glue the sheet to the dark blue background "
              "it's easy to tell the depth of a well", _ALIGNED, seconds=7.85),
    *(Recording(f"codec2-{stem}", f"codec2 sample '{stem}'", "codec2", f"wav/{stem}.wav", None, _NARROW)
      for stem in ("hts1a", "hts2a", "forig", "morig", "mmt1", "big_dog", "cross")),
)


def find_audio(recording: Recording, audio_dir: str | Path | None = None) -> Path | None:
    """The 16 kHz wav of ``recording`` in ``audio_dir``, else in demo/examples, else None."""
    for folder in (Path(audio_dir or DEFAULT_AUDIO_DIR), EXAMPLES_DIR):
        path = folder / f"{recording.name}.wav"
        if path.is_file():
            return path
    return None


def fetch(audio_dir: str | Path = DEFAULT_AUDIO_DIR, recordings=RECORDINGS) -> list[Path]:
    """Download the source packages and store every recording as a 16 kHz PCM wav."""
    import soundfile as sf

    audio_dir = Path(audio_dir)
    audio_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in sorted({r.package for r in recordings}):
            package = PACKAGES[key]
            try:
                archive = _open_package(package, Path(tmp))
            except (OSError, subprocess.CalledProcessError) as err:
                hint = " (run apt-get update first?)" if package.kind == "debian" else ""
                print(f"could not download {package.spec}: {err}{hint}", file=sys.stderr)
                continue
            with archive:
                for rec in (r for r in recordings if r.package == key):
                    data = archive.extractfile(package.prefix + rec.member).read()
                    if rec.member.endswith(".raw"):
                        audio = load_audio(np.frombuffer(data, "<i2"))
                    else:
                        samples, rate = sf.read(io.BytesIO(data), dtype="int16")
                        audio = load_audio((rate, samples))
                    if rec.seconds:
                        audio = audio[: int(rec.seconds * SAMPLE_RATE)]
                    path = audio_dir / f"{rec.name}.wav"
                    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
                    written.append(path)
    return written


def _open_package(package: Package, tmp: Path) -> tarfile.TarFile:
    """Download ``package`` into ``tmp`` and open its file tree as a tar archive."""
    if package.kind == "pypi":
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
                        ":all:", package.spec, "-d", str(tmp)], check=True)
        return tarfile.open(next(tmp.glob("*.tar.gz")))
    subprocess.run(["apt-get", "download", "-q", package.spec], cwd=tmp, check=True)
    deb = next(tmp.glob(f"{package.spec}_*.deb"))
    tree = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    return tarfile.open(fileobj=io.BytesIO(tree))


# ---------------------------------------------------------------------------------------------
# Phones from real audio (pocketsphinx)

def pocketsphinx_available() -> bool:
    from importlib.util import find_spec
    return find_spec("pocketsphinx") is not None


def align_phones(audio: np.ndarray, transcript: str | None = None) -> list[Phone]:
    """Phones of 16 kHz ``audio``: forced alignment to ``transcript``, else phone recognition.

    Labels are lower-case ARPAbet as in :mod:`core.data.tts`; silence and pocketsphinx's noise
    phones become ``pau``. Raises ``ValueError`` when the text cannot be aligned to the audio.
    """
    if not pocketsphinx_available():
        raise RuntimeError("phone alignment needs pocketsphinx: pip install pocketsphinx==5.1.1")
    from pocketsphinx import Decoder, get_model_path

    # Silence around the speech lets the aligner start and end in its silence model even when a
    # clip begins or ends mid-word; the pad is taken off the times again below. A little fixed
    # noise (dither) keeps exact digital silence (the pad, synthetic speech) from giving
    # log(0) features, which otherwise wreck the search.
    pad = np.zeros(int(ALIGN_PAD_S * SAMPLE_RATE))
    padded = np.concatenate([pad, np.asarray(audio, np.float64), pad]) * 32767
    padded += np.random.default_rng(0).normal(0.0, DITHER_LSB, len(padded))
    pcm = np.clip(np.round(padded), -32768, 32767).astype("<i2").tobytes()

    def decode(decoder):
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()

    if transcript is None:
        decoder = Decoder(loglevel="FATAL", allphone=get_model_path("en-us/en-us-phone.lm.bin"),
                          lw=2.0, pip=0.3, beam=1e-200, pbeam=1e-20)
        decode(decoder)
        spans = [(s.word, s.start_frame, s.end_frame + 1) for s in decoder.seg()]
    else:
        words = transcript.lower().split()
        decoder = Decoder(loglevel="FATAL", lm=None)
        decoder.set_align_text(" ".join(words))
        try:
            decode(decoder)                  # word alignment first, then phones within the words
            decoder.set_alignment()
            decode(decoder)
            alignment = decoder.get_alignment()
        except RuntimeError:                 # the search never reached the end of the text
            alignment = None
        # When the search cannot reach the end of the text it may return just a prefix of it.
        aligned = [] if alignment is None else [w.name.split("(")[0] for w in alignment
                                                if not w.name.startswith(("<", "+", "["))]
        if aligned != words:
            raise ValueError(f"could not align the text {transcript!r} to the audio "
                             f"(aligned: {' '.join(aligned) or 'nothing'})")
        spans = [(p.name, p.start, p.start + p.duration) for p in alignment.phones()]
    seconds = len(audio) / SAMPLE_RATE
    phones = []
    for label, start, end in spans:
        label = label.lower()
        start = min(max(start / PHONE_FRAME_RATE - ALIGN_PAD_S, 0.0), seconds)
        end = min(max(end / PHONE_FRAME_RATE - ALIGN_PAD_S, 0.0), seconds)
        if end > start:
            phones.append(Phone(label if label in PHONES else "pau", start, end))
    return phones


def frame_labels(phones: list[Phone], frames: int, fps: int = FPS) -> np.ndarray:
    """The phone under each animation frame's centre (``pau`` where none is)."""
    centres = (np.arange(frames) + 0.5) / fps
    labels = np.full(frames, "pau", dtype=object)
    for phone in phones:
        labels[(centres >= phone.start) & (centres < phone.end)] = phone.label
    return labels


# ---------------------------------------------------------------------------------------------
# Metrics

def auc(scores, positive) -> float:
    """Probability that a random positive frame scores above a random negative one (ties = 1/2).

    The Mann-Whitney U statistic from ranks; ``positive`` is a boolean mask over ``scores``.
    """
    from scipy.stats import rankdata

    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs frames of both classes")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def frame_loudness(audio: np.ndarray, frames: int, fps: int = FPS, window_s: float = 0.05) -> np.ndarray:
    """RMS level in dB of a ``window_s`` window centred on each animation frame."""
    audio = np.asarray(audio, np.float64)
    half = int(window_s * SAMPLE_RATE / 2)
    padded = np.pad(audio, half)
    power = np.concatenate([[0.0], np.cumsum(padded ** 2)])
    centres = np.minimum(((np.arange(frames) + 0.5) * SAMPLE_RATE / fps).astype(int), len(audio))
    mean_power = (power[centres + 2 * half] - power[centres]) / (2 * half)
    return 10.0 * np.log10(mean_power + 1e-10)


def mouth_scores(curves: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame openness scores from ARKit curves [frames, 52]; higher = more open, always."""
    c = np.asarray(curves, np.float64)
    jaw = c[:, INDEX["jawOpen"]]
    press = 0.5 * (c[:, INDEX["mouthPressLeft"]] + c[:, INDEX["mouthPressRight"]]) + c[:, INDEX["mouthRollLower"]]
    return {"jawOpen": jaw, "lip aperture": jaw - c[:, INDEX["mouthClose"]], "lips pressed (-)": -press}


def open_vs_bilabial(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the frames that count: (inside an open vowel or a bilabial, is an open vowel)."""
    labels = np.asarray(labels, dtype=object)
    is_open = np.isin(labels, list(OPEN_VOWELS))
    return is_open | np.isin(labels, list(BILABIALS)), is_open


def pearson(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def separation(rows: list[dict], score_names, resamples: int = 1000, seed: int = 0) -> dict[str, tuple]:
    """Pooled AUC per score over recordings, with a 95 % bootstrap interval over recordings.

    ``rows``: dicts with ``scores`` (name -> per-frame array) and ``labels``.
    Returns name -> (auc, low, high); the interval is NaN when fewer than 3 recordings.
    """
    pieces = []
    for row in rows:
        keep, is_open = open_vs_bilabial(row["labels"])
        pieces.append(({n: row["scores"][n][keep] for n in score_names}, is_open[keep]))

    def pooled(idx):
        positive = np.concatenate([pieces[i][1] for i in idx])
        return {n: auc(np.concatenate([pieces[i][0][n] for i in idx]), positive) for n in score_names}

    point = pooled(range(len(pieces)))
    boots = {n: [] for n in score_names}
    if len(pieces) >= 3:
        rng = np.random.default_rng(seed)
        for _ in range(resamples):
            try:
                for n, v in pooled(rng.integers(0, len(pieces), len(pieces))).items():
                    boots[n].append(v)
            except ValueError:       # a resample without one of the classes
                continue
    return {n: (point[n], *(np.percentile(boots[n], [2.5, 97.5]) if boots[n] else (np.nan, np.nan)))
            for n in score_names}


# ---------------------------------------------------------------------------------------------
# Running the model

def analyse(talker, recording: Recording, audio: np.ndarray, phones: list[Phone] | None = None,
            steps: int = 8, seed: int = 0) -> dict:
    """Phones (aligned unless given), curves, scores and identity match of 16 kHz ``audio``."""
    from core.data.visemes import lower_face

    phones = phones or align_phones(audio, recording.transcript)
    gen = talker.generate(audio, steps=steps, seed=seed)
    curves = gen.blendshapes[0]
    frames = len(curves)
    scores = mouth_scores(curves)
    scores["loudness (no model)"] = frame_loudness(audio, frames)
    reference = mouth_scores(lower_face(phones, frames))   # the corpus's own rules for these phones
    for name in ("jawOpen", "lip aperture"):                # their AUC is the ceiling at this labelling
        scores[f"rules: {name}"] = reference[name]
    return {"recording": recording, "audio": audio, "phones": phones, "labels": frame_labels(phones, frames),
            "curves": curves, "scores": scores, "seconds": len(audio) / SAMPLE_RATE,
            "r_jaw": pearson(scores["jawOpen"], reference["jawOpen"]),
            "r_aperture": pearson(scores["lip aperture"], reference["lip aperture"]),
            "identity": gen.matched_identity, "scores_identity": gen.scores}


TTS_VOICE = "en-us"
TTS_GROUP = f"TTS control (espeak-ng {TTS_VOICE}, same texts)"


def tts_control(recordings) -> list[tuple[Recording, np.ndarray]]:
    """The transcribed recordings' texts spoken by espeak-ng: the same check on the kind of
    voice the model was trained on, so that a drop on real voices can be told from a weak model.
    Its phones come from the same forced alignment as the real recordings' (not from the engine),
    so both sides are labelled alike."""
    from core.data.tts import Voice, synthesize

    out = []
    for rec in recordings:
        if rec.transcript and rec.group == _ALIGNED:
            audio, _ = synthesize(rec.transcript, Voice("espeak", TTS_VOICE))
            out.append((Recording(f"tts-{rec.name}", f"espeak-ng {TTS_VOICE}", "espeak-ng", "",
                                  rec.transcript, TTS_GROUP), audio))
    return out


SCORE_NAMES = ("jawOpen", "lip aperture", "lips pressed (-)", "loudness (no model)", "rules: jawOpen",
               "rules: lip aperture")


def summarise(rows: list[dict]) -> list[dict]:
    """One result per group and one for all recordings together."""
    groups = {}
    for row in rows:
        groups.setdefault(row["recording"].group, []).append(row)
    real = [r for r in rows if r["recording"].group != TTS_GROUP]
    if len({r["recording"].group for r in real}) > 1:
        groups["all real recordings"] = real
    out = []
    for name, members in groups.items():
        masks = [open_vs_bilabial(r["labels"]) for r in members]
        n_open = sum(int(m[1].sum()) for m in masks)
        n_bilabial = sum(int((m[0] & ~m[1]).sum()) for m in masks)
        is_open = np.concatenate([m[1] for m in masks])
        is_bilabial = np.concatenate([m[0] & ~m[1] for m in masks])

        def class_means(name, sign=1.0):
            values = sign * np.concatenate([r["scores"][name] for r in members])
            return tuple(float(values[mask].mean()) if mask.any() else np.nan for mask in (is_open, is_bilabial))
        result = {"group": name, "recordings": len(members),
                  "speakers": len({r["recording"].speaker for r in members}),
                  "seconds": sum(r["seconds"] for r in members), "open": n_open, "bilabial": n_bilabial,
                  "mean_jaw": class_means("jawOpen"), "mean_pressed": class_means("lips pressed (-)", -1.0),
                  "r_jaw": float(np.nanmean([r["r_jaw"] for r in members])),
                  "r_aperture": float(np.nanmean([r["r_aperture"] for r in members]))}
        if n_open and n_bilabial:
            result["auc"] = separation(members, SCORE_NAMES)
        out.append(result)
    return out


# ---------------------------------------------------------------------------------------------
# Report: plot and markdown

_OPEN_COLOUR, _BILABIAL_COLOUR = "#f4a261", "#2a9d8f"


def plot(rows: list[dict], out: str | Path, title: str = "") -> Path:
    """Waveform with phones shaded, and the model's mouth curves, for each row (1-2 recordings)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = 3.3 * len(rows) + 0.6                      # + room for the legend at the bottom
    fig, axes = plt.subplots(2 * len(rows), 1, figsize=(12, height), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 1.4] * len(rows)})
    for k, row in enumerate(rows):
        wave_ax, curve_ax = axes[2 * k, 0], axes[2 * k + 1, 0]
        audio, seconds = row["audio"], row["seconds"]
        t = np.arange(len(audio)) / SAMPLE_RATE
        step = max(1, len(audio) // 6000)               # decimate: keeps the PNG small
        wave_ax.plot(t[::step], audio[::step], color="0.35", lw=0.5)
        for ax in (wave_ax, curve_ax):
            for phone in row["phones"]:
                colour = (_OPEN_COLOUR if phone.label in OPEN_VOWELS else
                          _BILABIAL_COLOUR if phone.label in BILABIALS else None)
                if colour:
                    ax.axvspan(phone.start, phone.end, color=colour, alpha=0.35, lw=0)
            ax.set_xlim(0, seconds)
        peak = np.abs(audio).max()
        for phone in row["phones"]:
            if phone.label != "pau":
                wave_ax.text((phone.start + phone.end) / 2, 1.02 * peak, phone.label, ha="center",
                             va="bottom", fontsize=6, clip_on=True,
                             weight="bold" if phone.label in OPEN_VOWELS | BILABIALS else "normal")
        rec = row["recording"]
        wave_ax.set_ylim(-1.1 * peak, 1.35 * peak)
        wave_ax.set_yticks([])
        wave_ax.set_xticklabels([])
        wave_ax.set_title(f"{rec.name}: {rec.speaker}, {rec.group}; voice matched to {row['identity']}",
                          fontsize=9, loc="left")
        ft = (np.arange(len(row["curves"])) + 0.5) / FPS
        s = row["scores"]
        curve_ax.plot(ft, s["rules: jawOpen"], color="#e76f51", lw=0.9, ls=":")
        curve_ax.plot(ft, s["jawOpen"], color="#e76f51", lw=1.5)
        curve_ax.plot(ft, s["lip aperture"], color="#264653", lw=1.1)
        curve_ax.plot(ft, -s["lips pressed (-)"], color="#2a9d8f", lw=1.1, ls="--")
        loud = s["loudness (no model)"]
        loud = (loud - loud.min()) / max(np.ptp(loud), 1e-9) * max(0.2, float(s["jawOpen"].max()))
        curve_ax.plot(ft, loud, color="0.65", lw=0.7)
        curve_ax.set_ylabel("weight", fontsize=8)
        curve_ax.tick_params(labelsize=7)
        if k == len(rows) - 1:
            curve_ax.set_xlabel("seconds", fontsize=8)
    line = matplotlib.lines.Line2D
    handles = [matplotlib.patches.Patch(color=_OPEN_COLOUR, alpha=0.5, label="open vowel (aa ae ah ao aw ay)"),
               matplotlib.patches.Patch(color=_BILABIAL_COLOUR, alpha=0.5, label="bilabial (p b m)"),
               line([], [], color="#e76f51", lw=1.5, label="jawOpen (model)"),
               line([], [], color="#264653", lw=1.1, label="lip aperture = jawOpen - mouthClose"),
               line([], [], color="#2a9d8f", lw=1.1, ls="--", label="lips pressed = mouthPress + mouthRollLower"),
               line([], [], color="#e76f51", lw=0.9, ls=":", label="jawOpen by the corpus rules"),
               line([], [], color="0.65", lw=0.7, label="loudness (scaled; no model)")]
    fig.legend(handles=handles, loc="lower center", fontsize=7.5, ncol=4, frameon=False)
    if title:
        fig.suptitle(title, x=0.01, ha="left", fontsize=10)
    fig.tight_layout(rect=(0, 0.6 / height, 1, 1 - 0.3 / height))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def markdown(rows: list[dict], summary: list[dict], model: str, steps: int, plot_path: Path | None,
             not_found: list[str] = (), unaligned: list[str] = ()) -> str:
    from core.report import table

    lines = [
        "## Real human speech (lip-sync sanity check)",
        "",
        f"Written by `python -m core.realspeech --steps {steps}` (model: {model}, seed 0). The model never "
        "heard a human voice in training. Frames (30 fps) inside open vowels (aa ae ah ao aw ay) and "
        "inside bilabials (p b m), phones from pocketsphinx forced alignment to the known text "
        "(or phone recognition where none is known); AUC = chance that a random open-vowel frame "
        "scores as more open than a random bilabial frame (0.5 = no separation), with a 95 % "
        "bootstrap interval over recordings. Lip aperture = jawOpen - mouthClose; lips pressed = "
        "mean(mouthPress L/R) + mouthRollLower, sign flipped. *Loudness* uses no model at all: "
        "it is the baseline to beat. r = Pearson correlation with the corpus's own viseme rules "
        "applied to the aligned phones (mean over recordings); *rules:* columns score those rule-drawn "
        "curves themselves, the ceiling at this frame labelling (the rules' coarticulation and 30 ms "
        "lead blur phone edges too). The TTS control speaks the same texts "
        "with espeak-ng and goes through the same alignment and measurement: the model's home ground.",
        "",
    ]
    header = ["recordings", "speakers", "seconds", "open / bilabial frames", "mean jawOpen: open / bilabial",
              "mean lips pressed: open / bilabial",
              *(f"AUC {n}" for n in SCORE_NAMES), "r jaw", "r aperture"]
    body = []
    for res in summary:
        aucs = [f"{a:.3f} [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else f"{a:.3f}"
                for a, lo, hi in (res["auc"][n] for n in SCORE_NAMES)] if "auc" in res else ["-"] * len(SCORE_NAMES)
        body.append([f"{res['group']}: {res['recordings']}", res["speakers"], f"{res['seconds']:.1f}",
                     f"{res['open']} / {res['bilabial']}", "{:.3f} / {:.3f}".format(*res["mean_jaw"]),
                     "{:.3f} / {:.3f}".format(*res["mean_pressed"]),
                     *aucs, f"{res['r_jaw']:.2f}", f"{res['r_aperture']:.2f}"])
    lines += [table(header, body), ""]
    lines += ["Identity matching (the voice -> nearest library identity, cosine similarity):", ""]
    id_rows = []
    for row in (r for r in rows if r["recording"].group != TTS_GROUP):
        (best, sim), *rest = row["scores_identity"]
        runner = f"{rest[0][0]} ({rest[0][1]:.3f})" if rest else "-"
        id_rows.append([row["recording"].name, row["recording"].speaker, f"{row['seconds']:.1f}",
                        f"{best} ({sim:.3f})", runner,
                        *(_fmt(auc_or_nan(row, n)) for n in ("jawOpen", "lips pressed (-)", "loudness (no model)"))])
    lines += [table(["recording", "speaker", "s", "best match", "runner-up", "AUC jaw", "AUC lips pressed",
                     "AUC loudness"], id_rows), "",
              "(AUC -: the clip has no open-vowel or no bilabial frame.)", ""]
    if plot_path is not None:
        lines += [f"![real speech]({plot_path.as_posix()})", ""]
    lines += ["Sources: pocketsphinx 5.1.1 sdist test data (LibriVox, public domain; CMU, BSD-style) and "
              "Debian codec2-examples (LGPL-2.1); `python -m core.realspeech --fetch` downloads them, two "
              "short clips ship in demo/examples (SOURCES.md there). The 8 kHz clips are telephone-band "
              "and phone-recognised, so their labels are noisier."]
    if not_found:
        lines += ["", f"Not run (audio not found; `--fetch` brings it): {', '.join(not_found)}."]
    if unaligned:
        lines += ["", f"Left out (pocketsphinx could not align the text to the audio): {', '.join(unaligned)}."]
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:.2f}"


def auc_or_nan(row: dict, name: str) -> float:
    keep, is_open = open_vs_bilabial(row["labels"])
    try:
        return auc(row["scores"][name][keep], is_open[keep])
    except ValueError:
        return float("nan")


# ---------------------------------------------------------------------------------------------

def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m core.realspeech", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", default="checkpoints", help="manifest folder or one checkpoint folder")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--audio-dir", default=str(DEFAULT_AUDIO_DIR), help="where --fetch stores the clips")
    p.add_argument("--fetch", action="store_true", help="download the recordings first (pip, apt-get)")
    p.add_argument("--out", default="docs/real_speech.png", help="plot (PNG)")
    p.add_argument("--results", default="docs/RESULTS.md")
    p.add_argument("--plot", nargs="*", default=["librivox-0870", "harvard-f"], help="recordings to plot")
    p.add_argument("--no-tts-control", action="store_true", help="skip the espeak-ng control group")
    args = p.parse_args(argv)

    if args.fetch:
        print(f"fetched {len(fetch(args.audio_dir))} recordings into {args.audio_dir}")
    found = [(r, find_audio(r, args.audio_dir)) for r in RECORDINGS]
    not_found, unaligned = [r.name for r, path in found if path is None], []
    found = [(r, path) for r, path in found if path is not None]
    if not found:
        sys.exit(f"No recordings found in {args.audio_dir} or {EXAMPLES_DIR}; run with --fetch.")

    from core.pipeline import Talker
    talker = Talker.from_pretrained(args.checkpoints)
    if args.steps not in talker.steps_available:
        sys.exit(f"{args.checkpoints} has no {args.steps}-step model; it has {talker.steps_available}.")
    inputs = [(rec, load_audio(path)) for rec, path in found]
    if not args.no_tts_control:
        inputs += tts_control([rec for rec, _ in found])
    rows = []
    for rec, audio in inputs:
        try:
            phones = align_phones(audio, rec.transcript)
        except ValueError as err:             # text and audio cannot be aligned
            print(f"{rec.name}: left out ({err})")
            unaligned.append(rec.name)
            continue
        rows.append(analyse(talker, rec, audio, phones, args.steps, args.seed))
        row = rows[-1]
        print(f"{rec.name:16s} {row['seconds']:5.1f} s  AUC jaw {auc_or_nan(row, 'jawOpen'):.2f}  "
              f"loudness {auc_or_nan(row, 'loudness (no model)'):.2f}  r jaw {row['r_jaw']:.2f}  -> {row['identity']}")
    summary = summarise(rows)
    for res in summary:
        print(res["group"], {n: tuple(round(float(v), 3) for v in a) for n, a in res.get("auc", {}).items()})

    chosen = [r for r in rows if r["recording"].name in args.plot] or rows[:1]
    entry = talker.entries[args.steps]
    model = f"`{entry.get('name', args.checkpoints)}`, {args.steps} steps"
    out = plot(chosen, args.out, title=f"Real human speech through the model trained on TTS only ({model.replace('`', '')})")
    print(f"plot: {out} ({os.path.getsize(out) // 1024} KB)")
    from core.report import update_section
    rel = Path(os.path.relpath(out, Path(args.results).parent))
    md = markdown(rows, summary, model, args.steps, rel, not_found, unaligned)
    print(f"results: {update_section(SECTION, md, args.results)}")


if __name__ == "__main__":
    main()
