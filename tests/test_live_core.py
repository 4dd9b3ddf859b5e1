"""Live mode's core: the project's resampler streamed, a live upload read with its bounds checked
(core.audio.decode.read_pcm16), long chunks decoded in bounded batches and a
backlog caught up as one block (core.inference.streaming.Stream.feed)."""
import time

import numpy as np
import pytest

from core.audio.decode import AudioError, read_pcm16
from core.audio.resample import StreamingResampler, resample
from core.inference.streaming import MAX_PLANS, Stream
from tests.helpers import toy_clip


# --------------------------------------------------------------------------- resampler and reader

@pytest.mark.parametrize("rate", [48000, 44100, 22050, 8000, 16000, 383987])
def test_streaming_resampler_equals_the_projects_resampler_on_the_whole_signal(rate):
    x = np.random.default_rng(0).standard_normal(rate // 2)
    whole = resample(x, rate)
    for chunk in ((37, 480, 4410) if rate <= 48000 else (997, 38399)):    # sizes the page would send there
        resampler = StreamingResampler(rate)
        parts = [resampler(x[i:i + chunk]) for i in range(0, len(x), chunk)] + [resampler(x[:0], final=True)]
        np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)


def test_an_odd_sample_rate_costs_little_per_chunk():
    # 383,987 Hz (a prime): the exact ratio 16000/383987 needed a 7.7-million-tap filter per chunk (1.1 s each)
    rate = 383987
    resampler = StreamingResampler(rate)
    x = np.random.default_rng(1).standard_normal(rate // 10).astype(np.float32)
    began = time.perf_counter()
    for _ in range(5):
        resampler(x)
    assert time.perf_counter() - began < 3.0         # the exact ratio: 5.5 s on an idle machine


def test_an_upload_is_bounded_and_read_as_16_bit_pcm():
    samples, rate = read_pcm16(np.array([0, 16384, -32768, 32767], "<i2").tobytes(), 48000, 2.0)
    assert rate == 48000 and samples.dtype == np.float32
    np.testing.assert_array_equal(samples, [0.0, 0.5, -1.0, 32767 / 32768])
    assert read_pcm16(b"", "44100", 2.0)[0].size == 0            # an empty upload: no samples, no error
    with pytest.raises(AudioError, match="at most 2 s"):
        read_pcm16(bytes(2 * 16001), 8000, 2.0)                  # one sample over 2 s
    with pytest.raises(AudioError, match="middle of a sample"):
        read_pcm16(bytes(3), 8000, 2.0)
    for rate in (None, "abc", 0, 10**9, "1e999"):
        with pytest.raises(AudioError, match="[Ss]ample rate"):
            read_pcm16(bytes(2), rate, 2.0)


# --------------------------------------------------------------------------- the stream

def test_a_long_chunk_is_decoded_in_bounded_batches(toy_talker):
    audio = toy_clip(1, 2, seconds=4.0).audio
    stream = Stream(toy_talker, 4, seed=0, identity="id1")              # 40 hops of 0.1 s in one chunk
    runs = []
    real_run = stream.features.run
    stream.features.run = lambda plans: runs.append(len(plans)) or real_run(plans)
    whole = np.concatenate([stream.feed(audio).curves, stream.finish().curves])
    assert max(runs) <= MAX_PLANS and sum(runs) >= 4.0 / 0.1 - 10
    reference = Stream(toy_talker, 4, seed=0, identity="id1")
    parts = [reference.feed(audio[i:i + 800]).curves for i in range(0, len(audio), 800)] + [reference.finish().curves]
    np.testing.assert_allclose(whole, np.concatenate(parts), atol=2e-6)     # batches change nothing


def test_a_backlog_is_caught_up_as_one_block(toy_talker):
    audio = toy_clip(1, 2, seconds=3.0).audio
    stream = Stream(toy_talker, 4, seed=0, identity="id1", hop=0.2)
    runs = []
    real_run = stream.features.run
    stream.features.run = lambda plans: runs.append(len(plans)) or real_run(plans)
    out = stream.feed(audio[:40000], catch_up=True)                   # 2.5 s waiting: one encoder pass
    assert runs == [1] and out.first == 0 and len(out.curves) == stream.due(38400)     # the last hop it reached
    more = stream.feed(audio[40000:], catch_up=True)
    assert more.first == len(out.curves) and stream.frames_out == stream.due(48000)
    before = stream.frames_out
    assert before + len(stream.finish().curves) == 90
