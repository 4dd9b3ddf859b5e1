import numpy as np
import pytest

from core.arkit import INDEX
from core.evaluation.metrics import fdd, identity_scores, lbe, lve, mbe, seed_diversity


def curves(frames=4):
    return np.zeros((frames, 52), np.float32)


def test_mbe_lbe_against_hand_values():
    gt, pred = curves(), curves()
    pred[:, INDEX["jawOpen"]] = 0.3
    pred[:, INDEX["eyeBlinkLeft"]] = 0.4
    assert mbe(pred, gt) == pytest.approx(0.5)        # sqrt(0.3^2 + 0.4^2)
    assert lbe(pred, gt) == pytest.approx(0.3)        # only the jaw/mouth channels count


def test_fdd_against_hand_value():
    gt, pred = curves(), curves()
    gt[:, INDEX["browInnerUp"]] = [0, 1, 0, 1]          # sum of squares 0,1,0,1: std 0.5
    pred[:, INDEX["browInnerUp"]] = 0.5                 # constant: std 0
    assert fdd(pred, gt) == pytest.approx(0.5)
    pred[:, INDEX["jawOpen"]] = [0, 1, 0, 1]            # lips do not enter FDD
    assert fdd(pred, gt) == pytest.approx(0.5)


def test_lve_is_max_over_lip_vertices_mean_over_frames():
    gt = np.zeros((2, 3, 3))
    pred = gt.copy()
    pred[0, 1, 0], pred[1, 2, 1], pred[1, 0, 2] = 3.0, 1.0, 5.0
    assert lve(pred, gt, [1, 2]) == pytest.approx((3.0 + 1.0) / 2)


def test_seed_diversity_groups():
    a, b = curves(), curves()
    b[:, INDEX["browDownLeft"]] = 0.2
    div = seed_diversity(np.stack([a, b]))
    assert div["upper"] == pytest.approx(0.2) and div["lower"] == 0.0


def test_identity_scores_macro():
    s = identity_scores(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    # a: P=1, R=.5, F1=2/3; b: P=2/3, R=1, F1=.8
    assert s["precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert s["recall"] == pytest.approx(0.75)
    assert s["f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert s["accuracy"] == 0.75
