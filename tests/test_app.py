"""The Gradio demo: its logic directly, then the running app through gradio_client.

The app runs a tiny, untrained DiffusionTalker (8-step teacher + distilled 4-step student)
with the real default speech encoder (Whisper tiny.en), so every stage of a real request
runs, in seconds. The speech clip is synthesised with espeak-ng (tests needing it skip
without it).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from core.arkit import ARKIT_NAMES, INDEX, NUM_BLENDSHAPES
from core.inference.talker import Talker
from demo import formatting, forms, housekeeping, page, plots, ui
from demo import service as demo_service
from tests.helpers import IDENTITIES, launch_app, make_tiny_checkpoints, serve, synthesise_speech, write_take


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    make_tiny_checkpoints(root)
    return root


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "hello.wav"
    synthesise_speech(path)
    return path


@pytest.fixture(scope="module")
def service(checkpoints):
    talker, problem = demo_service.load_talker(checkpoints)
    assert problem is None
    return demo_service.DemoService(talker)


@pytest.fixture(scope="module")
def app_url(checkpoints):
    demo, url = launch_app(checkpoints)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client
    return Client(app_url, verbose=False)


# --------------------------------------------------------------------------- logic, no server

def test_form_values_are_checked_with_plain_messages():
    assert forms.parse_seed(3) == 3 and forms.parse_seed(4.0) == 4 and forms.parse_seed(" 7 ") == 7
    for bad, message in ((None, "Enter a seed"), (-1, "between 0"), (1.5, "whole number"), ("x", "whole number"),
                         (2 ** 31, "between 0")):
        with pytest.raises(ValueError, match=message):
            forms.parse_seed(bad)
    assert forms.parse_seeds("0, 1 2;1") == [0, 1, 2]
    with pytest.raises(ValueError, match="one or more seeds"):
        forms.parse_seeds(" , ")
    with pytest.raises(ValueError, match="between 1 and"):
        forms.parse_samples(forms.MAX_SAMPLES + 1)
    assert demo_service._consecutive_runs([0, 1, 2, 7, 9, 10]) == [(0, 3), (7, 1), (9, 2)]


def test_curves_figure_shows_every_channel_once_in_small_panels():
    rng = np.random.default_rng(0)
    curves = rng.random((2, 45, NUM_BLENDSHAPES), dtype=np.float32)
    fig = plots.curves_figure(curves)
    legend_traces = [t for t in fig.data if t.showlegend]
    assert sorted(t.meta for t in legend_traces) == sorted(ARKIT_NAMES)       # one legend entry per channel
    assert len(fig.data) == 2 * NUM_BLENDSHAPES                              # and a faint line for sample 2
    panels = {}
    for trace in legend_traces:
        panels.setdefault(trace.legend, []).append(trace)
    assert len(panels) == len(plots.CURVE_PANELS) and max(len(p) for p in panels.values()) <= 9
    for traces in panels.values():                  # within a panel only a Left/Right pair shares a colour
        by_color = {}
        for trace in traces:
            by_color.setdefault(trace.line.color, set()).add(trace.meta.removesuffix("Left").removesuffix("Right"))
        assert all(len(stems) == 1 for stems in by_color.values())
    assert plots.short_name("mouthPressLeft") == "Press L" and plots.short_name("tongueOut") == "tongueOut"
    assert fig.data[0].x[-1] == pytest.approx(44 / 30, abs=1e-3)


def test_spread_and_compare_figures():
    rng = np.random.default_rng(1)
    samples = rng.random((3, 30, NUM_BLENDSHAPES))
    spread = plots.channel_spread(samples)
    np.testing.assert_allclose(spread, samples.std(axis=0).mean(axis=0))
    fig = plots.spread_figure({8: spread, 1: spread * 2})
    assert len(fig.data) == 2 * len(plots.REGION_COLORS)
    assert fig.layout.yaxis.range == fig.layout.yaxis2.range          # one scale: rows are compared
    assert sum(len(t.x) for t in fig.data) == 2 * NUM_BLENDSHAPES
    runs = {(8, 0): samples[0], (8, 1): samples[1], (1, 0): samples[2]}
    fig = plots.compare_figure(runs, "brows")
    assert len(fig.data) == 3 * plots.MAX_OVERLAID and {t.name for t in fig.data if t.showlegend} == {"seed 0", "seed 1"}
    samples[:, :, INDEX["jawOpen"]] *= 3                               # the channel that moves most is one of those drawn
    fig = plots.compare_figure(runs, "jaw/lips")                      # 4 lines per seed and step count, not 24
    assert len(fig.data) == 3 * plots.MAX_OVERLAID and "jawOpen" in fig.layout.title.text
    assert len(plots.compare_figure(runs, "jawOpen").data) == 3
    with pytest.raises(ValueError, match="unknown channel"):
        plots.compare_figure(runs, "nose")
    with pytest.raises(ValueError, match="seeds >= 2"):
        plots.channel_spread(samples[:1])


def test_example_clips_are_offered_when_present(checkpoints, speech_wav, tmp_path):
    assert demo_service.example_files(tmp_path) == []
    shutil.copy(speech_wav, tmp_path / "example.wav")
    assert demo_service.example_files(tmp_path) == [tmp_path / "example.wav"]
    demo = ui.build_demo(checkpoints, examples=demo_service.example_files(tmp_path), warm_up=False)
    datasets = [block for block in demo.blocks.values() if block.get_block_name() == "dataset"]
    assert len(datasets) == 1 and len(datasets[0].samples) == 1


def test_missing_checkpoint_gives_a_page_not_a_crash(tmp_path):
    demo = ui.build_demo(tmp_path / "nothing-here")
    text = " ".join(str(block.value) for block in demo.blocks.values() if hasattr(block, "value"))
    assert "No trained checkpoint yet" in text and "python -m core.training.train" in text


def test_service_generates_exports_and_compares(service, speech_wav):
    assert service.steps_choices == [8, 4] and service.default_steps == 8 and service.identities == IDENTITIES
    assert service.default_live_steps == 4      # Live: half the decoder's time, so that its worker keeps up
    take = service.generate(str(speech_wav), steps=4, seed=5, num_samples=2, identity="b")
    generation = take.generation
    assert generation.blendshapes.shape[0] == 2 and generation.identity == "b" and generation.seeds == [5, 6]
    table = formatting.scores_table(generation)
    assert sorted(table["identity"]) == IDENTITIES and table["similarity"].map(type).eq(float).all()
    assert service.talker.identity_label("b") == "b"           # toy checkpoints carry no labels
    labelled = formatting.scores_table(generation, {"b": "flite awb · calm, wide jaw"}.get)
    assert labelled.set_index("identity").loc["b", "voice and style"] == "flite awb · calm, wide jaw"
    assert "flite awb · calm, wide jaw" in formatting.identity_summary(generation, lambda n: "flite awb · calm, wide jaw")
    files = service.export(take)
    assert sorted(f.suffix for f in files) == [".csv", ".glb", ".json", ".npy", ".npy"]
    assert "ITF" in formatting.timings_markdown(take) and "export files" in formatting.timings_markdown(take)

    comparison = service.compare(str(speech_wav), [8, 4], "0, 1, 3")
    assert sorted(comparison.runs) == [(steps, "neutral", seed) for steps in (4, 8) for seed in (0, 1, 3)]
    single = service.generate(str(speech_wav), steps=8, seed=3, identity=comparison.identity).generation
    np.testing.assert_allclose(comparison.runs[(8, "neutral", 3)], single.blendshapes[0], atol=1e-5)  # batching is invisible
    spreads = comparison.spreads()
    assert set(spreads) == {(8, "neutral"), (4, "neutral")} and spreads[(8, "neutral")].shape == (NUM_BLENDSHAPES,)
    with pytest.raises(ValueError, match="more than"):
        service.compare(str(speech_wav), [8, 4], list(range(demo_service.MAX_COMPARE_CELLS)))
    with pytest.raises(ValueError, match="no model with 3 steps"):
        service.generate(str(speech_wav), steps=3)
    noise = 0.1 * np.random.default_rng(0).standard_normal(int((service.max_seconds + 1) * 16000))
    with pytest.raises(ValueError, match="too long"):
        service.generate(noise.astype(np.float32))


def test_the_head_of_each_sample_reaches_the_files_the_viewers_and_the_videos(service, speech_wav, monkeypatch):
    """The service hands every output the head of the sample it shows (a model's head is faked here:
    the tiny checkpoints have none)."""
    import core.audio.speech_check
    import core.face.render
    from core.face.export import import_motion
    from core.inference.talker import Generation
    frames = 12

    def turning(seed: int) -> np.ndarray:          # each seed turns its own way
        head = np.zeros((frames, 3), np.float32)
        head[:, 0] = 0.05 * seed + 0.01 * np.arange(frames)
        return head

    def fake_sample(talker, wave, steps, seed, identity, count, features=None, speech_check=True, controls=None):
        return Generation(np.full((count, frames, NUM_BLENDSHAPES), 0.2, np.float32), "a", "a", [("a", 1.0)], steps,
                          [seed + k for k in range(count)], dict.fromkeys(("speech check", "encoder", "match",
                                                                           "sampling", "total"), 0.0),
                          head=np.stack([turning(seed + k) for k in range(count)]), wave=wave)

    drawn = {}
    monkeypatch.setattr(demo_service, "_sample", fake_sample)
    monkeypatch.setattr(core.face.render, "render_video", lambda *a, **k: drawn.setdefault("video", k["head"]))
    monkeypatch.setattr(core.face.render, "render_grid_video", lambda *a, **k: drawn.setdefault("grid", k["heads"]))
    take = service.generate(str(speech_wav), steps=4, seed=2, num_samples=2)
    files = {f.name: f for f in service.export(take)}
    for suffix in (".csv", ".json", ".npy", ".glb"):
        np.testing.assert_allclose(import_motion(files[take.name + suffix]).head, turning(2), atol=1e-6)
    samples = np.load(files[f"{take.name}_all_2_samples.npy"])
    assert samples.shape == (2, frames, NUM_BLENDSHAPES + 3)
    np.testing.assert_array_equal(samples[1, :, NUM_BLENDSHAPES:], turning(3))
    np.testing.assert_array_equal(viewer_head(service.viewer_take(take)["cells"][0]), turning(2))
    service.render(take)
    np.testing.assert_array_equal(drawn["video"], turning(2))

    monkeypatch.setattr(service.talker, "features", lambda wave: (np.zeros((frames, 8), np.float32), None))
    class Speech:                                   # what compare() reads of the speech check
        def warning(self):
            return None
    monkeypatch.setattr(core.audio.speech_check, "check_speech", lambda wave: Speech())
    comparison = service.compare(str(speech_wav), [8, 4], "0, 1, 5")
    np.testing.assert_array_equal(comparison.heads[(4, "neutral", 5)], turning(5))
    cells = service.viewer_grid(comparison)["cells"]
    assert [viewer_head(c)[0, 0] for c in cells] == pytest.approx([0.0, 0.05, 0.25] * 2)
    service.render_comparison(comparison)
    np.testing.assert_array_equal(drawn["grid"][2], turning(5))


def viewer_head(cell: dict) -> np.ndarray:
    from demo.viewer import decode_head
    return decode_head(cell["head"])


def test_one_request_may_not_compute_more_than_its_bound(service):
    """cells x seconds (or samples x seconds) above MAX_TAKE_SECONDS is refused before any work."""
    seconds = demo_service.MAX_TAKE_SECONDS / 3 + 1
    speech = (0.1 * np.sin(np.arange(int(seconds * 16000)) * 0.05)).astype(np.float32)
    with pytest.raises(ValueError, match="4 samples of 81 s .*240 take-seconds"):
        service.generate(speech, steps=4, num_samples=4)
    with pytest.raises(ValueError, match="6 takes of 81 s"):
        service.compare(speech, [8, 4], "0, 1, 2")


def test_work_folders_of_dead_servers_are_removed_at_start(tmp_path):
    import os
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftovers = [tmp_path / f"{housekeeping.WORKDIR_PREFIX}{dead.pid}-abc", tmp_path / f"{housekeeping.WORKDIR_PREFIX}{os.getpid()}-x"]
    for folder in leftovers:
        (folder / "req-1").mkdir(parents=True)
    assert housekeeping.remove_leftovers(tmp_path) == leftovers[:1]
    assert not leftovers[0].exists() and leftovers[1].exists()    # a live server's folder stays

    cache = tmp_path / "cache"
    (cache / "old-upload").mkdir(parents=True)
    (cache / "old-upload" / "a.wav").write_bytes(b"x")
    (cache / "fresh.mp4").write_bytes(b"x")
    long_ago = time.time() - 7200
    os.utime(cache / "old-upload", (long_ago, long_ago))
    assert housekeeping.remove_old_files(cache, 3600) == 1
    assert [p.name for p in cache.iterdir()] == ["fresh.mp4"]


# --------------------------------------------------------------------------- the running app

def _video_seconds(path) -> tuple[int, float]:
    return imageio_ffmpeg.count_frames_and_secs(str(path))


def test_generate_endpoint_returns_scores_curves_video_and_files(client, speech_wav):
    from gradio_client import handle_file
    start = time.perf_counter()
    matched, table, figure, video, timings, files = client.predict(
        handle_file(str(speech_wav)), 8, 0, 1, "auto", api_name="/generate")
    print(f"/generate on a {sf.info(str(speech_wav)).duration:.2f} s clip: {time.perf_counter() - start:.2f} s")
    assert sorted(row[0] for row in table["data"]) == IDENTITIES
    best = table["data"][0]
    assert matched.startswith(best[0]) and "matched" in best[-1]
    plotted = json.loads(figure["plot"])["data"]
    assert {trace["meta"] for trace in plotted} == set(ARKIT_NAMES)                  # every channel, named in full
    audio_seconds = sf.info(str(speech_wav)).duration
    frames, seconds = _video_seconds(video)
    assert abs(frames / 30 - audio_seconds) <= 1 / 30 and abs(seconds - audio_seconds) <= 1 / 30
    assert sorted(f.rsplit(".", 1)[1] for f in files) == ["csv", "glb", "json", "npy"]
    assert "ITF" in timings and "render video" in timings


def test_style_transfer_and_samples_through_the_api(client, speech_wav):
    from gradio_client import handle_file
    matched, table, figure, video, timings, files = client.predict(
        handle_file(str(speech_wav)), 4, 11, 3, "a", api_name="/generate")
    roles = {row[0]: row[-1] for row in table["data"]}
    assert "style used" in roles["a"] and ("a" in matched)
    assert len(json.loads(figure["plot"])["data"]) == 3 * NUM_BLENDSHAPES
    assert any(f.endswith("_all_3_samples.npy") for f in files)
    assert "4 steps x 3 samples" in timings


def test_bad_input_gives_a_clear_error_and_the_app_keeps_serving(client, speech_wav, tmp_path):
    from gradio_client import handle_file
    fake = tmp_path / "picture.wav"
    Image.new("RGB", (16, 16), "red").save(fake, format="PNG")
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(32000, np.float32), 16000)
    for path, message in ((fake, "not a sound file"), (silence, "silent")):
        with pytest.raises(Exception, match=message):
            client.predict(handle_file(str(path)), 8, 0, 1, "auto", api_name="/generate")
    with pytest.raises(Exception, match="Record or upload"):
        client.predict(None, 8, 0, 1, "auto", api_name="/generate")
    # Every number, whatever type the API client sends, gets the one rule and a plain message.
    for steps, seed, samples, message in ((3, 0, 1, "no model with 3 steps"), ("x", 0, 1, "no model with 'x' steps"),
                                          (8, "abc", 1, "seed must be a whole number"),
                                          (8, 1.5, 1, "seed must be a whole number"),
                                          (8, -5, 1, "seed must be a whole number between 0"),
                                          (8, 0, "2.5", "number of samples must be a whole number"),
                                          (8, 0, 1, None)):
        if message is None:
            break
        with pytest.raises(Exception, match=message) as info:
            client.predict(handle_file(str(speech_wav)), steps, seed, samples, "auto", api_name="/generate")
        assert "upstream" not in str(info.value)
    with pytest.raises(Exception, match="Unknown identity 'xxxxx.*\\.\\.\\.") as info:   # 1 MB is not echoed back
        client.predict(handle_file(str(speech_wav)), 8, 0, 1, "x" * 1_000_000, api_name="/generate")
    assert len(str(info.value)) < 300
    matched, *_ = client.predict(handle_file(str(speech_wav)), "8", "3", "1", "auto", api_name="/generate")
    assert matched                                         # numbers as text are numbers
    matched, table, *_ = client.predict(handle_file(str(speech_wav)), 4, 1, 1, "auto", api_name="/generate")
    assert len(table["data"]) == len(IDENTITIES)


def test_compare_endpoint_tiles_steps_by_seeds(client, speech_wav):
    from gradio_client import handle_file
    video, curves, spread, summary = client.predict(
        handle_file(str(speech_wav)), [8, 4], "0, 1", "brows", "auto", api_name="/compare")
    frames, _ = _video_seconds(video)
    assert abs(frames / 30 - sf.info(str(speech_wav)).duration) <= 1 / 30
    assert len(json.loads(curves["plot"])["data"]) == 4 * plots.MAX_OVERLAID   # 2 steps x 2 seeds x the 4 brow channels that move most
    assert "spread, upper face" in summary
    assert len(json.loads(spread["plot"])["data"]) == 2 * len(plots.REGION_COLORS)


# --------------------------------------------------------------------------- enrolment

def test_takes_are_paired_by_file_name(tmp_path):
    a, b = tmp_path / "take1.wav", tmp_path / "take2.flac"
    pairs = forms.pair_takes([str(b), str(a)], [str(tmp_path / "take1.csv"), str(tmp_path / "take2.csv")])
    assert [(s.name, c.name) for s, c in pairs] == [("take2.flac", "take2.csv"), ("take1.wav", "take1.csv")]
    for speech, csvs, message in (([a], [tmp_path / "other.csv"], "no CSV named like take1.wav.*no speech"),
                                  ([a, b], [tmp_path / "take1.csv"], "no CSV named like take2.flac"),
                                  ([a], [tmp_path / "take1.txt"], "must be a Live Link Face .csv"),
                                  ([a, tmp_path / "x" / "take1.wav"], [tmp_path / "take1.csv"], "named 'take1'"),
                                  (None, [tmp_path / "take1.csv"], "Upload one or more")):
        with pytest.raises(ValueError, match=message):
            forms.pair_takes(speech, csvs)


@pytest.fixture(scope="module")
def enrol_app(checkpoints, tmp_path_factory):
    """An app on a copy of the checkpoints (enrolment writes their libraries)."""
    root = tmp_path_factory.mktemp("enrol") / "checkpoints"
    shutil.copytree(checkpoints, root)
    demo = ui.build_demo(root, warm_up=False)
    yield root, serve(demo)
    demo.close()


def test_enroll_tab_adds_an_identity_that_generate_accepts(enrol_app, speech_wav, tmp_path):
    from gradio_client import Client, handle_file
    root, url = enrol_app
    client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
    takes = [write_take(tmp_path, f"take{k}", seed=40 + k) for k in range(2)]
    wavs = [handle_file(str(wav)) for wav, _ in takes]
    csvs = [handle_file(str(csv)) for _, csv in reversed(takes)]          # any order: paired by name
    short = write_take(tmp_path, "short", seconds=1.0)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "take0.csv").write_text("not,a,capture\n1,2,3\n")
    huge = tmp_path / "huge"
    huge.mkdir()
    lines = takes[0][1].read_text().splitlines()
    cells = lines[2].split(",")
    cells[3] = "1e30"                                                    # a blendshape weight of 1e30 in row 2
    (huge / "take0.csv").write_text("\n".join(lines[:2] + [",".join(cells)] + lines[3:]) + "\n")
    for speech, captures, message in (
            (wavs, csvs[:1], "no CSV named like take0.wav"),
            (wavs[:1], [handle_file(str(bad / "take0.csv"))], "not a Live Link Face CSV"),
            (wavs[:1], [handle_file(str(huge / "take0.csv"))], "line 3, column .*1e\\+30 is outside 0-1"),
            ([handle_file(str(short[0]))], [handle_file(str(short[1]))], "too short"),
            (wavs, csvs, "reserved")):
        name = "auto" if message == "reserved" else "carol"
        with pytest.raises(Exception, match=message) as info:
            client.predict(speech, captures, name, 10, api_name="/enroll")
        assert "Traceback" not in str(info.value)
    assert demo_service.load_talker(root)[0].identities() == IDENTITIES   # a refused request changes nothing

    status = client.predict(wavs, csvs, "carol", 10, api_name="/enroll")
    assert "carol" in status and "4 identities" in status
    for name in ("teacher-8", "distilled-4"):
        assert Talker.from_pretrained(root / name).identities() == IDENTITIES + ["carol"]
    with pytest.raises(Exception, match="already in the library"):
        client.predict(wavs, csvs, " carol ", 10, api_name="/enroll")

    for user in (client, Client(url, verbose=False, download_files=str(tmp_path / "downloads"))):  # and a new session
        matched, table, *_ = user.predict(handle_file(str(speech_wav)), 4, 0, 1, "carol", api_name="/generate")
        roles = {row[0]: row[-1] for row in table["data"]}
        assert sorted(roles) == sorted(IDENTITIES + ["carol"]) and "style used" in roles["carol"]

    with pytest.raises(Exception, match="'a' is not an enrolled identity"):   # trained identities stay
        client.predict("a", api_name="/remove_identity")
    status = client.predict("carol", api_name="/remove_identity")
    assert "Removed **carol**" in status and "3 identities" in status
    for name in ("teacher-8", "distilled-4"):
        assert Talker.from_pretrained(root / name).identities() == IDENTITIES
    with pytest.raises(Exception, match="Unknown identity 'carol'"):
        client.predict(handle_file(str(speech_wav)), 4, 0, 1, "carol", api_name="/generate")


HOSTILE_NAMES = ["[Session expired: sign in](https://example.com)", "line\nbreak", "evil\u202eexe.txt", "<b>bold</b>",
                 "**loud**", "two  spaces", "`code`", "zero\u200bwidth", "#1", "a|b", "!", "nul\u0000", "-dash"]


def test_enrolled_names_are_plain_and_shown_as_text(enrol_app, speech_wav, tmp_path):
    """A name is shown to every visitor: a plain character set only, and Markdown shows it as text."""
    from gradio_client import Client, handle_file
    root, url = enrol_app
    client = Client(url, verbose=False, download_files=False, httpx_kwargs={"timeout": 60})
    takes = [write_take(tmp_path, f"take{k}", seed=50 + k) for k in range(2)]
    wavs, csvs = [handle_file(str(w)) for w, _ in takes], [handle_file(str(c)) for _, c in takes]
    for name in HOSTILE_NAMES:
        with pytest.raises(Exception, match="may hold letters, digits, single spaces") as info:
            client.predict(wavs, csvs, name, 10, api_name="/enroll")
        assert "Traceback" not in str(info.value)
    name = "Zoë_O'Neil-2"                                     # plain, and every punctuation mark it may hold
    status = client.predict(wavs, csvs, name, 10, api_name="/enroll")
    shown = "Zoë\\_O\\'Neil\\-2"                              # Markdown-escaped: no emphasis can form
    assert f"**{shown}**" in status
    summary = client.predict(handle_file(str(speech_wav)), [4], "0", "jaw/lips", name, api_name="/compare")[3]
    assert f"style: **{shown}**" in summary
    assert f"Removed **{shown}**" in client.predict(name, api_name="/remove_identity")


def test_a_damaged_file_is_the_servers_problem_not_the_users():
    import gradio as gr
    from core.model.manifest import ChecksumError
    with pytest.raises(gr.Error) as info:
        with page.errors_shown():
            raise ChecksumError("checkpoints/distilled-4/model.safetensors does not match the sha256")
    assert info.value.title == "Server problem" and "does not match" in info.value.message
    with pytest.raises(gr.Error) as info:
        with page.errors_shown():
            raise ValueError("The seed must be a whole number")
    assert info.value.title == "Cannot use this input"


def test_a_bad_identity_library_is_reported_and_the_app_serves_without_it(tmp_path, speech_wav):
    import json
    from safetensors.torch import save_file
    from core.identities.store import library_for
    make_tiny_checkpoints(tmp_path)
    library = library_for(tmp_path / "distilled-4")
    library.parent.mkdir(parents=True)
    save_file({"embeddings": torch.full((1, 32), float("nan"))}, str(library),
              metadata={"names": json.dumps(["nan-voice"])})
    talker, problem = demo_service.load_talker(tmp_path)
    assert problem is None and any("NaN" in line for line in talker.problems())
    generation = talker.generate(str(speech_wav), steps=4)
    assert generation.matched_identity in IDENTITIES and np.isfinite([s for _, s in generation.scores]).all()


def test_enrolment_is_off_on_a_public_space_unless_turned_on(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert housekeeping.enrolment_allowed() and not housekeeping.enrolment_allowed(no_enroll=True)
    monkeypatch.setenv("SPACE_ID", "someone/diffusiontalker")
    assert not housekeeping.enrolment_allowed()
    assert "vanish when it restarts" in housekeeping.storage_note()
    from core.identities.store import data_folder
    assert str(data_folder()) not in housekeeping.storage_note()          # no server path on the page
    monkeypatch.setenv("DIFFUSIONTALKER_ENROLL", "1")
    assert housekeeping.enrolment_allowed()


def test_importing_the_ui_changes_nothing_and_the_app_sets_the_process_up():
    import os
    import sys
    from pathlib import Path
    code = ("import os, threadpoolctl; before = dict(os.environ)\n"
            "blas = lambda: [p['num_threads'] for p in threadpoolctl.threadpool_info() if p['internal_api'] == 'openblas']\n"
            "import numpy; threads = blas()\n"
            "import demo.ui, demo.generate_tab, demo.compare_tab, demo.enroll_tab\n"
            "assert dict(os.environ) == before, set(os.environ) ^ set(before)\n"
            "assert blas() == threads, (blas(), threads)\n"
            "from demo.housekeeping import configure_process\n"
            "configure_process()\n"
            "assert os.environ['GRADIO_ANALYTICS_ENABLED'] == 'False' and os.environ['GRADIO_TEMP_DIR']\n"
            "assert set(blas()) <= {1}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADIO_", "OPENBLAS", "OMP_"))}
    env["OPENBLAS_NUM_THREADS"] = "2"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "configure_process()" in (Path(__file__).resolve().parents[1] / "app.py").read_text()  # app.main calls it


def test_service_result_types_and_formatting_import_no_loop():
    import ast
    from pathlib import Path
    demo = Path(__file__).resolve().parents[1] / "demo"
    imports = {}
    for name in ("service", "formatting", "results", "folders", "enrolment"):
        tree = ast.parse((demo / f"{name}.py").read_text())
        imports[name] = {node.module.split(".")[-1] for node in ast.walk(tree)
                         if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("demo")}
    assert "service" not in imports["formatting"] and "formatting" not in imports["results"]
    assert "service" not in imports["results"] | imports["folders"] | imports["enrolment"]


def test_step_counts_that_lose_the_seed_are_not_offered_and_the_page_says_why(checkpoints, tmp_path):
    import shutil
    from core.model.manifest import read_manifest, record_metrics
    from demo.service import DemoService, load_talker
    from demo.ui import _header
    root = tmp_path / "ckpt"
    shutil.copytree(checkpoints, root)
    steps = {e["name"]: e["steps"] for e in read_manifest(root)["models"] if e.get("role", "shipped") == "shipped"}
    fewest = min(steps, key=steps.get)
    why = "its upper face varies less across seeds than the teacher's (blink spread 0.09x the teacher's)"
    record_metrics(root, {fewest: {"seed_check": {"offered": False, "why": why, "ratios": {}}}})
    record_metrics(root, {fewest: {"lbe": 0.2}})               # the tables' figures come later and keep it
    assert {"seed_check", "lbe"} <= set(next(e for e in read_manifest(root)["models"] if e["name"] == fewest)["metrics"])
    talker, problem = load_talker(root)
    assert problem is None
    service = DemoService(talker, workdir=tmp_path / "work")
    assert steps[fewest] not in service.steps_choices and len(service.steps_choices) == len(steps) - 1
    assert service.withheld_steps == {steps[fewest]: why}
    with pytest.raises(ValueError, match=f"The {steps[fewest]}-step model is not offered here: its upper face"):
        service.check_steps(str(steps[fewest]))
    assert service.check_steps(str(service.default_steps)) == service.default_steps
    assert f"Not offered: {steps[fewest]} steps, because {why}." in _header(service)
