"""Head pose math shared by every output: the angle convention, rotations, quaternions, the
per-vertex turn and the Live Link Face unit (core/head_pose.py)."""
import math

import numpy as np
import pytest

from core.head_pose import (angles_from_quaternions, check_head, from_livelink, quaternions, rotate_points,
                            rotation_matrices, still, to_livelink)


def random_angles(n=200, seed=0):
    angles = np.random.default_rng(seed).uniform(-1.0, 1.0, (n, 3))
    angles[:, 1] *= 1.4                                     # pitch stays inside +-pi/2 (Euler "YXZ" reads back)
    return angles


def _matrix(q):
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def test_the_axes_and_signs_of_the_docstring():
    nose, top = np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0])
    assert (rotation_matrices([0.3, 0, 0]) @ nose)[0] > 0.29       # yaw +: the nose to the viewer's right (+x)
    assert (rotation_matrices([0, 0.3, 0]) @ nose)[1] < -0.29      # pitch +: the nose down
    assert (rotation_matrices([0, 0, 0.3]) @ top)[0] < -0.29       # roll +: the top to the viewer's left
    # applied yaw, then pitch, then roll about the turned axes: R = Ry Rx Rz (three.js Euler "YXZ")
    yaw, pitch, roll = 0.4, -0.3, 0.2
    np.testing.assert_allclose(rotation_matrices([yaw, pitch, roll]),
                               rotation_matrices([yaw, 0, 0]) @ rotation_matrices([0, pitch, 0])
                               @ rotation_matrices([0, 0, roll]), atol=1e-12)


def test_quaternions_are_the_same_rotation_and_read_back():
    angles = random_angles()
    q = quaternions(angles)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.stack([_matrix(r) for r in q]), rotation_matrices(angles), atol=1e-12)
    np.testing.assert_allclose(angles_from_quaternions(q), angles, atol=1e-6)
    np.testing.assert_allclose(angles_from_quaternions(-q), angles, atol=1e-6)      # q and -q: one rotation
    np.testing.assert_allclose(quaternions(np.zeros(3)), [0, 0, 0, 1])


def test_points_turn_about_the_pivot_by_their_share():
    rng = np.random.default_rng(1)
    points, pivot = rng.normal(size=(1, 5, 3)).astype(np.float32), np.array([0.1, -0.5, -0.3])
    angles = np.array([[0.3, -0.2, 0.1]])
    turned = rotate_points(points, angles, pivot)
    np.testing.assert_allclose(turned[0], (points[0] - pivot) @ rotation_matrices(angles[0]).T + pivot, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(turned - pivot, axis=-1), np.linalg.norm(points - pivot, axis=-1),
                               atol=1e-5)                                          # a rotation keeps distances
    shares = np.array([0.0, 0.5, 1.0, 1.0, 0.0], np.float32)
    blended = rotate_points(points, angles, pivot, shares)
    np.testing.assert_allclose(blended[0, [0, 4]], points[0, [0, 4]])              # the body stays
    np.testing.assert_allclose(blended[0, 2:4], turned[0, 2:4], atol=1e-6)
    np.testing.assert_allclose(blended[0, 1], (points[0, 1] + turned[0, 1]) / 2, atol=1e-6)


def test_live_link_face_unit_is_degrees_over_180():
    np.testing.assert_allclose(to_livelink([math.pi / 2, -math.pi / 4, math.radians(18)]), [0.5, -0.25, 0.1],
                               atol=1e-7)
    angles = random_angles(10).astype(np.float32)
    np.testing.assert_allclose(from_livelink(to_livelink(angles)), angles, atol=1e-6)


@pytest.mark.parametrize("head, frames, message", [
    (np.full((4, 3), np.nan), 4, "NaN"),
    (np.array([[0.0, np.inf, 0.0]]), 1, "NaN or infinite"),
    (np.zeros((4, 2)), 4, r"\[frames, 3\]"),
    (np.zeros(3), 1, r"\[frames, 3\]"),
    (np.zeros((3, 3)), 4, "3 frames of head angles for 4"),
    (np.full((2, 3), 30.0), 2, "radians, not degrees"),
    (np.array([["x", "y", "z"]]), 1, "expected numbers"),
    (None, None, "frame count"),
])
def test_bad_head_angles_get_plain_messages(head, frames, message):
    with pytest.raises(ValueError, match=message):
        check_head(head, frames)


def test_none_is_a_still_head():
    np.testing.assert_array_equal(check_head(None, 5), still(5))
    assert check_head(np.zeros((5, 3), np.float64), 5).dtype == np.float32
