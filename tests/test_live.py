"""Live mode's server side (demo.live): the chunk resampler, a session's frames and readout,
the session limit, bad microphone input."""
from fractions import Fraction

import numpy as np
import pytest
from scipy.signal import resample_poly

from core.inference.talker import Talker
from core.rates import SAMPLE_RATE
from core.inference.streaming import Stream
from core.audio.resample import StreamingResampler
from demo.live import LiveSession, LiveSlots, live_value, to_mono_float
from demo.viewer import decode_curves
from tests.helpers import ToyEncoder, toy_clip


@pytest.mark.parametrize("rate", [48000, 44100, 22050, 8000, 16000])
def test_resampler_equals_resampling_the_whole_signal(rate):
    x = np.random.default_rng(0).standard_normal(rate)
    ratio = Fraction(SAMPLE_RATE, rate)
    whole = resample_poly(x, ratio.numerator, ratio.denominator)
    for chunk in (37, 480, 4410):
        resampler = StreamingResampler(rate)
        parts = [resampler(x[i:i + chunk]) for i in range(0, len(x), chunk)] + [resampler(x[:0], final=True)]
        np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)


def test_microphone_chunks_become_float_mono_or_a_clear_error():
    stereo = np.array([[16384, -16384], [32767, 32767]], np.int16)
    np.testing.assert_allclose(to_mono_float(stereo), [0.0, 32767 / 32768], atol=1e-6)
    with pytest.raises(ValueError, match="not numbers"):
        to_mono_float(np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match="shape"):
        to_mono_float(np.zeros((2, 2, 2)))


@pytest.fixture()
def toy_talker(toy_checkpoints):
    return Talker.from_pretrained(toy_checkpoints, encoder=ToyEncoder())


def test_a_session_streams_browser_audio_to_frames_and_says_how_fast(toy_talker):
    audio = toy_clip(1, 2, seconds=2.0).audio
    browser = resample_poly(audio, 3, 1)                     # what a 48 kHz microphone would send
    pcm = np.round(np.clip(browser, -1, 1) * 32767).astype(np.int16)
    session = LiveSession(toy_talker, 4, identity="id1")
    assert "Listening" in session.readout()
    pieces = [session.feed(48000, pcm[i:i + 4800]) for i in range(0, len(pcm), 4800)]
    pieces.append(session.feed(48000, pcm[:0], final=True))
    curves = np.concatenate(pieces)
    assert curves.shape == (60, 52) and "p50" in session.readout() and "Identity: id1" in session.readout()
    # the same as the library's stream on the 16 kHz audio (up to the int16 rounding of the page)
    stream = Stream(toy_talker, 4, seed=0, identity="id1")
    reference = np.concatenate([stream.feed(audio).curves, stream.finish().curves])
    assert np.abs(curves - reference).max() < 0.05
    with pytest.raises(ValueError, match="changed its sample rate"):
        session.feed(44100, pcm[:100])
    with pytest.raises(ValueError, match="outside"):
        LiveSession(toy_talker, 4).feed(1000, pcm[:100])


def test_the_viewer_value_carries_the_new_frames():
    curves = np.linspace(0, 1, 3 * 52, dtype=np.float32).reshape(3, 52)
    value = live_value(curves, 12, "mesh.bin")
    assert value["live"] and value["first"] == 12 and value["frames"] == 3 and not value["reset"]
    np.testing.assert_allclose(decode_curves(value["curves"]), curves, atol=1e-4)
    assert live_value(curves[:0], 0, "mesh.bin", reset=True)["curves"] == ""


def test_sessions_are_limited_and_a_silent_one_gives_its_slot_up():
    slots = LiveSlots(limit=1, stale=0.2)
    first, second = object(), object()
    slots.take(first)
    with pytest.raises(ValueError, match="in use"):
        slots.take(second)
    slots.release(first)
    slots.take(second)
    import time
    time.sleep(0.25)                                        # second went silent (a closed tab)
    slots.take(first)


def test_a_session_says_when_audio_was_skipped(toy_talker):
    session = LiveSession(toy_talker, 4, identity="id0")
    session.feed(16000, np.zeros(1600, np.float32))
    arrived, _ = session.first_chunk
    assert session.skipped(arrived - 1.0) == 0.0 and "skipped" not in session.readout()
    assert abs(session.skipped(arrived + 2.0) - 2.0) < 1e-6    # 2 s later, no more audio came


def test_chunks_and_stop_from_two_threads_give_each_frame_once(toy_talker):
    # Gradio runs Stop's event beside a chunk still being decoded: the session takes one at a time.
    import threading
    audio = toy_clip(1, 4, seconds=3.0).audio
    pcm = np.round(np.clip(resample_poly(audio, 3, 1), -1, 1) * 32767).astype(np.int16)
    session = LiveSession(toy_talker, 4, identity="id1")
    blocks, errors = [], []

    def send(part, final=False):
        try:
            blocks.append(session.frames(48000, part, final))
        except Exception as err:        # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=send, args=(pcm[i:i + 4800],)) for i in range(0, len(pcm) // 2, 4800)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    send(pcm[:0], True)
    assert not errors
    covered = sorted((first, first + len(curves)) for first, curves in blocks if len(curves))
    assert covered[0][0] == 0 and all(a[1] == b[0] for a, b in zip(covered, covered[1:]))   # no gap, no overlap
    assert covered[-1][1] == session.stream.frames_out
