"""The synthetic corpus generator: TTS timings, visemes, augmentation, determinism, layout."""
import json
import shutil

import numpy as np
import pytest

from core.arkit import INDEX, LIP_INDICES, NUM_BLENDSHAPES, UPPER_INDICES
from core.data import augment, sentences, synth, tts
from core.data.phones import PHONES
from core.data.voices import Voice
from core.data.clip import SPLITS, read_corpus, read_meta
from core.rates import FPS, SAMPLE_RATE
from core.data.style import Style
from core.data.phones import Phone
from core.data.upper_face import upper_face
from core.data.visemes import PHONE_VISEMES, lower_face

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite missing")
needs_all = pytest.mark.skipif(any(shutil.which(t) is None for t in ("espeak-ng", "flite", "sox")),
                               reason="espeak-ng, flite and sox are needed for a corpus build")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "tiny"
    if any(shutil.which(t) is None for t in ("espeak-ng", "flite", "sox")):
        pytest.skip("espeak-ng, flite and sox are needed for a corpus build")
    synth.build_corpus(out, seed=3, size="tiny", workers=2, log=lambda *_: None)
    return out


def _span_frames(phones, labels):
    """Frames whose centre lies in the middle half of a phone with one of ``labels``."""
    frames = []
    for p in phones:
        if p.label in labels:
            lo, hi = p.start + p.duration / 4, p.end - p.duration / 4
            frames += [k for k in range(int(lo * FPS), int(hi * FPS) + 1) if lo <= (k + 0.5) / FPS <= hi]
    return frames


# --- phones and TTS --------------------------------------------------------------------------

def test_ipa_mapping_covers_espeak_symbols():
    assert tts.ipa_to_arpabet("ˈaɪ") == ("ay",)
    assert tts.ipa_to_arpabet("ɑːɹ") == ("aa", "r")
    assert tts.ipa_to_arpabet("tʃ") == ("ch",)
    assert tts.ipa_to_arpabet("n̩") == ("n",)
    assert tts.ipa_to_arpabet("_:") == ("pau",)
    assert tts.ipa_to_arpabet("☃") == ("ax",)         # unknown still occupies its time
    assert set(PHONE_VISEMES) == PHONES


@needs_espeak
def test_espeak_gives_gap_free_phones_matching_the_audio():
    audio, phones = tts.synthesize("Bob may pay a big fee.", Voice("espeak", "en-us+m3"))
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert phones[0].start == 0 and phones[-1].end == pytest.approx(len(audio) / SAMPLE_RATE)
    assert all(a.end == pytest.approx(b.start) for a, b in zip(phones, phones[1:]))
    labels = [p.label for p in phones]
    assert {"b", "m", "p", "f"} <= set(labels) and set(labels) <= PHONES


@needs_flite
def test_flite_phones_and_rate():
    slow, phones = tts.synthesize("The cat sat on the mat.", Voice("flite", "slt", rate=0.8))
    fast, _ = tts.synthesize("The cat sat on the mat.", Voice("flite", "slt", rate=1.25))
    assert len(slow) > 1.3 * len(fast)
    assert phones[-1].end == pytest.approx(len(slow) / SAMPLE_RATE)
    assert "m" in [p.label for p in phones]


def test_bad_voice_and_text_raise():
    with pytest.raises(ValueError):
        Voice("festival", "kal")
    with pytest.raises(ValueError):
        Voice("piper", "nobody")
    with pytest.raises(ValueError):
        Voice("mbrola", "us1")
    with pytest.raises(ValueError):
        Voice("flite", "nobody")
    with pytest.raises(ValueError):
        tts.synthesize("  ", Voice("flite", "slt"))


@needs_espeak
def test_unknown_espeak_voice_raises():
    with pytest.raises(ValueError, match="no voice"):
        tts.synthesize("hello", Voice("espeak", "xx-nowhere"))


# --- ground truth ----------------------------------------------------------------------------

def _phones(spec):
    """[("pau", 0.3), ("m", 0.1), ...] -> gap-free Phone list."""
    out, t = [], 0.0
    for label, dur in spec:
        out.append(Phone(label, t, t + dur))
        t += dur
    return out


def test_bilabials_close_lips_and_open_vowels_open_jaw():
    phones = _phones([("pau", 0.3)] + [("m", 0.1), ("aa", 0.18), ("p", 0.09), ("ae", 0.16),
                                        ("b", 0.08), ("aa", 0.2)] * 3 + [("pau", 0.4)])
    frames = int(phones[-1].end * FPS)
    face = lower_face(phones, frames, Style(lead=0.0))
    closed, opened = _span_frames(phones, {"m", "p", "b"}), _span_frames(phones, {"aa", "ae"})
    jaw, close = face[:, INDEX["jawOpen"]], face[:, INDEX["mouthClose"]]
    press = face[:, INDEX["mouthPressLeft"]]
    assert jaw[opened].mean() > 2 * jaw[closed].mean()
    assert close[closed].mean() > 3 * close[opened].mean()
    assert press[closed].mean() > 3 * press[opened].mean()
    # lips are closed at bilabials: mouthClose nearly cancels the jaw opening
    assert np.median(close[closed] / jaw[closed]) > 0.7
    # silence is the rest pose
    assert jaw[:3].max() < 0.02 and jaw[-3:].max() < 0.02


