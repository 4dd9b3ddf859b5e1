"""The real-speech lip-sync check: its metrics on hand-made arrays (fast), the pocketsphinx
alignment on an espeak-ng phrase and on a shipped real clip (skipped without pocketsphinx /
espeak-ng), and the whole command on the shipped clips with a tiny untrained model."""
from __future__ import annotations

import shutil
import subprocess
from itertools import product

import numpy as np
import pytest

from core.evaluation import lipsync
from core.data import align
from core.data.phones import PHONES
from experiments.realspeech import sources
from experiments.realspeech.__main__ import main as realspeech_main
from core.arkit import INDEX, NUM_BLENDSHAPES
from core.audio.decode import load_audio
from core.rates import SAMPLE_RATE
from core.data.phones import Phone
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


def test_bootstrap_keeps_strata_and_pairs_differences():
    values = np.array([1.0, 1.0, 5.0, 5.0])

    def mean(idx):
        return {"x": values[idx].mean(), "y": values[idx].mean() + 1.0}

    free = lipsync.bootstrap(mean, 4, resamples=300)
    assert free["x"][0] == 3.0 and free["x"][1] < 3.0 < free["x"][2]      # the mix of 1s and 5s varies
    stratified = lipsync.bootstrap(mean, 4, strata=["a", "a", "b", "b"], differences=[("x", "y")], resamples=300)
    assert stratified["x"] == (3.0, 3.0, 3.0)                  # each stratum keeps its two units: mean always 3
    assert stratified["x - y"] == (-1.0, -1.0, -1.0)
    assert lipsync.bootstrap(mean, 4, differences=[("x", "y")])["x - y"] == (-1.0, -1.0, -1.0)   # paired: no spread
    assert np.isnan(lipsync.bootstrap(mean, 2)["x"][1])         # too few units for an interval
    assert np.isnan(lipsync.bootstrap(mean, 4, strata=["a", "b", "c", "d"])["x"][1])   # one unit per stratum


def test_separation_gives_the_paired_difference_to_a_baseline():
    labels = np.array(["aa", "m", "aa", "m"], dtype=object)
    rows = [{"labels": labels, "scores": {"model": np.array([1.0, 0.0, 1.0, 0.0]),     # AUC 1
                                          "loud": np.array([1.0, 1.0, 1.0, 0.0])}}
            for _ in range(4)]
    result = lipsync.separation(rows, ["model", "loud"], baseline="loud", resamples=50)
    # loud: open frames all 1; bilabial frames half 1 (ties 1/2) half 0 -> AUC 0.75
    assert result["model"][0] == 1.0 and result["loud"][0] == 0.75
    assert result["model - loud"] == (0.25, 0.25, 0.25)        # identical rows: every resample gives 0.25
    assert "loud - loud" not in result and "loud - model" not in result


def test_bilabial_segments_merge_adjacent_bilabials():
    phones = [Phone("pau", 0.0, 0.1), Phone("m", 0.1, 0.2), Phone("b", 0.2, 0.3), Phone("aa", 0.3, 0.5),
              Phone("p", 0.5, 0.6), Phone("pau", 0.6, 0.7), Phone("m", 0.7, 0.8)]
    assert lipsync.bilabial_segments(phones) == [(0.1, 0.3), (0.5, 0.6), (0.7, 0.8)]


