"""Live mode: a session's frames, the line of visitors, and the Live tab over HTTP the way the page
streams (tests/live_http.py): uploads heard once each, gaps counted, a tab closed without Stop, a
client that restarts to keep the head, bad and huge uploads, odd sample rates. The resampler, the chunk reader and the stream's batches are
tests/test_live_core.py's."""
import math
import time

import numpy as np
import pytest

from core.audio.decode import AudioError
from core.audio.resample import resample
from core.rates import SAMPLE_RATE
from demo.fairness import client_of
from core.inference.controls import UPPER, Controls
from demo.live import LIVE_HOP, STALE_SECONDS, TURN_SECONDS, LiveLine, LiveSession, live_value
from demo.live_tab import FOLLOW_SECONDS
from demo.viewer import decode_curves, decode_head
from experiments.loadtest import rss_mb
from tests.helpers import launch_app, make_tiny_checkpoints, toy_clip
from tests.live_http import LiveClient, pcm16, tone

BOUNDED_SECONDS = 10.0
MAX_RSS_GROWTH_MB = 500


# --------------------------------------------------------------------------- a session, the line

def test_a_session_streams_browser_audio_to_frames_once_each(toy_talker):
    audio = toy_clip(1, 2, seconds=2.0).audio
    browser = resample(audio.astype(np.float64), SAMPLE_RATE, 48000).astype(np.float32)
    session = LiveSession(toy_talker, 4, identity="id1", stale=600)
    blocks = []
    for i in range(0, len(browser), 4800):
        session.add(48000, browser[i:i + 4800], start=i)
        blocks.append(session.take())
    blocks.append(session.stop(wait=300))          # a busy machine: every frame, however long it takes
    blocks = [b for b in blocks if b is not None]
    covered = [(b.first, b.first + len(b.curves)) for b in blocks]
    assert covered[0][0] == 0 and covered[-1][1] == 60 and all(a[1] == b[0] for a, b in zip(covered, covered[1:]))
    info = session.info()
    assert info["identity"] == "id1" and info["skipped"] == 0.0 and abs(info["heard"] - 2.0) < 0.01
    with pytest.raises(AudioError, match="changed its sample rate"):
        session.add(44100, browser[:100])


def test_a_session_hears_each_sample_once_and_fills_a_gap_with_counted_silence(toy_talker):
    session = LiveSession(toy_talker, 4, identity="id0", stale=600)     # a busy machine may pause this test
    ones = np.ones(1600, np.float32)
    session.add(16000, ones, start=8000)            # a session that began 0.5 s into the page's recording
    session.add(16000, ones, start=8800)            # overlaps: 800 samples are new
    assert session.received == 8000 + 2400 and session.heard == 2400 and session.skipped() == 0.0
    session.add(16000, ones, start=12000)           # 1,600 samples never came
    assert session.heard == 5600 and abs(session.skipped() - 0.1) < 1e-9
    assert session.info()["origin"] == 0.5
    with pytest.raises(AudioError, match="never reached the server"):
        session.add(16000, ones, start=12000 + 16000 * 11)
    session.stop()


@pytest.mark.parametrize("rate", [48000, 44100, 8000])
def test_the_cadence_names_the_sample_that_completes_each_hop(toy_talker, rate):
    # the page uploads when its recording reaches a cadence point (microphone.js): the sample there
    # must be the one that lets the worker decode the hop, past what the resampler holds back
    session = LiveSession(toy_talker, 4, identity="id0", stale=600)
    audio = (0.1 * np.sin(np.arange(rate) / 7)).astype(np.float32)
    assert session.info()["cadence"] is None                  # nothing received: the page uploads on its own
    session.add(rate, audio[:100], start=3000)                # a session that began 3000 samples in
    cadence = session.info()["cadence"]
    assert cadence["start"] == 3000 and cadence["every"] == LIVE_HOP * rate
    point = cadence["start"] + math.ceil(2 * cadence["every"]) + cadence["after"]    # the second hop
    session.add(rate, audio[100: point - 3000 - 1], start=3100)
    assert session.heard < 2 * LIVE_HOP * SAMPLE_RATE          # one sample short ...
    session.add(rate, audio[point - 3000 - 1: point - 3000], start=point - 1)
    assert session.heard >= 2 * LIVE_HOP * SAMPLE_RATE         # ... and that sample completes it
    session.stop()


