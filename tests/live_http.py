"""A Live-tab client over plain HTTP, the way the page's Gradio client streams the microphone
(gradio_client cannot send stream events): upload a chunk, join the queue with the stream
event, then post each further chunk to ``/gradio_api/stream/<event id>``; the answers come on the
session's server-sent events. ``forwarded_for`` plays a different visitor behind the app's proxy.
"""
from __future__ import annotations

import io
import json
import threading
import time
import uuid

import httpx
import numpy as np
import soundfile as sf


def wav_bytes(samples: np.ndarray, rate: int = 48000, subtype: str = "PCM_16") -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, rate, subtype=subtype, format="WAV")
    return out.getvalue()


def tone(seconds: float, rate: int = 48000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


class LiveClient:
    def __init__(self, url: str, forwarded_for: str | None = None):
        self.url = url.rstrip("/") + "/"
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        self.http = httpx.Client(base_url=self.url + "gradio_api/", headers=headers, timeout=60)
        self.session_hash = uuid.uuid4().hex[:12]
        config = httpx.get(self.url + "config", timeout=60).json()
        mic = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "live-microphone")
        value = {c["props"]["elem_id"]: c["props"].get("value") for c in config["components"]
                 if c.get("props", {}).get("elem_id")}
        self.steps = value["live-steps"]
        # the page's emotion, intensity, head switch and strengths, as it first shows them (set them to ask for others)
        self.controls = [value[f"live-{name}"] for name in ("emotion", "intensity", "head-motion", "upper-strength",
                                                            "lower-strength")]
        self.fn = {trigger: dep["id"] for dep in config["dependencies"]
                   for target, trigger in dep["targets"] if target == mic}
        self.messages: list[dict] = []
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.event_id: str | None = None

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

    def upload(self, data: bytes, name: str = "audio.wav") -> dict:
        path = self.http.post("upload", files={"files": (name, data, "application/octet-stream")}).json()[0]
        return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}

    def _body(self, fn: int, data: list) -> dict:
        return {"data": data, "fn_index": fn, "session_hash": self.session_hash, "event_data": None, "trigger_id": None}

    def call(self, trigger: str, data: list, timeout: float = 30) -> dict:
        """A whole (non-stream) event: its completed message."""
        event = self.http.post("queue/join", json=self._body(self.fn[trigger], data)).json()["event_id"]
        return self.wait(lambda m: m.get("event_id") == event and m["msg"] == "process_completed", timeout)

    def start(self, identity="auto") -> dict:
        return self.call("start_recording", [self.steps, identity, *self.controls, None])

    def stop(self) -> dict:
        if self.event_id:
            self.http.post(f"stream/{self.event_id}/close")
        return self.call("stop_recording", [None])

    def send(self, data: bytes, name: str = "audio.wav", identity="auto") -> None:
        """One chunk: the first joins the queue with the stream event, the others follow it."""
        body = self._body(self.fn["stream"], [self.upload(data, name), None, self.steps, identity, *self.controls])
        if self.event_id is None:
            self.event_id = self.http.post("queue/join", json=body).json()["event_id"]
        else:
            self.http.post(f"stream/{self.event_id}", json=body)

    def stream(self, chunks, pace: float = 0.1, timeout: float = 30) -> None:
        """Send ``chunks`` (bytes) as the page does: one every ``pace`` s, each once the answer to the
        one before has come (the page's recorder holds what it records meanwhile and sends it next)."""
        for data in chunks:
            began, answered = time.monotonic(), len(self.answers())
            self.send(data)
            self.wait(lambda m: len(self.answers()) > answered, timeout)
            time.sleep(max(0.0, pace - (time.monotonic() - began)))

    def answers(self) -> list[dict]:
        with self._cond:
            return [m for m in self.messages if m.get("event_id") == self.event_id and "output" in m]

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

    def outputs(self) -> list[list]:
        """The data of every answer to this client's stream (state, face, readout)."""
        return [m["output"]["data"] for m in self.answers() if m["output"] and "data" in m["output"]]

    def error(self) -> str | None:
        done = [m for m in self.answers() if m["msg"] == "process_completed" and not m.get("success", True)]
        return done[-1]["output"].get("error") if done else None

    def close(self) -> None:
        self._closed = True
        self.http.close()