def test_closures_need_a_shut_mouth_that_opens_around_it():
    aperture = np.full(60, 0.5)                                 # 2 s at 30 fps, mouth half open
    aperture[15] = 0.05                                         # frame 15: centre 0.517 s
    aperture[45] = 0.3                                          # a dip, but not shut
    segments = [(0.50, 0.53), (1.50, 1.53), (0.40, 0.45)]
    # seg 3 ends 0.067 s before frame 15's centre: outside the 0.05 s tolerance
    assert list(lipsync.closures(aperture, segments)) == [True, False, False]
    assert list(lipsync.closures(aperture, [(0.40, 0.47)])) == [True]      # 0.047 s before: within it
    low = np.full(60, 0.17)
    low[15] = 0.08                                              # shut, but the mouth opens only 0.09 around it
    assert list(lipsync.closures(low, [(0.50, 0.53)])) == [False]
    low[15] = 0.06                                              # opens 0.11: a closing movement
    assert list(lipsync.closures(low, [(0.50, 0.53)])) == [True]
    low[:] = 0.17
    low[:15] = 0.0                                              # resting shut until 0.5 s (frame 15 opens)
    # an m 0.3 s or less before the mouth opens is a closure; one deep in the pause is not
    assert list(lipsync.closures(low, [(0.05, 0.10), (0.30, 0.35)])) == [False, True]
    assert not lipsync.closures(np.zeros(60), [(0.5, 0.6)]).any()                      # a mouth that never opens


def test_closure_chance_counts_the_shifts_that_land_a_closure_in_the_segment():
    aperture = np.full(60, 0.5)
    aperture[0] = 0.0                                           # the only closure, at frame 0
    segment = [(1.01, 1.03)]                                    # +-0.05 s: frames 29, 30, 31 (centres 0.983-1.05 s)
    assert not lipsync.closures(aperture, segment)[0]
    # shifts of 15..45 frames (0.5 s each way, 31 shifts); shifts 29, 30, 31 move the zero into it
    assert lipsync.closure_chance(aperture, segment) == pytest.approx(3 / 31)
    assert np.isnan(lipsync.closure_chance(aperture, []))
    short = np.array([0.5, 0.0, 0.5, 0.5])                      # too short for 0.5 s shifts: every shift
    assert lipsync.closure_chance(short, [(0.0, 0.01)]) == pytest.approx(1 / 3)


def test_closure_rate_pools_segments_beside_its_chance():
    rows = [{"closure": {"a": (np.array([True, False]), 0.25)}}, {"closure": {"a": (np.array([True]), 0.5)}},
            {"closure": {"a": (np.array([], bool), float("nan"))}}]
    result = lipsync.closure_rate(rows, "a", resamples=100)
    assert result["closure"][0] == pytest.approx(2 / 3)
    assert result["chance"][0] == pytest.approx((0.25 * 2 + 0.5) / 3)
    assert result["closure - chance"][0] == pytest.approx(1 / 3)
    assert result["closure"][1] <= 2 / 3 <= result["closure"][2]


def test_the_split_is_by_speaker_and_names_are_unique():
    parts = {}
    for rec in sources.RECORDINGS:
        parts.setdefault(rec.speaker, set()).add(rec.split)
        assert rec.package in sources.PACKAGES and rec.split in (sources.VALIDATION, sources.TEST)
    assert all(len(split) == 1 for split in parts.values()), parts             # no speaker on both sides
    assert sum(split == {sources.TEST} for split in parts.values()) >= 5
    assert len({r.name for r in sources.RECORDINGS}) == len(sources.RECORDINGS)
    assert len({(r.package, r.member) for r in sources.RECORDINGS}) == len(sources.RECORDINGS)


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
    assert phones and all(p.label in PHONES for p in phones)
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
    assert "<!-- BEGIN real-speech -->" in text and "### Test part (report only)" in text
    assert "aperture - loudness" in text and "closure - chance" in text and "![real speech](real_speech.png)" in text
    assert sources.LIBRIVOX in text and sources.HARVARD in text          # the shipped clips' speakers, both in test
    assert "Validation part" not in text                                  # no validation clip ships


def test_validation_only_never_reads_a_test_recording(tmp_path):
    from experiments.realspeech.__main__ import aligned_recordings
    # the shipped example clips are all in the test part: a validation-only run finds nothing
    with pytest.raises(SystemExit, match="No recordings"):
        aligned_recordings(tmp_path / "none", validation_only=True, tts_control=False)


