"""The real-speech lip-sync check: its metrics on hand-made arrays (fast), the pocketsphinx
alignment on an espeak-ng phrase and on a shipped real clip (skipped without pocketsphinx /
espeak-ng), and the whole command on the shipped clips with a tiny untrained model."""
from __future__ import annotations

import shutil
import subprocess
from itertools import product

import numpy as np
import pytest

from core import lipsync
from core.data import align, tts
from experiments.realspeech import sources
from experiments.realspeech.__main__ import main as realspeech_main
from core.arkit import INDEX, NUM_BLENDSHAPES
from core.audio import load_audio
from core.rates import SAMPLE_RATE
from core.data.tts import Phone
from core.data.visemes import lower_face


# --------------------------------------------------------------------------- metrics

def brute_force_auc(scores, positive):
    pos, neg = np.asarray(scores)[positive], np.asarray(scores)[~np.asarray(positive)]
    return np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in product(pos, neg)])


def test_auc_matches_its_definition_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 40).astype(float)            # many ties
    positive = rng.random(40) < 0.4
    assert lipsync.auc(scores, positive) == pytest.approx(brute_force_auc(scores, positive))
    assert lipsync.auc([3, 4, 1, 2], [True, True, False, False]) == 1.0
    assert lipsync.auc([1, 2, 3, 4], [True, True, False, False]) == 0.0
    assert lipsync.auc([1, 1, 1, 1], [True, False, True, False]) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        lipsync.auc([1, 2], [True, True])


def test_frame_labels_take_the_phone_under_each_frame_centre():
    phones = [Phone("pau", 0.0, 0.05), Phone("m", 0.05, 0.12), Phone("aa", 0.12, 0.30)]
    labels = lipsync.frame_labels(phones, 12)                      # frame centres 1/60, 3/60, ... s
    assert list(labels[:9]) == ["pau", "m", "m", "m", "aa", "aa", "aa", "aa", "aa"]
    assert list(labels[9:]) == ["pau"] * 3                    # past the last phone
    keep, is_open = lipsync.open_vs_bilabial(labels)
    assert keep.sum() == 8 and is_open.sum() == 5


def test_loudness_follows_the_signal_level():
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    audio = np.where(t < 0.5, 0.01, 0.5) * np.sin(2 * np.pi * 200 * t)
    loud = lipsync.frame_loudness(audio, 30)
    assert loud.shape == (30,)
    assert loud[20:].min() - loud[:10].max() > 25              # 0.5 vs 0.01: 34 dB apart


def test_mouth_scores_are_higher_for_an_open_mouth():
    curves = np.zeros((2, NUM_BLENDSHAPES))
    curves[0, INDEX["jawOpen"]] = 0.6                          # "aa"
    curves[1, [INDEX["jawOpen"], INDEX["mouthClose"]]] = 0.1   # "m": lips together, jaw a little open
    curves[1, [INDEX["mouthPressLeft"], INDEX["mouthPressRight"], INDEX["mouthRollLower"]]] = 0.4
    for name, score in lipsync.mouth_scores(curves).items():
        assert score[0] > score[1], name


@pytest.mark.parametrize("seconds, least", [(0.3, 0.95), (0.12, 0.8)])
def test_the_corpus_rules_separate_open_vowels_from_bilabials(seconds, least):
    """The curves the corpus trains on pass the check, less clearly for short phones (their
    coarticulation blurs the phone edges: the ceiling the report shows); a flat face does not."""
    phones, t = [], 0.0
    for label in "pau b aa m ae p ah m aa b ay p pau".split():
        phones.append(Phone(label, t, t + seconds))
        t += seconds
    frames = int(t * 30)
    labels = lipsync.frame_labels(phones, frames)
    keep, is_open = lipsync.open_vs_bilabial(labels)
    for name, score in lipsync.mouth_scores(lower_face(phones, frames)).items():
        assert lipsync.auc(score[keep], is_open[keep]) > least, name
    flat = lipsync.mouth_scores(np.zeros((frames, NUM_BLENDSHAPES)))["jawOpen"]
    assert lipsync.auc(flat[keep], is_open[keep]) == 0.5


