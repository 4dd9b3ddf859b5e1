"""The running app under load and abuse: simultaneous requests, temporary files, the bad-input matrix.

Same tiny model and real Whisper encoder as test_app, served in-process, so the server's memory is
this process's. Clients use ``download_files=False``: outputs are read where the server keeps them.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from core.audio.decode import load_audio
from experiments.robustness import make_cases
from demo import service as demo_service
from demo import ui
from experiments.loadtest import free_port, rss_mb, visitor
from tests.helpers import IDENTITIES, make_tiny_checkpoints, serve, synthesise_speech, tiny_service

CONCURRENT = 8
MAX_RSS_GROWTH_MB = 500


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(url, service): the demo on tiny checkpoints, with its request folders in a known place."""
    # 128-pixel videos: rendering is the slowest stage, and its size changes nothing tested here
    service = tiny_service(tmp_path_factory, video_size=128)
    demo = ui.build_demo(service=service)
    yield serve(demo), service
    demo.close()


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client
    return Client(app[0], verbose=False, download_files=False)


@pytest.fixture(scope="module")
def short_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "short.wav"
    synthesise_speech(path, "Hello there.")
    return path


def request_folders(service) -> list[Path]:
    return sorted(service.folders.workdir.glob("req-*"))


def wait_for_request_folders(service, expected=(), timeout: float = 10.0) -> list[Path]:
    """The request folders left (a folder goes just after its last output is sent: allow a moment)."""
    deadline = time.monotonic() + timeout
    while request_folders(service) != sorted(expected) and time.monotonic() < deadline:
        time.sleep(0.1)
    return request_folders(service)


def check_outputs(outputs, audio_seconds: float, identities=IDENTITIES) -> dict[str, Path]:
    """Scores for every identity and an mp4 as long as the audio; returns the files by suffix."""
    matched, table, figure, video, timings, files = outputs
    assert sorted(row[0] for row in table["data"]) == sorted(identities)
    assert matched.startswith(table["data"][0][0]) and "ITF" in timings
    frames, _ = imageio_ffmpeg.count_frames_and_secs(video["path"])
    assert abs(frames / 30 - audio_seconds) <= 1 / 30 + 1e-6
    return {Path(f["path"]).suffix: Path(f["path"]) for f in files}


# --------------------------------------------------------------------------- configuration

def test_queue_limits_concurrency_and_gradio_cache_is_swept(app):
    import gradio as gr
    demo = ui.build_demo(service=app[1], warm_up=False)
    assert isinstance(demo, gr.Blocks) and demo.delete_cache == ui.DELETE_CACHE
    assert demo._queue.max_size == ui.MAX_QUEUE
    model_events = [fn for fn in demo.fns.values() if fn.api_name in ("generate", "compare")]
    assert len(model_events) == 2
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in model_events} == {("model", ui.MAX_CONCURRENT)}
    enrol = next(fn for fn in demo.fns.values() if fn.api_name == "enroll")
    assert enrol.concurrency_limit == 1


# --------------------------------------------------------------------------- concurrency

