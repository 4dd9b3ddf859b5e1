"""The speech check: Silero VAD tells speech from beeps, music and noise; pauses close the lips."""
import numpy as np
import pytest

from core.arkit import INDEX, LIP_INDICES, UPPER_INDICES
from core.rates import SAMPLE_RATE
from core.audio.speech_check import LIP_RAMP_SECONDS, SpeechCheck, check_speech, pause_weights
from core.audio.speech_check import PAUSE_CONTEXT_SECONDS as PAUSE_CONTEXT, VAD_CHUNK
from experiments.robustness import speech

pytest.importorskip("silero_vad")


def test_speech_is_speech_and_beeps_music_noise_are_not():
    voice = speech(4.0)
    assert check_speech(voice).sounds_like_speech and check_speech(voice).warning() is None
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    beeps = (0.3 * np.sin(2 * np.pi * 1000 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    chords = (sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) * 0.2).astype(np.float32)
    noise = (0.3 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)
    for sound in (beeps, chords, noise):
        check = check_speech(sound)
        assert not check.sounds_like_speech and "does not sound like speech" in check.warning()


def test_pause_weights_close_between_phrases_and_ramp_at_the_edges():
    check = SpeechCheck(((0.5, 1.5), (1.6, 2.0), (3.0, 4.0)), 4.5)     # 0.1 s gap: one phrase; 1 s gap: a pause
    w = pause_weights(check, 135)
    at = lambda s: w[int(s * 30)]                                      # frame centres at (k + 0.5) / 30 s
    assert at(1.0) == 1 and at(1.55) == 1 and at(3.5) == 1             # speaking, and the short gap inside
    assert at(2.5) == 0 and at(0.1) == 0 and at(4.4) == 0              # pauses, before and after
    edge = w[int(2.0 * 30) + 1]                                        # just after a phrase: closing
    assert 0 < edge < 1 and abs(edge - (1 - ((2.0 * 30 + 1.5) / 30 - 2.0) / LIP_RAMP_SECONDS)) < 1e-5
    assert np.all(pause_weights(SpeechCheck((), 2.0), 60) == 1)      # no speech found: nothing is known


def test_generate_closes_only_the_lips_in_pauses(toy_checkpoints):
    from core.inference.talker import Talker
    from tests.helpers import ToyEncoder
    talker = Talker.from_pretrained(toy_checkpoints, encoder=ToyEncoder())
    voice = speech(1.5)
    clip = np.concatenate([voice, np.zeros(SAMPLE_RATE, np.float32), voice])
    plain = talker.generate(clip, steps=4, seed=1)
    checked = talker.generate(clip, steps=4, seed=1, speech_check=True)
    assert plain.speech is None and checked.speech.sounds_like_speech
    w = pause_weights(checked.speech, plain.frames)
    assert (w == 0).any() and (w == 1).any()
    lips, upper = list(LIP_INDICES), list(UPPER_INDICES)
    np.testing.assert_allclose(checked.blendshapes[0][:, lips], plain.blendshapes[0][:, lips] * w[:, None], atol=1e-6)
    np.testing.assert_array_equal(checked.blendshapes[0][:, upper], plain.blendshapes[0][:, upper])
    assert checked.blendshapes[0][w == 0][:, INDEX["jawOpen"]].max() == 0


def _phrases() -> np.ndarray:
    """Speech, a 1 s pause, speech, a 0.6 s pause, speech, then 1.5 s of silence."""
    voice = speech(1.5)
    gap = lambda s: np.zeros(int(s * SAMPLE_RATE), np.float32)   # noqa: E731
    return np.concatenate([gap(0.4), voice, gap(1.0), voice, gap(0.6), voice, gap(1.5)])


@pytest.mark.parametrize("block", [1, 3, 7])
def test_stream_pauses_match_the_offline_factor(block):
    from core.rates import FPS
    from core.audio.speech_check import MIN_PAUSE_SECONDS, StreamPauses
    from core.inference.streaming import DEFAULT_LOOKAHEAD
    assert DEFAULT_LOOKAHEAD >= MIN_PAUSE_SECONDS     # what the decision that a gap is a pause needs
    clip = _phrases()
    frames = len(clip) * FPS // SAMPLE_RATE
    offline = pause_weights(check_speech(clip), frames)
    pauses, out, lookahead = StreamPauses(), [], int(DEFAULT_LOOKAHEAD * SAMPLE_RATE)
    heard = 0
    for first in range(0, frames, block):
        stop = min(frames, first + block)
        need = min(len(clip), int(stop / FPS * SAMPLE_RATE) + lookahead)   # what a live stream has heard
        pauses.push(clip[heard:need])
        heard = need
        out.append(pauses.weights(first, stop))
    streamed = np.concatenate(out)
    assert streamed.shape == offline.shape and (offline == 0).sum() > FPS
    # Before any speech is heard nothing is known about pauses and the lips are left alone
    # (offline, the silence before the first phrase is a pause): compared from the first phrase on.
    speech_from = int(check_speech(clip).segments[0][0] * FPS)
    # the detector's state runs on as offline; only its thresholds see a shorter context
    after = slice(speech_from, None)
    assert np.mean(np.abs(streamed[after] - offline[after]) < 0.05) > 0.99
    assert np.abs(streamed[after] - offline[after]).mean() < 0.005
    assert streamed[-FPS:].max() == 0                        # the silence after speech is a pause
    assert len(pauses._probs) * VAD_CHUNK <= (PAUSE_CONTEXT + DEFAULT_LOOKAHEAD + block / FPS) * SAMPLE_RATE + VAD_CHUNK  # old let go


def test_stream_without_any_speech_leaves_the_lips_alone():
    from core.audio.speech_check import StreamPauses
    pauses = StreamPauses()
    pauses.push(np.zeros(2 * SAMPLE_RATE, np.float32))
    assert pauses.weights(0, 30).min() == 1.0 and not pauses.had_speech


def test_live_stream_closes_the_lips_in_pauses(toy_checkpoints):
    from core.inference.talker import Talker
    from core.inference.streaming import Stream, replay
    from tests.helpers import ToyEncoder
    talker = Talker.from_pretrained(toy_checkpoints, encoder=ToyEncoder())
    clip = _phrases()
    plain = replay(Stream(talker, 4, seed=1, identity="id1"), clip, 0.1).curves
    closed = replay(Stream(talker, 4, seed=1, identity="id1", close_pauses=True), clip, 0.1).curves
    lips, upper = list(LIP_INDICES), list(UPPER_INDICES)
    np.testing.assert_array_equal(closed[:, upper], plain[:, upper])
    silent_end = closed[-20:, lips]
    assert silent_end.max() == 0 and plain[-20:, lips].max() > 0
    speaking = slice(int(0.7 * 30), int(1.5 * 30))
    np.testing.assert_allclose(closed[speaking, lips], plain[speaking, lips], atol=1e-6)
