"""The real recordings of the check: what they are, where they are published, how to fetch them."""
from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.audio import load_audio
from core.rates import SAMPLE_RATE

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "demo" / "examples"   # two short clips ship there
DEFAULT_AUDIO_DIR = Path.home() / ".cache" / "diffusiontalker" / "real_speech"


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
ALIGNED, NARROWBAND = "16 kHz, forced-aligned", "8 kHz, phone-recognised"
RECORDINGS: tuple[Recording, ...] = (
    Recording("librivox-0870", "LibriVox reader (male)", "pocketsphinx", _LIBRIVOX.format("0870"),
              "and mister john dashwood had then leisure to consider how much there might be "
              "prudently in his power to do for them", ALIGNED),
    Recording("librivox-0880", "LibriVox reader (male)", "pocketsphinx", _LIBRIVOX.format("0880"),
              "he was not an ill disposed young man", ALIGNED),
    Recording("librivox-0890", "LibriVox reader (male)", "pocketsphinx", _LIBRIVOX.format("0890"),
              "unless to be rather cold hearted and rather selfish is to be ill disposed", ALIGNED),
    Recording("librivox-0920", "LibriVox reader (male)", "pocketsphinx", _LIBRIVOX.format("0920"),
              "had he married a more a amiable woman he might have been made still more "
              "respectable than he was", ALIGNED),
    Recording("librivox-0930", "LibriVox reader (male)", "pocketsphinx", _LIBRIVOX.format("0930"),
              "he might even have been made amiable himself", ALIGNED),
    *(Recording(f"cmu-cards-{i:03d}", "CMU test speaker (male)", "pocketsphinx", f"cards/{i:03d}.wav",
                text, ALIGNED)
      for i, text in enumerate(("ten of clubs", "four queen of clubs", "seven of clubs", "five five",
                                "eight of spades four of clubs seven of hearts"), start=1)),
    Recording("cmu-goforward", "CMU test speaker (male)", "pocketsphinx", "goforward.raw",
              "go forward ten meters", ALIGNED),
    Recording("harvard-f", "codec2 sample speaker (female)", "codec2", "raw/speech_orig_16k.wav",
              "the birch canoe slid on the smooth planks glue the sheet to the dark blue background "
              "it's easy to tell the depth of a well", ALIGNED, seconds=7.85),
    *(Recording(f"codec2-{stem}", f"codec2 sample '{stem}'", "codec2", f"wav/{stem}.wav", None, NARROWBAND)
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


