"""The Live Link Face network format: one UDP datagram per frame, so that a MetaHuman in Unreal
(Live Link plugin, "Live Link Face" source, port 11111) can be driven live.

Layout, big-endian, as read by Unreal's Apple ARKit Live Link source and by two independent
public implementations (the think-biq Live Link Face frame tool, which reads the iPhone app's
packets field by field, and JimWest's PyLiveLinkFace, whose encoding decodes to the same fields):

    uint8    version (6)
    int32    length, then the device id (UTF-8)
    int32    length, then the subject name (UTF-8)
    int32    frame number, float32 sub-frame, int32 rate numerator, int32 rate denominator
    uint8    value count (61)
    float32  x 61: the 52 ARKit blendshapes in ARKit's order (``core.arkit.ARKIT_NAMES``), then
             head yaw/pitch/roll and left / right eye yaw/pitch/roll (the eyes sent as 0 here)

The head values are Live Link Face's own unit, degrees / 180 (:func:`core.head_pose.to_livelink`,
where the source is named), the same as its CSV files. The frame number counts frames at the
stream's rate (30 / 1 here) from the stream's start.
"""
from __future__ import annotations

import socket
import struct
import uuid

import numpy as np

from core.arkit import NUM_BLENDSHAPES
from core.head_pose import HEAD_CHANNELS, check_head, from_livelink, to_livelink
from core.rates import FPS

VERSION = 6
ROTATIONS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
             "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
VALUES = NUM_BLENDSHAPES + len(ROTATIONS)
DEFAULT_PORT = 11111
DEFAULT_SUBJECT = "DiffusionTalker"


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    return struct.pack(">i", len(data)) + data


def encode_frame(weights, frame: int, subject: str = DEFAULT_SUBJECT, device_id: str = "",
                 fps: int = FPS, sub_frame: float = 0.0, head=None) -> bytes:
    """One datagram for one frame of ARKit-52 ``weights`` (clipped to [0, 1]) and the head's
    yaw/pitch/roll radians ``head`` [3] (None: still)."""
    weights = np.clip(np.asarray(weights, np.float64).reshape(-1), 0.0, 1.0)
    if len(weights) != NUM_BLENDSHAPES:
        raise ValueError(f"a Live Link Face frame needs {NUM_BLENDSHAPES} weights, got {len(weights)}")
    values = np.zeros(VALUES)
    values[:NUM_BLENDSHAPES] = weights
    if head is not None:
        values[NUM_BLENDSHAPES:NUM_BLENDSHAPES + HEAD_CHANNELS] = to_livelink(check_head(np.reshape(head, (1, -1)))[0])
    return (struct.pack(">B", VERSION) + _text(device_id) + _text(subject)
            + struct.pack(">ifii", int(frame), float(sub_frame), int(fps), 1)
            + struct.pack(f">B{VALUES}f", VALUES, *values))


def decode_frame(data: bytes) -> dict:
    """The fields of one datagram (what a receiver reads); ValueError if it is not one."""
    try:
        version, at = data[0], 1
        texts = []
        for _ in range(2):
            (length,) = struct.unpack_from(">i", data, at)
            if not 0 <= length <= len(data) - at - 4:
                raise ValueError(f"a text field of {length} bytes does not fit")
            texts.append(data[at + 4: at + 4 + length].decode("utf-8"))
            at += 4 + length
        frame, sub_frame, numerator, denominator = struct.unpack_from(">ifii", data, at)
        count = data[at + 16]
        values = struct.unpack_from(f">{count}f", data, at + 17)
        if at + 17 + 4 * count != len(data):
            raise ValueError(f"{len(data) - at - 17 - 4 * count} bytes left over")
    except (IndexError, struct.error, UnicodeDecodeError) as err:
        raise ValueError(f"not a Live Link Face frame ({err})") from None
    rotations = np.asarray(values[NUM_BLENDSHAPES:], np.float32)
    return {"version": version, "device_id": texts[0], "subject": texts[1], "frame": frame, "sub_frame": sub_frame,
            "fps": numerator / max(1, denominator), "weights": np.asarray(values[:NUM_BLENDSHAPES], np.float32),
            "rotations": rotations, "head": from_livelink(rotations[:HEAD_CHANNELS])}


def parse_address(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (port 11111 by default) with a clear message when it is not one."""
    host, _, port = text.rpartition(":") if ":" in text else (text, "", str(DEFAULT_PORT))
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not host or not 0 < number < 65536:
        raise ValueError(f"--livelink wants HOST or HOST:PORT (e.g. 127.0.0.1:{DEFAULT_PORT}), not {text!r}")
    return host, number


class LiveLinkSender:
    """Sends frames as Live Link Face datagrams to ``(host, port)`` over UDP."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, subject: str = DEFAULT_SUBJECT,
                 fps: int = FPS):
        self.address, self.subject, self.fps = (host, int(port)), subject, fps
        self.device_id = str(uuid.uuid4()).upper()
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sent = 0

    def send(self, curves: np.ndarray, first: int, head: np.ndarray | None = None) -> None:
        """Frames ``curves`` [n, 52] with head angles ``head`` [n, 3] radians (None: still), the
        first of them numbered ``first``."""
        curves = np.asarray(curves)
        head = check_head(head, len(curves))
        for k, (weights, angles) in enumerate(zip(curves, head)):
            self.socket.sendto(encode_frame(weights, first + k, self.subject, self.device_id, self.fps,
                                            head=angles), self.address)
            self.sent += 1

    def close(self) -> None:
        self.socket.close()