def test_select_keeps_the_truest_upper_face_among_snapshots_with_good_lips(tmp_path, monkeypatch):
    import json
    import torch
    from core.model.network import DiffusionTalker
    from core.training.run_state import snapshots
    from core.training.train import TrainConfig, fit, teacher_objective
    from experiments.realspeech import select
    from tests.helpers import tiny_model
    from tests.test_model import toy_dataset

    run = tmp_path / "teacher"
    fit(tiny_model(), teacher_objective, toy_dataset(2), toy_dataset(1, "val"),
        TrainConfig(out=str(run), epochs=3, batch_size=4, crop_frames=40, lr=3e-3, snapshot_minutes=1e-9))
    # (lip AUC, upper-face mismatch): epoch 1 has the truest upper face but lips 0.05 worse than
    # the best; epoch 2 has the best lips; epoch 3 is within the tolerance and truer above
    figures = {"epoch-0001": (0.85, 0.05), "epoch-0002": (0.90, 0.60), "epoch-0003": (0.895, 0.20)}
    calls = []

    def fake_score(folder, aligned, data, seed=0):
        calls.append(folder.name)
        auc, mismatch = figures[folder.name]
        return {"auc": auc, "auc_minus_loudness": 0.0, "closure": 0.5, "closure_minus_chance": 0.1,
                "upper_face_mismatch": mismatch}

    monkeypatch.setattr(select, "aligned_recordings", lambda *a, **k: ([], [], []))
    monkeypatch.setattr(select, "score", fake_score)
    chosen = select.select(run, data=None)
    # the last snapshot is the final model: scored once, under its snapshot name
    assert chosen["kept"] == "epoch-0003" and set(chosen["candidates"]) == {"epoch-0001", "epoch-0002", "epoch-0003"}
    figures["epoch-0003"] = (0.87, 0.20)                      # now outside the tolerance: best lips win
    assert select.best({k: fake_score(tmp_path / k, None, None) for k in figures}) == "epoch-0002"
    kept = DiffusionTalker.from_pretrained(run).state_dict()
    wanted = DiffusionTalker.from_pretrained(snapshots(run)[2]).state_dict()
    assert all(torch.equal(kept[k], wanted[k]) for k in wanted)
    assert json.loads((run / "config.json").read_text())["extra"]["selected"]["kept"] == "epoch-0003"
    calls.clear()
    assert select.select(run, data=None)["kept"] == "epoch-0003" and calls == []     # chosen once, not again


def test_upper_face_mismatch_is_zero_for_the_truth_and_symmetric():
    from experiments.realspeech.select import upper_face_mismatch
    groups = ("blinks", "brows", "eye look", "squint")

    def figures(ratio, rough=None):
        return {"spread_ratio": {g: ratio for g in groups}, "roughness_ratio": {g: rough or ratio for g in groups},
                "blink_rate_ratio": ratio}
    assert upper_face_mismatch(figures(1.0)) == 0.0
    assert upper_face_mismatch(figures(0.5)) == pytest.approx(np.log(2)) == pytest.approx(upper_face_mismatch(figures(2.0)))
    # a wobble that reads as spread is not a truer upper face: jitter 3x the data's counts against it
    assert upper_face_mismatch(figures(1.0, rough=3.0)) == pytest.approx(4 * np.log(3) / 9)


def test_shifted_auc_finds_a_curve_one_frame_early():
    from experiments.realspeech.lag import shifted_auc
    labels = np.array(["pau"] + ["p", "aa"] * 10 + ["pau"], dtype=object)
    early = np.array([0.0] + [1.0, 0.0] * 10 + [0.0])     # opens one frame before each open vowel
    rows = [{"scores": {"lip aperture": early}, "labels": labels}]
    assert shifted_auc(rows, "lip aperture", 0) == 0.0
    assert shifted_auc(rows, "lip aperture", 1) == 1.0        # delayed by a frame it is right
    assert shifted_auc(rows, "lip aperture", -1) == 0.95     # earlier still: the last vowel gets the pause