@pytest.mark.slow
def test_simultaneous_requests_all_complete_correctly(app, client, short_wav):
    from gradio_client import handle_file
    url, service = app
    seconds = sf.info(str(short_wav)).duration
    check_outputs(client.predict(handle_file(str(short_wav)), 4, 0, 1, "auto", api_name="/generate"), seconds)
    before = rss_mb()   # after one request: models, encoder and renderer are loaded

    clients = [visitor(url, k) for k in range(CONCURRENT)]    # 8 visitors (each may have 2 requests at once)
    start = threading.Barrier(CONCURRENT)
    jobs = [(8 if k % 2 else 4, 100 + k, "auto" if k % 3 else IDENTITIES[k // 3])
            for k in range(CONCURRENT)]

    def one(k):
        steps, seed, identity = jobs[k]
        start.wait()
        began = time.perf_counter()
        out = clients[k].predict(handle_file(str(short_wav)), steps, seed, 1, identity, api_name="/generate")
        return out, time.perf_counter() - began

    began = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENT) as pool:
        results = list(pool.map(one, range(CONCURRENT)))
    wall = time.perf_counter() - began
    after = rss_mb()
    print(f"\n{CONCURRENT} simultaneous /generate ({seconds:.2f} s clip): wall {wall:.1f} s, "
          f"per request {min(r[1] for r in results):.1f}-{max(r[1] for r in results):.1f} s; "
          f"RSS {before:.0f} MB before, {after:.0f} MB after (+{after - before:.0f} MB)")

    wave = load_audio(str(short_wav))
    for (steps, seed, identity), (outputs, _) in zip(jobs, results):
        files = check_outputs(outputs, seconds)
        reference = service.talker.generate(wave, steps=steps, seed=seed, speech_check=True,
                                            identity=None if identity == "auto" else identity)
        assert files[".npy"].name == f"short_{steps}steps_seed{seed}.npy"       # no request got another's files
        np.testing.assert_allclose(np.load(files[".npy"])[:, :52], reference.blendshapes[0], atol=1e-4)   # then the head
        assert outputs[0].startswith(reference.matched_identity)
    assert after - before < MAX_RSS_GROWTH_MB
    assert wait_for_request_folders(service) == []


# --------------------------------------------------------------------------- temporary files

def test_request_folders_are_deleted_once_served(app, client, short_wav):
    from gradio_client import handle_file
    service = app[1]
    stale, fresh = service.folders.workdir / "req-crashed-long-ago", service.folders.workdir / "req-running-elsewhere"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "left.mp4").write_bytes(b"x")
    old = time.time() - service.folders.keep_seconds - 60
    os.utime(stale, (old, old))
    outputs = client.predict(handle_file(str(short_wav)), 4, 1, 2, "a", api_name="/generate")
    files = check_outputs(outputs, sf.info(str(short_wav)).duration)
    assert all(path.is_file() for path in files.values())      # Gradio's copies outlive our folder
    assert not any(service.folders.workdir in path.parents for path in files.values())
    assert wait_for_request_folders(service, [fresh]) == [fresh]      # ours went at once, the stale one by age
    fresh.joinpath("left.mp4").unlink()
    fresh.rmdir()


def test_service_removes_the_work_folder_it_made(app):
    service = demo_service.DemoService(app[1].talker)
    service.folders.new()
    assert service.folders.workdir.is_dir()
    service.folders.close()
    assert not service.folders.workdir.exists()


# --------------------------------------------------------------------------- bad input

@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return make_cases(tmp_path_factory.mktemp("inputs"))


UI_PARAMS = {"steps": 4, "seed": 0, "num_samples": 1, "identity": "auto"}   # /generate's inputs after the audio