def test_rounded_vs_spread_vowels_and_style():
    phones = _phones([("pau", 0.2), ("uw", 0.25), ("pau", 0.3), ("iy", 0.25), ("pau", 0.3)])
    frames = int(phones[-1].end * FPS)
    face = lower_face(phones, frames, Style(lead=0.0))
    uw, iy = _span_frames(phones, {"uw"}), _span_frames(phones, {"iy"})
    assert face[uw, INDEX["mouthPucker"]].mean() > 3 * face[iy, INDEX["mouthPucker"]].mean()
    assert face[iy, INDEX["mouthStretchLeft"]].mean() > 3 * face[uw, INDEX["mouthStretchLeft"]].mean()
    big = lower_face(phones, frames, Style(lead=0.0, amplitude=1.5, smile_bias=0.2, asymmetry=0.3))
    assert big[uw, INDEX["mouthPucker"]].mean() > face[uw, INDEX["mouthPucker"]].mean()
    assert big[0, INDEX["mouthSmileLeft"]] > big[0, INDEX["mouthSmileRight"]] > 0.1
    assert not face[:, list(UPPER_INDICES)].any()


def test_upper_face_is_stochastic_and_lower_face_is_not():
    phones = _phones([("pau", 0.3)] + [("b", 0.08), ("aa", 0.25), ("t", 0.07)] * 12 + [("pau", 0.5)])
    frames = int(phones[-1].end * FPS)
    audio = np.random.default_rng(0).standard_normal(frames * SAMPLE_RATE // FPS).astype(np.float32)
    style = Style(blink_rate=30, brow_activity=1.0, gaze_activity=1.0)
    a = upper_face(phones, audio, frames, style, np.random.default_rng(1))
    b = upper_face(phones, audio, frames, style, np.random.default_rng(2))
    assert a.shape == (frames, NUM_BLENDSHAPES) and 0 <= a.min() and a.max() <= 1
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, upper_face(phones, audio, frames, style, np.random.default_rng(1)))
    assert a[:, INDEX["eyeBlinkLeft"]].max() > 0.7                     # at least one blink
    assert not a[:, list(LIP_INDICES)].any()
    np.testing.assert_array_equal(lower_face(phones, frames, style), lower_face(phones, frames, style))


def test_unknown_phone_raises():
    with pytest.raises(ValueError, match="unknown phone"):
        lower_face([Phone("qq", 0, 0.1)], 3)


# --- augmentation ----------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("sox") is None, reason="sox missing")
def test_tempo_rescales_phone_times():
    tone = np.sin(2 * np.pi * 220 * np.arange(SAMPLE_RATE) / SAMPLE_RATE).astype(np.float32) * 0.5
    phones = [Phone("aa", 0.0, 0.5), Phone("m", 0.5, 1.0)]
    aug = augment.Augmentation(tempo=1.25, pitch=2.0, pad_before=0.3, pad_after=0.2, reverb=40,
                               snr_db=20)
    out, moved = augment.apply(tone, phones, aug, np.random.default_rng(0))
    assert len(out) % augment.SAMPLES_PER_STEP == 0
    assert moved[0] == Phone("pau", 0.0, pytest.approx(0.3))
    m = [p for p in moved if p.label == "m"][0]
    assert m.end - 0.3 == pytest.approx(1.0 / 1.25, abs=0.01)
    assert moved[-1].end == pytest.approx(len(out) / SAMPLE_RATE)
    assert np.abs(out).max() == pytest.approx(aug.peak, abs=1e-4)
    assert augment.frames_for(out) * SAMPLE_RATE == len(out) * FPS
    with pytest.raises(ValueError):
        augment.Augmentation(tempo=3.0)


# --- sentences -------------------------------------------------------------------------------

def test_sentence_pools_are_deterministic_and_disjoint():
    pools = sentences.split_pool(5, {"train": 500, "val": 50, "test": 80})
    assert pools == sentences.split_pool(5, {"train": 500, "val": 50, "test": 80})
    flat = [s for split in pools.values() for s in split]
    assert len(flat) == len(set(flat)) == 630
    assert all(s[0].isupper() and s[-1] in ".?!" for s in flat)
    assert pools != sentences.split_pool(6, {"train": 500, "val": 50, "test": 80})
    with pytest.raises(ValueError):
        sentences.sentence_pool(0, 0)


# --- the corpus ------------------------------------------------------------------------------

