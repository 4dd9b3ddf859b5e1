import json

import numpy as np
import pytest
import soundfile as sf

from core.arkit import ARKIT_NAMES, INDEX
from core.data.beat import assign_splits, load_beat, parse_take_name
from core.data.clip import SPLITS, TalkingClip

# BEAT's facial files list 51 ARKit names (no tongueOut), alphabetically.
BEAT_NAMES = sorted(n for n in ARKIT_NAMES if n != "tongueOut")


def write_take(speaker_dir, stem, seconds, audio_seconds=None, rate=16000, seed=0):
    """A BEAT take: facial JSON at 60 fps + wav; returns the [frames, 51] weights."""
    speaker_dir.mkdir(parents=True, exist_ok=True)
    weights = np.random.default_rng(seed).random((int(seconds * 60), 51)).round(6)
    document = {"names": BEAT_NAMES,
                "frames": [{"weights": list(w), "time": round(k / 60, 6), "rotation": []}
                           for k, w in enumerate(weights)]}
    (speaker_dir / f"{stem}.json").write_text(json.dumps(document))
    t = np.arange(int((audio_seconds or seconds) * rate)) / rate
    sf.write(speaker_dir / f"{stem}.wav", 0.3 * np.sin(2 * np.pi * 150 * t), rate)
    return weights


@pytest.fixture
def beat_tree(tmp_path):
    """Two speakers, a neutral and a happy take each, plus files the loader must skip."""
    root = tmp_path / "beat_english_v0.2.1"
    takes = {
        "2_scott_0_1_1": write_take(root / "2", "2_scott_0_1_1", 21.0),
        "2_scott_0_65_65": write_take(root / "2", "2_scott_0_65_65", 10.5, seed=1),
        "4_lawrence_0_3_3": write_take(root / "4", "4_lawrence_0_3_3", 10.0, rate=48000, seed=2),
    }
    write_take(root / "4", "4_lawrence_1_1_1", 10.0, seed=3)                # conversation: skipped
    (root / "4" / "4_lawrence_0_3_3.txt").write_text("transcript")
    (root / "4" / "metadata.json").write_text("{}")                         # not a take name
    return root, takes


def test_loads_english_speech_at_30fps_in_10s_chunks(beat_tree):
    root, takes = beat_tree
    clips = load_beat(root)
    assert sorted(c.id for c in clips) == [
        "beat_2_scott_0_1_1_000", "beat_2_scott_0_1_1_001", "beat_2_scott_0_65_65_000", "beat_4_lawrence_0_3_3_000"]
    by_id = {c.id: c for c in clips}
    second = by_id["beat_2_scott_0_1_1_001"]
    assert second.identity == "2_scott" and second.frames == 300
    expected = takes["2_scott_0_1_1"][::2][300:600]                          # every 2nd frame, chunk 2
    np.testing.assert_allclose(second.blendshapes[:, [INDEX[n] for n in BEAT_NAMES]], expected, atol=1e-7)
    assert not second.blendshapes[:, INDEX["tongueOut"]].any()
    assert len(second.load_audio()) == 160000
    assert by_id["beat_2_scott_0_65_65_000"].extras["emotion"] == "happiness"
    assert by_id["beat_4_lawrence_0_3_3_000"].extras["emotion"] == "neutral"
    assert by_id["beat_4_lawrence_0_3_3_000"].identity == "4_lawrence"     # 48 kHz audio resampled
    assert len(by_id["beat_4_lawrence_0_3_3_000"].load_audio()) == 160000
    assert {c.split for c in clips} <= set(SPLITS)


def test_speaker_filters(beat_tree):
    root, _ = beat_tree
    assert {c.identity for c in load_beat(root, speakers=["lawrence"])} == {"4_lawrence"}
    assert {c.identity for c in load_beat(root, speakers=[2])} == {"2_scott"}
    clips = load_beat(root, unseen_speakers=["4_lawrence"])
    assert {c.split for c in clips if c.identity == "4_lawrence"} == {"test_unseen"}
    assert "test_unseen" not in {c.split for c in clips if c.identity == "2_scott"}
    with pytest.raises(ValueError, match="for the chosen speakers"):
        load_beat(root, speakers=["nobody"])


def test_split_rule_is_stratified_and_order_free():
    clips = [TalkingClip(id=f"beat_2_scott_0_{i}_{i}_000", identity="2_scott", split="", wav_path=None,
                         blendshapes=np.zeros((1, 52)), extras={"emotion": "neutral" if i < 100 else "fear"})
             for i in range(150)]
    assign_splits(clips)
    first = {c.id: c.split for c in clips}
    assign_splits(list(reversed(clips)))
    assert {c.id: c.split for c in clips} == first
    for emotion, size in [("neutral", 100), ("fear", 50)]:
        splits = [c.split for c in clips if c.extras["emotion"] == emotion]
        assert (splits.count("test"), splits.count("val")) == (round(size / 10),) * 2


def test_bad_trees(tmp_path):
    root = tmp_path / "beat"
    write_take(root / "2", "2_scott_0_1_1", 10.0, audio_seconds=7.0)
    with pytest.raises(ValueError, match="audio lasts 7.00 s"):
        load_beat(root)
    (root / "2" / "2_scott_0_1_1.wav").unlink()
    with pytest.raises(ValueError, match="has no audio file 2_scott_0_1_1.wav"):
        load_beat(root)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no English BEAT speech take"):
        load_beat(empty)


def test_parse_take_name():
    take = parse_take_name("26_reamey_0_103_103")
    assert (take.speaker_id, take.name, take.type, take.sequence) == (26, "reamey", 0, 103)
    assert take.identity == "26_reamey" and take.emotion == "fear"
    assert parse_take_name("26_reamey_0_118_118").emotion == "disgust"
    assert parse_take_name("readme") is None
