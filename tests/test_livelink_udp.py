"""The Live Link Face network format and its UDP sender, against a local receiver."""
import socket
import struct
import threading

import numpy as np
import pytest
import soundfile as sf

from core.arkit import INDEX
from core.inference.livelink_udp import LiveLinkSender, decode_frame, encode_frame, parse_address
from core.rates import SAMPLE_RATE


def test_a_frame_has_the_fields_unreal_reads_in_order():
    weights = np.linspace(0, 1, 52)
    device = "12345678-90AB-CDEF-1234-567890ABCDEF"
    data = encode_frame(weights, frame=42, subject="Face", device_id=device)
    assert len(data) == 1 + 4 + 36 + 4 + 4 + 16 + 1 + 61 * 4
    # PyLiveLinkFace writes the same bytes as a little-endian uint32 version 6 and a "$"-prefixed id
    assert data[:5] == struct.pack("<I", 6) + b"$" and data[5:41] == device.encode()
    assert struct.unpack_from(">i4s", data, 41) == (4, b"Face")
    assert struct.unpack_from(">ifii", data, 49) == (42, 0.0, 30, 1)
    assert data[65] == 61 and struct.unpack_from(">f", data, 66 + 4 * INDEX["jawOpen"])[0] == pytest.approx(weights[17])
    decoded = decode_frame(data)
    assert decoded["frame"] == 42 and decoded["fps"] == 30 and decoded["subject"] == "Face"
    np.testing.assert_allclose(decoded["weights"], weights, atol=1e-7)
    assert not decoded["rotations"].any()


def test_bad_frames_and_addresses_are_refused():
    with pytest.raises(ValueError, match="52 weights"):
        encode_frame(np.zeros(51), 0)
    with pytest.raises(ValueError, match="not a Live Link Face frame|does not fit|left over"):
        decode_frame(b"\x06\x00\x00\x01\x00abc")
    assert parse_address("10.0.0.2") == ("10.0.0.2", 11111) and parse_address("host:9000") == ("host", 9000)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address("host:port")


def _receiver():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    return receiver


def test_the_sender_reaches_a_local_receiver():
    receiver = _receiver()
    sender = LiveLinkSender("127.0.0.1", receiver.getsockname()[1])
    curves = np.random.default_rng(0).random((3, 52)).astype(np.float32)
    sender.send(curves, first=10)
    frames = [decode_frame(receiver.recv(2048)) for _ in range(3)]
    sender.close()
    receiver.close()
    assert [f["frame"] for f in frames] == [10, 11, 12] and len({f["device_id"] for f in frames}) == 1
    np.testing.assert_allclose(np.stack([f["weights"] for f in frames]), curves, atol=1e-7)


def test_stream_command_sends_every_frame(whisper_checkpoints, tmp_path, capsys):
    from core.__main__ import main
    wav = tmp_path / "tone.wav"
    t = np.arange(int(1.2 * SAMPLE_RATE)) / SAMPLE_RATE
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 160 * t)).astype(np.float32), SAMPLE_RATE)
    receiver = _receiver()
    got = []
    thread = threading.Thread(target=lambda: got.extend(receiver.recv(2048) for _ in range(36)), daemon=True)
    thread.start()
    port = receiver.getsockname()[1]
    assert main(["--checkpoints", str(whisper_checkpoints), "stream", str(wav), "--steps", "2",
                 "--livelink", f"127.0.0.1:{port}"]) == 0
    thread.join(10)
    receiver.close()
    assert [decode_frame(d)["frame"] for d in got] == list(range(36))
    assert "sent 36 Live Link Face frames" in capsys.readouterr().err


def test_the_head_travels_in_live_link_face_units():
    head = np.array([np.pi / 2, -np.pi / 4, 0.1], np.float32)
    data = encode_frame(np.zeros(52), 3, head=head)
    yaw_at = len(data) - 4 * 9                             # after the 52 weights: HeadYaw, HeadPitch, HeadRoll
    np.testing.assert_allclose(struct.unpack_from(">3f", data, yaw_at), [0.5, -0.25, 0.1 / np.pi], atol=1e-7)
    decoded = decode_frame(data)
    np.testing.assert_allclose(decoded["head"], head, atol=1e-6)
    assert not decoded["rotations"][3:].any()              # the eyes stay still
    with pytest.raises(ValueError, match="NaN"):
        encode_frame(np.zeros(52), 0, head=[np.nan, 0, 0])
    with pytest.raises(ValueError, match="radians"):
        encode_frame(np.zeros(52), 0, head=[90, 0, 0])


def test_the_sender_sends_each_frames_head():
    receiver = _receiver()
    sender = LiveLinkSender("127.0.0.1", receiver.getsockname()[1])
    head = np.array([[0.1, 0.0, 0.0], [0.0, 0.2, 0.0]], np.float32)
    sender.send(np.zeros((2, 52), np.float32), first=0, head=head)
    frames = [decode_frame(receiver.recv(2048)) for _ in range(2)]
    sender.close()
    receiver.close()
    np.testing.assert_allclose(np.stack([f["head"] for f in frames]), head, atol=1e-6)
    with pytest.raises(ValueError, match="1 frames of head angles for 2"):
        sender.send(np.zeros((2, 52), np.float32), first=0, head=head[:1])