def test_identity_plan():
    ids = synth.plan_identities(0, 30, 6)
    names = [i.name for i in ids]
    assert len(set(names)) == 36 and names[0].startswith("id00_")
    engines = {i.voice.engine for i in ids if i.seen}
    assert engines == {"espeak", "flite", "festival", "piper"}
    # every identity its own base voice: none is another one with only a pitch change
    base_voices = [(i.voice.engine, i.voice.name) for i in ids]
    assert len(set(base_voices)) == len(ids)
    assert {(i.voice.engine, i.voice.name) for i in ids if i.seen} >= set(synth.OTHER_VOICES)
    seen_voices = {i.voice.name for i in ids if i.seen}
    assert not seen_voices & {i.voice.name for i in ids if not i.seen}
    labels = [i.label for i in ids]
    assert len(set(labels)) == len(ids) or len(set(i.name for i in ids)) == len(ids)
    assert all(" · " in label and label.split(" ")[0] == i.voice.engine for label, i in zip(labels, ids))
    assert [i.to_dict() for i in ids] == [i.to_dict() for i in synth.plan_identities(0, 30, 6)]


@needs_all
def test_tiny_corpus_layout_and_reading(tiny):
    meta = read_meta(tiny)
    assert meta["fps"] == FPS and meta["sample_rate"] == SAMPLE_RATE
    assert meta["fingerprint"] == synth.fingerprint(3, "tiny") != synth.fingerprint(4, "tiny")
    assert len(meta["identities"]) == 3 and len(meta["unseen_identities"]) == 1
    assert set(meta["identity_params"]) == set(meta["identities"]) | set(meta["unseen_identities"])
    clips = read_corpus(tiny)
    assert 10 <= len(clips) <= 20
    assert {c.split for c in clips} == set(SPLITS)
    import soundfile as sf
    for clip in clips:
        audio, rate = sf.read(clip.wav_path, dtype="float32")
        assert rate == SAMPLE_RATE and audio.ndim == 1
        assert clip.blendshapes.shape == (clip.extras["frames"], NUM_BLENDSHAPES)
        assert len(audio) * FPS == clip.frames * SAMPLE_RATE and clip.frames <= 300
        assert clip.blendshapes.dtype == np.float32
        assert 0 <= clip.blendshapes.min() and clip.blendshapes.max() <= 1
        expect = meta["unseen_identities"] if clip.split == "test_unseen" else meta["identities"]
        assert clip.identity in expect


@needs_all
def test_tiny_corpus_splits_do_not_share_sentences(tiny):
    by_split = {}
    for clip in read_corpus(tiny):
        extras = json.loads((tiny / "clips" / f"{clip.id}.json").read_text())
        by_split.setdefault(clip.split, set()).update(extras["sentences"])
    assert not by_split["train"] & (by_split["test"] | by_split["val"] | by_split["test_unseen"])
    assert not by_split["val"] & by_split["test"]


@needs_all
def test_tiny_corpus_ground_truth_follows_phones(tiny):
    jaw_open, jaw_closed, close_b, close_v = [], [], [], []
    for clip in read_corpus(tiny):
        extras = json.loads((tiny / "clips" / f"{clip.id}.json").read_text())
        phones = [Phone(*p) for p in extras["phones"]]
        style = Style(**extras["voice"]["style"])
        shifted = [Phone(p.label, p.start - style.lead, p.end - style.lead) for p in phones]
        opened = _span_frames(shifted, {"aa", "ae", "ah"})
        closed = _span_frames(shifted, {"p", "b", "m"})
        face = clip.blendshapes
        jaw_open += face[opened, INDEX["jawOpen"]].tolist()
        jaw_closed += face[closed, INDEX["jawOpen"]].tolist()
        close_b += (face[closed, INDEX["mouthClose"]] + face[closed, INDEX["mouthPressLeft"]]).tolist()
        close_v += (face[opened, INDEX["mouthClose"]] + face[opened, INDEX["mouthPressLeft"]]).tolist()
    assert np.mean(jaw_open) > 1.5 * np.mean(jaw_closed)
    assert np.mean(close_b) > 3 * np.mean(close_v)


@needs_all
def test_same_seed_same_corpus(tiny, tmp_path):
    again = tmp_path / "again"
    synth.build_corpus(again, seed=3, size="tiny", workers=1, log=lambda *_: None)
    assert (again / "index.jsonl").read_text() == (tiny / "index.jsonl").read_text()
    for clip in read_corpus(tiny):
        np.testing.assert_array_equal(np.load(again / "clips" / f"{clip.id}.npy"), clip.blendshapes)
        assert (again / "clips" / f"{clip.id}.wav").read_bytes() == clip.wav_path.read_bytes()
    meta_a, meta_b = read_meta(tiny), read_meta(again)
    meta_a.pop("build"), meta_b.pop("build")
    assert meta_a == meta_b


def test_build_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown size"):
        synth.build_corpus(tmp_path / "x", size="huge")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("keep me")
    with pytest.raises(ValueError, match="exists"):
        synth.build_corpus(tmp_path / "notes", size="tiny")
    with pytest.raises(ValueError, match="not a corpus"):
        synth.build_corpus(tmp_path / "notes", size="tiny", force=True)
    assert (tmp_path / "notes" / "a.txt").read_text() == "keep me"