@pytest.mark.slow
def test_bad_input_matrix_through_the_app(app, client, cases, short_wav):
    """Every case of experiments.robustness through /generate: outputs, or the plain message the API gives."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    service = app[1]
    ran = []
    for case in cases:
        if case.expect == "skip" or set(case.params) - set(UI_PARAMS):
            continue
        if case.slow and case.expect == "ok":   # a 60 s render; the Python API test covers that case
            continue
        params = {**UI_PARAMS, **case.params}
        args = [handle_file(case.source), *(params[k] for k in UI_PARAMS)]
        if case.expect == "ok":
            check_outputs(client.predict(*args, api_name="/generate"), len(load_audio(case.source)) / 16000)
        else:
            with pytest.raises(AppError) as info:
                client.predict(*args, api_name="/generate")
            message = str(info.value)
            assert message.strip() and "Traceback" not in message and 'File "' not in message, case.name
            if case.params:   # refused by the form (not a choice, out of range): names the value, cut short
                assert str(next(iter(case.params.values())))[:30] in message, (case.name, message)
                assert len(message) < 500, case.name
            else:             # the audio's own problem: exactly what the Python API says
                with pytest.raises(ValueError) as direct:
                    service.load(case.source)
                assert str(direct.value) in message, (case.name, message)
        ran.append(case.name)
    assert len(ran) >= 20
    check_outputs(client.predict(handle_file(str(short_wav)), 8, 3, 1, "auto", api_name="/generate"),
                  sf.info(str(short_wav)).duration)                     # still serving normally
    assert wait_for_request_folders(service) == []


def test_an_unwritable_cache_folder_stops_start_up_with_a_message(tmp_path):
    import subprocess
    import sys
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {**os.environ, "GRADIO_TEMP_DIR": str(blocker / "cache")}
    proc = subprocess.run([sys.executable, "app.py", "--checkpoints", str(tmp_path / "none")], env=env,
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 1
    assert "GRADIO_TEMP_DIR" in proc.stderr and "cannot be written" in proc.stderr
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- server lifecycle

def start_server(checkpoints, env: dict, tmp_path) -> tuple["subprocess.Popen", str]:
    """``python app.py`` on ``checkpoints`` in a process of its own; (process, url) once it answers."""
    import subprocess
    import sys

    import httpx
    port = free_port()
    log = open(tmp_path / f"server-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py", "--checkpoints", str(checkpoints), "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])
    url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"the server did not start: {(tmp_path / f'server-{port}.log').read_text()[-2000:]}")


def stop_server(proc, sig) -> None:
    import signal as signals
    proc.send_signal(sig)
    try:
        proc.wait(timeout=60)
    except Exception:
        proc.send_signal(signals.SIGKILL)
        raise


@pytest.fixture(scope="module")
def checkpoint_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt-copy")
    make_tiny_checkpoints(root)
    return root


def test_a_server_stopped_with_sigterm_removes_its_folders(checkpoint_copy, tmp_path):
    import signal
    temp = tmp_path / "tmp"
    temp.mkdir()
    # The parent's cache setting is inherited, as from any app that starts this one.
    proc, _ = start_server(checkpoint_copy, {**os.environ, "TMPDIR": str(temp)}, tmp_path)
    work = list(temp.glob(f"diffusiontalker-demo-{proc.pid}-*"))
    assert work and (temp / f"diffusiontalker-gradio-{proc.pid}").is_dir()
    stop_server(proc, signal.SIGTERM)
    assert not list(temp.glob("diffusiontalker-*")), list(temp.iterdir())


def test_install_waits_for_the_apt_lock_instead_of_failing(tmp_path):
    """scripts/install.sh with stand-in apt-get, dpkg, id and python3: apt-get fails as it does when
    another apt holds the lock, unless told to wait for it."""
    import shutil
    import subprocess
    repo, fake = tmp_path / "repo", tmp_path / "bin"
    (repo / "scripts").mkdir(parents=True)
    fake.mkdir()
    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "scripts" / "install.sh", repo / "scripts")
    (repo / "packages.txt").write_text("libegl1\n")
    (repo / "requirements.txt").write_text("")
    stand_ins = {
        "apt-get": 'echo "$@" >> "$(dirname "$0")/apt.log"; [[ "$*" == *DPkg::Lock::Timeout=* ]] && exit 0; '
                   'echo "E: Could not get lock /var/lib/dpkg/lock-frontend" >&2; exit 100',
        "dpkg": "exit 1",                      # every package missing
        "id": "echo 0",                        # root: no sudo
        "python3": 'mkdir -p .venv/bin && printf "#!/bin/sh\\nexit 0\\n" > .venv/bin/python && chmod +x .venv/bin/python',
    }
    for name, body in stand_ins.items():
        (fake / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (fake / name).chmod(0o755)
    result = subprocess.run(["bash", "scripts/install.sh"], cwd=repo, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    assert (fake / "apt.log").read_text().count("DPkg::Lock::Timeout") == 2      # update and install


def test_each_visitor_has_a_bounded_share_of_the_model_queue(app, short_wav):
    """One visitor's third simultaneous request is refused at once with a message; another visitor is served."""
    from gradio_client import Client, handle_file
    from demo.fairness import MAX_PER_CLIENT
    # two visitors behind a proxy on this machine, told apart by the address it forwards
    greedy, other = (Client(app[0], verbose=False, download_files=False, headers={"x-forwarded-for": address},
                            httpx_kwargs={"timeout": 60}) for address in ("10.0.0.1", "10.0.0.2"))
    jobs = [greedy.submit(handle_file(str(short_wav)), 4, k, 1, "auto", api_name="/generate")
            for k in range(MAX_PER_CLIENT + 2)]
    served = other.submit(handle_file(str(short_wav)), 4, 0, 1, "auto", api_name="/generate")
    outcomes = []
    for job in jobs:
        try:
            job.result(timeout=300)
            outcomes.append("ok")
        except Exception as err:
            outcomes.append(str(err))
    assert outcomes.count("ok") >= MAX_PER_CLIENT
    refused = [o for o in outcomes if o != "ok"]
    assert refused and all(f"each visitor may have {MAX_PER_CLIENT}" in o for o in refused), outcomes
    matched, *_ = served.result(timeout=300)
    assert matched
