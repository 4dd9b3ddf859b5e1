"""Value maps (core/inference/value_maps.py): the fitted map gives a shrunk model the data's
distribution; an anchored map keeps its anchor, and so the blink count, and maps what lies below
it on its own (or leaves it alone); the maps reach Generate and Live the same way."""
import numpy as np
import pytest

from core.arkit import INDEX
from core.evaluation.upper_face import BLINK_LEVEL, FULL_BLINK, blinks
from core.inference.value_maps import ValueMap, apply, fit, from_config


def _blink_track(peaks, frames=300, width=2.0, rng=None):
    """eyeBlink over ``frames`` with one bump per peak (evenly spaced), 0.02 noise floor."""
    rng = rng or np.random.default_rng(0)
    t = np.arange(frames)
    x = np.abs(rng.normal(0, 0.01, frames))
    for k, p in enumerate(peaks):
        x += p * np.exp(-0.5 * ((t - (k + 0.5) * frames / len(peaks)) / width) ** 2)
    return np.clip(x, 0, 1)


def test_whole_range_fit_gives_the_data_quantiles():
    rng = np.random.default_rng(1)
    truth = rng.beta(2, 5, 20_000)
    model = 0.3 + 0.4 * rng.beta(2, 5, 20_000)          # shrunk and shifted
    value_map = fit("browInnerUp", model, truth)
    mapped = value_map(model)
    for q in (0.05, 0.5, 0.95, 0.99):
        assert abs(np.quantile(mapped, q) - np.quantile(truth, q)) < 0.01
    assert np.all(np.diff(value_map.y) >= 0) and np.all(np.diff(value_map.x) > 0)
    assert mapped.dtype == np.float32


def test_anchored_fit_keeps_the_blink_count_and_deepens_peaks():
    rng = np.random.default_rng(2)
    truth = np.concatenate([_blink_track(rng.uniform(0.85, 1.0, 12), rng=rng) for _ in range(20)])
    model = np.concatenate([_blink_track(rng.uniform(0.55, 0.8, 12), rng=rng) for _ in range(20)])
    value_map = fit("eyeBlinkLeft", model, truth, anchor=BLINK_LEVEL)
    below = model < BLINK_LEVEL
    np.testing.assert_allclose(value_map(model)[below], model[below], atol=1e-6)   # untouched below the anchor
    assert value_map(np.array([BLINK_LEVEL]))[0] == pytest.approx(BLINK_LEVEL, abs=1e-6)

    def events(track):
        curves = np.zeros((len(track), 52), np.float32)
        curves[:, INDEX["eyeBlinkLeft"]] = curves[:, INDEX["eyeBlinkRight"]] = track
        return blinks(curves)

    before, after = events(model), events(value_map(model))
    assert len(before) == len(after) == 240                               # every blink kept, none added
    assert np.mean([p >= FULL_BLINK for p, _ in before]) == 0.0
    # frame values are mapped, not peaks: a shallow bump's top meets the data's flanks, so not all close
    assert np.mean([p >= FULL_BLINK for p, _ in after]) > 0.7
    assert np.mean([p for p, _ in after]) > np.mean([p for p, _ in before]) + 0.15


def test_below_the_anchor_open_lids_that_wander_are_stilled_and_every_blink_kept():
    """A model whose open lids wander (noise floor 0.05) against data whose lids lie still (0.005):
    mapped with ``below`` = the frame values of each, the open frames come to the data's level and
    near its spread, the anchor maps to itself, and every crossing of it stays where it was."""
    rng = np.random.default_rng(5)

    t = np.arange(6000)
    bumps = sum(np.exp(-0.5 * ((t - centre) / 2.0) ** 2) for centre in np.arange(50, 6000, 100))
    opened = bumps < 1e-3                                     # frames far from every blink

    def track(floor, peak):
        return np.clip(peak * bumps + np.abs(rng.normal(0, floor, len(t))), 0, 1)
    model, truth = track(0.05, 0.7), track(0.005, 0.95)
    value_map = fit("eyeBlinkLeft", model, truth, anchor=BLINK_LEVEL, below=(model, truth))
    mapped = value_map(model)
    open_model = open_truth = opened
    assert model[open_model].std() > 4 * truth[open_truth].std()
    # a pointwise map cannot tell a wandering open lid from a blink's flank of the same value, so
    # the open frames come near the data's spread, not onto it
    assert mapped[open_model].std() < min(0.3 * model[open_model].std(), 2.5 * truth[open_truth].std())
    assert abs(np.median(mapped[open_model]) - np.median(truth[open_truth])) < 0.005
    assert value_map(np.array([BLINK_LEVEL]))[0] == pytest.approx(BLINK_LEVEL, abs=1e-6)
    np.testing.assert_array_equal(mapped >= BLINK_LEVEL, model >= BLINK_LEVEL)
    assert np.all(np.diff(value_map.x) > 0) and np.all(np.diff(value_map.y) >= 0)


