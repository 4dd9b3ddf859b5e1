"""A Live-tab client over plain HTTP, the way the page streams the microphone: Record and Stop are
Gradio events (join the queue, read the answer on the session's server-sent events); the audio
goes as raw 16-bit PCM to the upload address Record's answer names (``POST live/audio/<token>``),
one upload at a time, each answered with the frames decoded since; the frames also come, as soon as
they are decoded, from the address it names to follow (``GET live/frames/<token>``).
``forwarded_for`` plays a different visitor behind the app's proxy.
"""
from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import numpy as np


def tone(seconds: float, rate: int = 48000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as the page uploads them: 16-bit little-endian PCM."""
    return np.clip(np.round(np.asarray(samples) * 32768), -32768, 32767).astype("<i2").tobytes()


class LiveClient:
    def __init__(self, url: str, forwarded_for: str | None = None):
        self.url = url.rstrip("/") + "/"
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=60)
        self.session_hash = uuid.uuid4().hex[:12]
        config = httpx.get(self.url + "config", timeout=60).json()
        ids = {c["props"].get("elem_id"): c["id"] for c in config["components"] if c.get("props", {}).get("elem_id")}
        value = {c["props"]["elem_id"]: c["props"].get("value") for c in config["components"]
                 if c.get("props", {}).get("elem_id")}
        self.steps = value["live-steps"]
        # the page's emotion, intensity, head switch and strengths, as it first shows them (set them to ask for others)
        self.controls = [value[f"live-{name}"] for name in ("emotion", "intensity", "head-motion", "upper-strength",
                                                            "lower-strength")]
        self.fn = {button: dep["id"] for dep in config["dependencies"] for target, trigger in dep["targets"]
                   for button in ("live-record", "live-stop") if target == ids[button] and trigger == "click"}
        self.messages: list[dict] = []            # the Gradio events' messages
        self.answers: list[tuple[int, dict]] = []  # (status, JSON) of every upload
        self.upload_url: str | None = None
        self.follow_url: str | None = None
        self.sent = 0                             # samples uploaded (the next upload's start)
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """The session's events; the server ends the event stream whenever nothing is pending, and
        the page's client opens it again: so does this one."""
        with httpx.Client(timeout=None, headers=self.http.headers) as http:
            while not self._closed:
                try:
                    with http.stream("GET", self.url + "gradio_api/queue/data",
                                     params={"session_hash": self.session_hash}) as r:
                        for line in r.iter_lines():
                            if line.startswith("data:"):
                                with self._cond:
                                    self.messages.append(json.loads(line[5:]))
                                    self._cond.notify_all()
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)

    def call(self, button: str, data: list, timeout: float = 30) -> dict:
        """A Gradio event of the tab: its completed message."""
        body = {"data": data, "fn_index": self.fn[button], "session_hash": self.session_hash, "event_data": None,
                "trigger_id": None}
        event = self.http.post("gradio_api/queue/join", json=body).json()["event_id"]
        return self.wait(lambda m: m.get("event_id") == event and m["msg"] == "process_completed", timeout)

    def start(self, identity="auto") -> dict:
        """Record: the completed message; the upload address is kept (a new recording starts at sample 0)."""
        done = self.call("live-record", [self.steps, identity, *self.controls, None])
        face = (done.get("output") or {}).get("data", [None, None])[1]
        if isinstance(face, dict) and face.get("upload"):
            self.upload_url, self.follow_url, self.sent = face["upload"], face.get("follow"), 0
        return done

    def stop(self) -> dict:
        return self.call("live-stop", [None])

    @staticmethod
    def outputs(done: dict) -> list:
        """A completed event's outputs; an event that failed says why instead of a KeyError."""
        assert done.get("success"), f"the event failed: {done.get('output')}"
        return done["output"]["data"]

    def send(self, body: bytes, rate=48000, start=None) -> tuple[int, dict]:
        """One upload as it stands (``start``: None for right after the last one)."""
        start = self.sent if start is None else start
        r = self.http.post(self.upload_url, content=body, params={"rate": rate, "start": start},
                           headers={"Content-Type": "application/octet-stream"})
        answer = (r.status_code, r.json())
        if r.status_code == 200 and isinstance(start, int):
            self.sent = start + len(body) // 2
        self.answers.append(answer)
        return answer

    def follow(self) -> tuple[int, dict]:
        """One request for the frames decoded since they were last taken (answered when there are some)."""
        r = self.http.get(self.follow_url)
        return r.status_code, r.json()

    def stream(self, pieces, rate: int = 48000, pace: float = 0.1) -> None:
        """Upload ``pieces`` (float arrays) as the page does: one every ``pace`` s, each once the
        one before was answered."""
        for piece in pieces:
            began = time.monotonic()
            self.send(pcm16(piece), rate)
            time.sleep(max(0.0, pace - (time.monotonic() - began)))

    def wait(self, test, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self.messages if test(m)]
                if found:
                    return found[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no such message in {timeout} s; got {[m.get('msg') for m in self.messages]}")
                self._cond.wait(left)

    def faces(self) -> list[dict]:
        """The live head's values from the uploads' answers."""
        return [answer for status, answer in self.answers if status == 200]

    def error(self) -> str | None:
        """The last refusal of an upload, if any."""
        refused = [answer["error"] for status, answer in self.answers if status != 200]
        return refused[-1] if refused else None

    def close(self) -> None:
        self._closed = True
        self.http.close()