def test_separation_pools_frames_and_brackets_the_pooled_auc():
    rng = np.random.default_rng(1)
    rows = []
    for k in range(5):
        labels = np.array(["aa", "m", "pau", "ae", "p", "b"] * 10, dtype=object)
        is_open = np.isin(labels, ["aa", "ae"])
        rows.append({"labels": labels, "scores": {"good": is_open + rng.normal(0, 0.5, 60),
                                                  "noise": rng.normal(0, 1, 60)}})
    result = lipsync.separation(rows, ["good", "noise"], resamples=200)
    keep = np.concatenate([lipsync.open_vs_bilabial(r["labels"])[0] for r in rows])
    pooled = np.concatenate([r["scores"]["good"] for r in rows])[keep]
    positive = np.concatenate([lipsync.open_vs_bilabial(r["labels"])[1] for r in rows])[keep]
    assert result["good"][0] == pytest.approx(lipsync.auc(pooled, positive))
    for name, (point, low, high) in result.items():
        assert low <= point <= high, name
    assert result["good"][0] > 0.85 and abs(result["noise"][0] - 0.5) < 0.15
    assert np.isnan(lipsync.separation(rows[:2], ["good"])["good"][1])   # too few recordings for an interval


def test_shipped_clips_are_found_without_fetching(tmp_path):
    by_name = {r.name: r for r in sources.RECORDINGS}
    for name in ("librivox-0870", "harvard-f"):
        path = sources.find_audio(by_name[name], tmp_path)
        assert path == sources.EXAMPLES_DIR / f"{name}.wav" and path.stat().st_size < 400_000
        assert len(load_audio(path)) <= 10 * SAMPLE_RATE
    assert sources.find_audio(by_name["cmu-goforward"], tmp_path) is None
    assert (sources.EXAMPLES_DIR / "SOURCES.md").is_file()


# --------------------------------------------------------------------------- alignment (pocketsphinx)

needs_pocketsphinx = pytest.mark.skipif(not align.pocketsphinx_available(),
                                        reason="pip install pocketsphinx==5.1.1")


@pytest.fixture(scope="module")
def espeak_phrase(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    path = tmp_path_factory.mktemp("speech") / "bob.wav"
    subprocess.run(["espeak-ng", "-s", "130", "-w", str(path), "bob has a map"], check=True)
    return load_audio(path)


@needs_pocketsphinx
def test_forced_alignment_of_an_espeak_phrase(espeak_phrase):
    phones = align.align_phones(espeak_phrase, "bob has a map")
    seconds = len(espeak_phrase) / SAMPLE_RATE
    speech = [p.label for p in phones if p.label != "pau"]
    assert speech == "b aa b hh ah z ah m ae p".split()
    assert all(0 <= p.start < p.end <= seconds for p in phones)
    assert all(a.end <= b.start + 1e-9 for a, b in zip(phones, phones[1:]))   # in order, no overlap
    aa = next(p for p in phones if p.label == "aa")
    assert 0.03 <= aa.duration <= 0.4


@needs_pocketsphinx
def test_alignment_refuses_a_text_that_is_not_spoken(espeak_phrase):
    with pytest.raises(ValueError, match="could not align"):
        align.align_phones(espeak_phrase, "bob has a map and seven more words nobody said")


@needs_pocketsphinx
def test_phone_recognition_without_a_text(espeak_phrase):
    phones = align.align_phones(espeak_phrase)
    assert phones and all(p.label in tts.PHONES for p in phones)
    assert any(p.label in lipsync.BILABIALS for p in phones)


@needs_pocketsphinx
def test_the_shipped_real_clip_aligns_to_its_text():
    rec = next(r for r in sources.RECORDINGS if r.name == "librivox-0870")
    phones = align.align_phones(load_audio(sources.EXAMPLES_DIR / "librivox-0870.wav"), rec.transcript)
    labels = [p.label for p in phones]
    assert labels.count("m") >= 3 and phones[-1].end <= 7.11


# --------------------------------------------------------------------------- the command

@needs_pocketsphinx
def test_command_writes_plot_and_results_section(tmp_path, monkeypatch):
    from tests.helpers import make_tiny_checkpoints

    make_tiny_checkpoints(tmp_path / "ckpt")
    out, results = tmp_path / "docs" / "real_speech.png", tmp_path / "docs" / "RESULTS.md"
    realspeech_main(["--checkpoints", str(tmp_path / "ckpt"), "--steps", "8", "--audio-dir", str(tmp_path / "none"),
             "--out", str(out), "--results", str(results), "--no-tts-control"])
    assert 0 < out.stat().st_size < 300_000
    text = results.read_text()
    assert "<!-- BEGIN real-speech -->" in text and "loudness (no model)" in text
    assert "librivox-0870" in text and "harvard-f" in text and "![real speech](real_speech.png)" in text