def test_a_map_fitted_on_blink_peaks_closes_every_blink_and_keeps_each_one():
    """What the eyelids ship with (experiments.evaluate value-maps): the model's blink peaks onto
    the data's, so shallow blinks close too, where a map of frame values leaves them on the
    data's flanks (the test above)."""
    from experiments.evaluate.value_maps import blink_peaks
    rng = np.random.default_rng(2)

    def clip(low, high):
        curves = np.zeros((4, 300, 52), np.float32)
        for k in range(4):
            track = _blink_track(rng.uniform(low, high, 12), rng=rng)
            curves[k, :, INDEX["eyeBlinkLeft"]] = curves[k, :, INDEX["eyeBlinkRight"]] = track
        return curves

    model, truth = [clip(0.55, 0.8) for _ in range(5)], [clip(0.85, 1.0) for _ in range(5)]
    maps = tuple(fit(name, blink_peaks(model), blink_peaks(truth), anchor=BLINK_LEVEL)
                 for name in ("eyeBlinkLeft", "eyeBlinkRight"))
    held_out = clip(0.55, 0.8)
    before = [e for sample in held_out for e in blinks(sample)]
    after = [e for sample in apply(held_out.copy(), maps) for e in blinks(sample)]
    assert len(before) == len(after) == 48
    assert np.mean([p >= FULL_BLINK for p, _ in after]) > 0.95
    assert [d for _, d in after] == [d for _, d in before]                   # each blink as long as it was


def test_fit_without_values_above_the_anchor_is_the_identity():
    value_map = fit("eyeBlinkLeft", np.full(100, 0.1), np.linspace(0, 1, 100), anchor=0.5)
    np.testing.assert_allclose(value_map(np.linspace(0, 1, 11)), np.linspace(0, 1, 11), atol=1e-6)


def test_maps_round_trip_and_refuse_bad_knots():
    value_map = ValueMap("browInnerUp", (0.0, 0.25, 1.0), (0.0, 0.5, 1.0))
    (again,) = from_config({"value_maps": [value_map.as_dict()]})
    assert again == value_map
    assert from_config({}) == ()
    curves = np.full((2, 5, 52), 0.25, np.float32)
    apply(curves, (value_map,))
    assert np.all(curves[..., INDEX["browInnerUp"]] == 0.5)
    assert np.all(np.delete(curves, INDEX["browInnerUp"], -1) == 0.25)      # other channels untouched
    with pytest.raises(ValueError, match="x increasing"):
        ValueMap("browInnerUp", (0.0, 0.0, 1.0), (0.0, 0.5, 1.0))
    with pytest.raises(ValueError, match="x increasing"):
        ValueMap("browInnerUp", (0.0, 1.0), (1.0, 0.0))
    with pytest.raises(ValueError, match="unknown ARKit channel"):
        ValueMap("browUp", (0.0, 1.0), (0.0, 1.0))