def test_the_viewer_value_carries_the_new_frames():
    curves = np.linspace(0, 1, 3 * 52, dtype=np.float32).reshape(3, 52)
    head = np.array([[0.1, -0.2, 0.05], [0.0, 0.3, -0.4], [-0.52, 0.0, 0.01]], np.float32)
    value = live_value(curves, 12, "mesh.bin", info={"identity": "x"}, head=head)
    assert value["live"] and value["first"] == 12 and value["frames"] == 3 and not value["reset"] and not value["end"]
    np.testing.assert_allclose(decode_curves(value["curves"]), curves, atol=1e-4)
    np.testing.assert_array_equal(decode_head(value["head"]), head)                  # radians, exactly
    assert "head" not in live_value(curves, 0, "mesh.bin")                             # no head given: still
    assert live_value(curves[:0], 0, "mesh.bin", end=True)["end"]
    with pytest.raises(ValueError, match="frames"):
        live_value(curves, 0, "mesh.bin", head=head[:2])


def test_a_session_streams_the_emotion_the_strengths_and_the_head(tmp_path):
    from core.emotion import AXES
    from core.inference.talker import Talker
    from tests.helpers import ToyEncoder, tiny_model
    import torch
    model = tiny_model(steps=4, head_channels=3, emotions=list(AXES))
    with torch.no_grad():
        model.emotion_projection.weight.normal_(0, 2.0)        # as a trained model's: an emotion shows
    model.save_pretrained(tmp_path / "teacher-4")
    talker = Talker.from_pretrained(tmp_path / "teacher-4", encoder=ToyEncoder())
    audio = toy_clip(1, 2, seconds=1.5).audio

    def stream(controls):
        session = LiveSession(talker, 4, identity="id1", stale=600, controls=controls)
        blocks = [session.take() for _ in range(1) if session.add(16000, audio)] + [session.stop(wait=300)]
        blocks = [b for b in blocks if b is not None]
        return np.concatenate([b.curves for b in blocks]), np.concatenate([b.head for b in blocks])
    curves, head = stream(Controls.checked("surprised", 0.9, True, 0.0, 1.0))
    assert head.shape == (len(curves), 3) == (45, 3) and np.abs(head).max() > 1e-3
    assert not curves[:, list(UPPER)].any()
    neutral, _ = stream(Controls(upper_strength=0.0))
    assert np.abs(neutral - curves).max() > 1e-3                 # the emotion reached the stream
    _, still = stream(Controls(emotion="surprised", intensity=0.9, head_motion=False))
    assert not still.any()


def test_the_line_is_first_come_first_served_one_place_per_client():
    line = LiveLine(limit=1, stale=0.3, turn=60)
    a = line.enter("a")
    b = line.enter("b")
    assert line.position(a) == 0 and line.position(b) == 1
    a2 = line.enter("a")                  # a starts again to keep the head: behind b
    assert line.position(b) == 0 and line.position(a2) == 1
    with pytest.raises(ValueError, match="lost its place"):
        line.position(a)                  # one place per client
    time.sleep(0.2)
    assert line.position(a2) == 1         # a2 keeps sending; b went silent (a tab closed without Stop) ...
    time.sleep(0.2)
    assert line.position(a2) == 0         # ... and lost its place
    short = LiveLine(limit=1, stale=5, turn=0.1)
    c, d = short.enter("c"), short.enter("d")
    time.sleep(0.15)
    with pytest.raises(ValueError, match="turn is over"):
        short.position(c)                 # a turn ends while others wait
    assert short.position(d) == 0
    with pytest.raises(ValueError, match="waiting already"):
        full = LiveLine(limit=1, max_waiting=1)
        full.enter("x"), full.enter("y"), full.enter("z")
    starting = LiveLine(limit=1, stale=0.2, first_wait=5)
    e = starting.enter("e")
    assert starting.position(e, chunk=False) == 0     # Record: the page's recorder has sent nothing yet ...
    time.sleep(0.5)
    assert starting.position(e) == 0                  # ... and a busy page's first chunk still finds its place;
    time.sleep(0.5)
    with pytest.raises(ValueError, match="lost its place"):
        starting.position(e)                          # from then on silence counts from `stale`


def test_a_client_is_its_address_or_the_one_its_proxy_reports():
    class Request:
        def __init__(self, host, forwarded=""):
            self.client = type("C", (), {"host": host})()
            self.headers = {"x-forwarded-for": forwarded} if forwarded else {}
    assert client_of(Request("93.184.216.34")) == "93.184.216.34"
    assert client_of(Request("93.184.216.34", "10.1.1.1")) == "93.184.216.34"    # not a proxy: not believed
    assert client_of(Request("10.0.0.2", "151.101.1.1, 8.8.8.8")) == "8.8.8.8"


# --------------------------------------------------------------------------- the Live tab over HTTP