def test_generate_applies_the_model_maps(toy_talker):
    """The toy student's config carries maps (tests/conftest.py): its browInnerUp is the map of
    what the same weights give without them, and a channel without a map is unchanged."""
    audio = np.random.default_rng(3).normal(0, 0.1, 16_000 * 2).astype(np.float32)
    with_maps = toy_talker.generate(audio, steps=4, seed=5).blendshapes
    model = toy_talker.model(4)
    maps = model.config.extra.pop("value_maps")
    try:
        without = toy_talker.generate(audio, steps=4, seed=5).blendshapes
    finally:
        model.config.extra["value_maps"] = maps
    brow = INDEX["browInnerUp"]
    np.testing.assert_allclose(with_maps[..., brow], np.interp(without[..., brow], [0, 0.25, 1], [0, 0.5, 1]), atol=1e-6)
    assert not np.allclose(with_maps[..., brow], without[..., brow])
    np.testing.assert_array_equal(with_maps[..., INDEX["jawOpen"]], without[..., INDEX["jawOpen"]])


def test_fit_command_writes_the_maps_from_raw_output_and_keeps_the_manifest_valid(
        toy_checkpoints, monkeypatch):
    """``python -m experiments.evaluate value-maps``: the output it fits on is made without the
    model's old maps and gain but with the noise temperature chosen for a deterministic student, the
    new maps and that temperature land in config.json (a head gain only where the model has a head:
    :func:`test_head_gain_gives_the_truth_amplitude`), and the checksums still verify."""
    import json
    from argparse import Namespace
    from experiments.evaluate import value_maps as E
    from core.inference.talker import Talker
    from core.model.manifest import read_manifest
    from tests.helpers import ToyEncoder
    seen = []
    rng = np.random.default_rng(4)
    slow = np.sin(np.linspace(0, 6, 300))[None, :, None] * np.ones((2, 1, 3))

    def pairs(talker, steps, data, clips, k):
        extra = talker.model(steps).config.extra
        temperature = extra.get("noise_temperature")
        seen.append((extra.get("value_maps"), extra.get("head_gain"), temperature))
        blinks = round(12 * (temperature or {}).get("eyeBlinkLeft", 1.0))     # the eyelids' scale sets the blink rate
        for _ in clips:
            s, t = np.zeros((k, 300, 52), np.float32), np.zeros((k, 300, 52), np.float32)
            for i in range(k):
                for name in ("eyeBlinkLeft", "eyeBlinkRight"):
                    s[i, :, INDEX[name]] = _blink_track(rng.uniform(0.55, 0.75, blinks), rng=rng)
                    t[i, :, INDEX[name]] = _blink_track(rng.uniform(0.9, 1.0, 10), rng=rng)
            yield s, t, 0.01 * slow * rng.uniform(0.5, 1.5, (k, 1, 1))           # the model's head: small

    monkeypatch.setattr(E, "sample_pairs", pairs)
    monkeypatch.setattr(E, "fitting_clips", lambda data, count: [type("Clip", (), {"identity": "x"})()] * 3)
    monkeypatch.setattr(E, "styles", lambda data: {"x": None})
    monkeypatch.setattr(E, "truth_heads", lambda clip, data, style, k, frames: 0.03 * slow * rng.uniform(0.5, 1.5, (k, 1, 1)))
    monkeypatch.setattr(E, "Talker", type("ToyTalker", (), {"from_pretrained": staticmethod(
        lambda folder: Talker.from_pretrained(folder, encoder=ToyEncoder()))}))
    student = toy_checkpoints / "distilled-4" / "config.json"
    config = json.loads(student.read_text())
    config["extra"]["head_gain"] = [9.0, 9.0, 9.0]                  # an old gain: not used by the fit
    student.write_text(json.dumps(config))
    from core.model.manifest import build_manifest
    build_manifest(toy_checkpoints)
    E.run(Namespace(checkpoints=toy_checkpoints, data="unused", max_clips=3, samples=2, models=["distilled-4"],
                    head_gain_only=False))
    assert len(seen) == E.T.PASSES                               # the fit's passes, then nothing more
    assert all(m is None and g is None for m, g, _ in seen)      # fitted on the model's own output, as it samples
    config = json.loads(student.read_text())
    wanted = seen[-1][2]                                         # the scales the fitted samples were made with
    assert config["extra"]["noise_temperature"] == wanted
    assert wanted["jawOpen"] == E.T.FIXED["lips"] and wanted["eyeSquintLeft"] == 0.0
    assert config["extra"]["value_maps_fit"]["blink_scale"] == wanted["eyeBlinkLeft"]
    maps = from_config(config["extra"])
    assert [m.channel for m in maps] == ["eyeBlinkLeft", "eyeBlinkRight"]
    low, anchor, high = maps[0](np.array([0.3, 0.5, 0.7]))
    assert low < anchor == pytest.approx(0.5) and high > 0.85
    assert "head_gain" not in config["extra"]            # the toy model has no head channels: the old gain goes
    assert "value_maps" not in next(m for m in read_manifest(toy_checkpoints)["models"]
                                    if m["name"] == "distilled-4")["training"]
    talker = Talker.from_pretrained(toy_checkpoints, encoder=ToyEncoder())    # checksums verify
    assert len(from_config(talker.model(4).config.extra)) == 2
    assert talker.model(4).config.extra["noise_temperature"] == wanted
    seen.clear()                                 # an ancestral teacher: one pass, sampled as drawn, no temperature
    E.run(Namespace(checkpoints=toy_checkpoints, data="unused", max_clips=3, samples=2, models=["teacher-8"],
                    head_gain_only=False))
    assert len(seen) == 1
    assert "noise_temperature" not in json.loads((toy_checkpoints / "teacher-8" / "config.json").read_text())["extra"]
    seen.clear()                                 # the head gain alone: one pass with the student's own temperature,
    before = json.loads(student.read_text())     # everything else it has kept as it was
    E.run(Namespace(checkpoints=toy_checkpoints, data="unused", max_clips=3, samples=2, models=["distilled-4"],
                    head_gain_only=True))
    assert len(seen) == 1 and seen[0] == (None, None, wanted)
    assert json.loads(student.read_text()) == before


def test_head_gain_gives_the_truth_amplitude():
    from experiments.evaluate.value_maps import head_gain
    rng = np.random.default_rng(5)
    t = np.linspace(0, 6, 200)[None, :, None]
    model = [np.sin(t + rng.uniform(0, 6, (4, 1, 3))) * 0.01]
    truth = [model[0] * np.array([2.0, 3.0, 0.5])]
    assert head_gain(model, truth) == pytest.approx([2.0, 3.0, 0.5], rel=1e-3)
    assert head_gain([np.zeros((4, 200, 3))], model) is None          # a head that never moves: no gain


def test_head_gain_is_raised_where_the_amplitude_would_leave_the_spread_under_its_floor():
    """A model whose seeds agree more than the data's (its head tied to the speech): the amplitude's
    gain would leave the roll's spread far under the truth's, so the roll's gain gives the floor
    instead; the other axes keep the amplitude's."""
    from experiments.evaluate.value_maps import SPREAD_FLOOR, head_gain
    from core.evaluation import head_motion as H
    rng = np.random.default_rng(6)
    t = np.linspace(0, 6, 200)[None, :, None]
    shared = np.sin(t + rng.uniform(0, 6, (1, 1, 3)))                  # what every seed does alike
    own = np.sin(2 * t + np.pi / 2 * np.arange(4)[:, None, None])        # what each seed does its own way
    truth = [0.01 * (shared + own)]
    model = truth[0].copy()
    model[..., 2] = 0.01 * (shared[..., 2] + 0.1 * own[..., 0])          # the roll: seeds that nearly agree
    gain = head_gain([model], truth)
    amplitude = lambda h, axis: h[..., axis].std(1).mean()
    assert gain[0] == pytest.approx(1.0, abs=0.02) and gain[1] == pytest.approx(1.0, abs=0.02)
    assert gain[2] > 2 * amplitude(truth[0], 2) / amplitude(model, 2)        # far more than the amplitude asks
    scaled = model * np.array(gain)
    ratio = H.against_truth(H.pooled([H.clip_statistics(scaled)]), H.pooled([H.clip_statistics(truth[0])]))
    assert ratio["spread_ratio"]["headRoll"] == pytest.approx(SPREAD_FLOOR, rel=1e-3)