@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    from demo import live
    root = tmp_path_factory.mktemp("checkpoints")
    make_tiny_checkpoints(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(live, "MAX_LIVE_SESSIONS", 1)           # one session at a time, as on a 2-core Space
        demo, url = launch_app(root)
    yield url
    demo.close()


def chunks(seconds: float, rate: int = 48000, size: float = 0.1) -> list[np.ndarray]:
    x = tone(seconds, rate)
    step = int(size * rate)
    return [x[i:i + step] for i in range(0, len(x), step)]


def frames_of(client: LiveClient) -> int:
    return sum(face.get("frames", 0) for face in client.faces())


def readouts(client: LiveClient) -> list[str]:
    """Every line the visitor was shown: the readout's from Record and Stop, the head's from the uploads."""
    datas = [m["output"]["data"] for m in list(client.messages) if isinstance((m.get("output") or {}).get("data"), list)]
    texts = [d[2] for d in datas if len(d) == 3 and isinstance(d[2], str)]
    return texts + [face["message"] for face in client.faces() if face.get("message")]


def stream_until_frames(client: LiveClient, rate: int = 48000, timeout: float = 60) -> float:
    """Upload as a microphone does (frames come back with the answers to later uploads) until frames
    come; returns the seconds it took."""
    began = time.monotonic()
    while frames_of(client) == 0 and client.error() is None and time.monotonic() - began < timeout:
        client.stream(chunks(0.2, rate=rate), rate)
    return time.monotonic() - began


def test_live_over_http_gives_frames_and_stop_brings_the_rest(app_url):
    client = LiveClient(app_url, "10.9.0.1")
    try:
        client.controls[3] = 0.0                                  # the upper-face strength slider at 0
        started = client.outputs(client.start())[1]
        assert started["reset"] and started["upload"].startswith("live/audio/") and len(started["upload"]) > 30
        client.stream(chunks(1.5))
        stream_until_frames(client)
        last = client.outputs(client.stop())
        assert last[1]["end"] and "Stopped" in last[2]
        faces = [f for f in client.faces() if f.get("frames")] + [last[1]]
        curves = np.concatenate([decode_curves(f["curves"]) for f in faces if f["frames"]])
        head = np.concatenate([decode_head(f["head"]) for f in faces if f["frames"]])
        assert len(head) == len(curves) and not head.any()      # today's model: the head stays still
        assert not curves[:, list(UPPER)].any() and curves.any()
        firsts = [f["first"] for f in faces if f["frames"]]
        assert firsts == sorted(set(firsts)) and firsts[0] == 0  # each frame once, in order
        # no frame twice; on a machine so loaded that Stop's wait for the worker runs out, fewer
        assert frames_of(client) + last[1]["frames"] <= round(last[1]["info"]["heard"] * 30)
        assert client.error() is None and last[1]["info"]["skipped"] == 0.0
        status, answer = client.send(pcm16(tone(0.1)))           # after Stop the address is gone
        assert status == 400 and "ended" in answer["error"]
    finally:
        client.close()


def test_frames_come_as_soon_as_they_are_decoded_without_waiting_for_another_upload(app_url):
    client = LiveClient(app_url, "10.9.6.1")
    try:
        client.start()
        assert client.follow_url.startswith("live/frames/") and client.follow_url[12:] == client.upload_url[11:]
        got, began = [client.send(pcm16(tone(1.5)))[1]], time.monotonic()   # one upload, then none (its answer
        # comes before the worker decodes it, so the frames come from following)
        while sum(f.get("frames", 0) for f in got) == 0 and time.monotonic() - began < 60:
            asked = time.monotonic()
            status, answer = client.follow()
            assert status == 200 and time.monotonic() - asked < FOLLOW_SECONDS + BOUNDED_SECONDS
            got.append(answer)
        frames = [f for f in got if f.get("frames")]
        assert frames and frames[0]["first"] == 0 and decode_curves(frames[0]["curves"]).shape == (frames[0]["frames"], 52)
        assert abs(frames[0]["info"]["heard"] - 1.5) < 0.05
        client.stop()
        status, answer = client.follow()                         # the stream has ended: said at once
        assert status == 400 and "ended" in answer["error"]
        r = client.http.get("live/frames/nonsense")
        assert r.status_code == 400 and "ended" in r.json()["error"]
    finally:
        client.close()


def test_uploads_that_overlap_or_leave_a_gap_are_heard_once_and_the_gap_counted(app_url):
    client = LiveClient(app_url, "10.9.0.2")
    try:
        client.start()
        x = pcm16(tone(0.5))                                     # 24,000 samples at 48 kHz
        assert client.send(x, start=0)[0] == 200
        assert client.send(x, start=12_000)[0] == 200            # a repeat: half of it was heard already
        assert client.send(x, start=48_000)[0] == 200            # 0.25 s never came: heard as silence
        heard = client.outputs(client.stop())[1]["info"]
        assert abs(heard["heard"] - 1.5) < 0.01 and abs(heard["skipped"] - 0.25) < 1e-6
        assert client.error() is None
    finally:
        client.close()


def test_a_tab_closed_without_stop_does_not_block_the_next_visitor(app_url):
    gone = LiveClient(app_url, "10.9.1.1")
    gone.start()
    gone.stream(chunks(0.5))                                   # then the tab closes: no Stop
    gone.close()
    client = LiveClient(app_url, "10.9.1.2")
    try:
        client.start()
        took = stream_until_frames(client)
        # the closed tab's place goes after STALE_SECONDS, not after a turn (TURN_SECONDS) or the stream's time
        # limit; the rest is a starved test process on a busy machine reaching its first frames
        assert frames_of(client) > 0 and took < STALE_SECONDS + 3 * BOUNDED_SECONDS < TURN_SECONDS
        assert any("in line" in text for text in readouts(client))      # it was told to wait meanwhile
        client.stop()
    finally:
        client.close()


def test_a_client_that_restarts_goes_behind_the_one_waiting(app_url):
    holder, waiting = LiveClient(app_url, "10.9.2.1"), LiveClient(app_url, "10.9.2.2")
    try:
        holder.start()
        holder.stream(chunks(0.3))
        waiting.start()
        waiting.stream(chunks(0.2))
        assert "number 1 in line" in readouts(waiting)[-1]        # a visible place in line, no error
        holder.start()                                            # restart to keep the head
        holder.stream(chunks(0.2))
        assert "number 1 in line" in readouts(holder)[-1]
        waiting.stream(chunks(1.2))
        assert waiting.error() is None and not waiting.faces()[-1].get("message")   # streaming now
    finally:
        for client in (holder, waiting):
            client.stop()
            client.close()


def test_bad_and_huge_uploads_get_a_plain_message_in_bounded_time_and_memory(app_url):
    cases = {                                                     # body, rate, start, what the message says
        "19 MB": (bytes(19_000_000), 48000, 0, "at most"),
        "11 s at 8 kHz": (bytes(2 * 88_000), 8000, 0, "at most 10 s"),
        "an odd number of bytes": (bytes(101), 48000, 0, "middle of a sample"),
        "no rate": (bytes(200), None, 0, "sample rate"),
        "a rate of 1 GHz": (bytes(200), 10**9, 0, "sample rate"),
        "a start that is no number": (bytes(200), 48000, "../../etc/passwd", "sample number"),
        "a minute of audio missing": (bytes(200), 48000, 48000 * 60, "never reached the server"),
    }
    before = rss_mb()
    for k, (what, (data, rate, start, message)) in enumerate(cases.items()):
        client = LiveClient(app_url, f"10.9.3.{k}")
        try:
            client.start()
            if what == "a minute of audio missing":
                client.send(pcm16(tone(0.1)), 48000, 0)
            began = time.monotonic()
            status, answer = client.send(data, rate, start)
            assert time.monotonic() - began < BOUNDED_SECONDS, what
            assert status in (400, 413) and message in answer["error"], (what, answer)
        finally:
            client.stop()
            client.close()
    http = LiveClient(app_url, "10.9.3.99")
    try:                                                          # no stream, or someone else's
        for token in ("nonsense", "..%2F..%2Fetc%2Fpasswd"):
            r = http.http.post(f"live/audio/{token}", content=bytes(200), params={"rate": 48000, "start": 0})
            assert r.status_code in (400, 404) and ("ended" in r.json().get("error", "") or r.status_code == 404)
    finally:
        http.close()
    assert rss_mb() - before < MAX_RSS_GROWTH_MB


def test_live_refuses_at_record_what_the_model_cannot_do(app_url):
    client = LiveClient(app_url, "10.9.5.1")
    try:
        client.controls[0] = "happy"                               # a page that offered it (or a hand-made request)
        done = client.start()
        assert not done["success"] and "trained without emotions; choose neutral" in done["output"]["error"]
        client.controls[:2] = ["neutral", 7]
        done = client.start()
        assert not done["success"] and "intensity must be a number from 0 to 1, not 7" in done["output"]["error"]
    finally:
        client.stop()
        client.close()


@pytest.mark.parametrize("rate", [48000, 44100, 8000, 383987])
def test_empty_and_odd_rate_uploads_stream_without_error(app_url, rate):
    client = LiveClient(app_url, f"10.9.4.{rate % 251}")
    try:
        client.start()
        began = time.monotonic()
        assert client.send(b"", rate)[0] == 200                  # an empty upload: nothing to hear
        client.stream(chunks(0.2, rate), rate)
        assert time.monotonic() - began < BOUNDED_SECONDS and client.error() is None
        stream_until_frames(client, rate)
        assert frames_of(client) > 0 and client.error() is None
    finally:
        client.stop()
        client.close()
