"""Alignment and trajectory errors on synthetic poses with known answers."""

import math

import numpy as np

from sana_wm.annotate.geometry import (
    Similarity,
    align_trajectory,
    fill_gaps,
    matrix_from_quat,
    path_length,
    quat_from_matrix,
    rotation_angle_deg,
    trajectory_errors,
    umeyama,
)


def _rot(axis, deg):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = math.radians(deg)
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k


def _path(num=40, seed=0):
    rng = np.random.default_rng(seed)
    c2w = np.repeat(np.eye(4)[None], num, axis=0)
    yaw = np.cumsum(rng.uniform(-2, 2, num))
    for f in range(num):
        c2w[f, :3, :3] = _rot([0, 1, 0], yaw[f]) @ _rot([1, 0, 0], 5 * math.sin(f / 7))
        c2w[f, :3, 3] = [0.3 * math.sin(f / 9), 0.05 * math.cos(f / 5), 0.05 * f]
    return c2w


def test_umeyama_recovers_a_known_similarity() -> None:
    rng = np.random.default_rng(1)
    src = rng.standard_normal((50, 3))
    truth = Similarity(2.5, _rot([1, 2, 3], 40), np.array([1.0, -2.0, 0.5]))
    sim = umeyama(src, truth.apply_points(src))
    assert math.isclose(sim.scale, 2.5, rel_tol=1e-12)
    np.testing.assert_allclose(sim.rotation, truth.rotation, atol=1e-12)
    np.testing.assert_allclose(sim.translation, truth.translation, atol=1e-12)


def test_errors_vanish_for_a_similar_copy_even_on_a_straight_path() -> None:
    ref = _path()
    truth = Similarity(0.2, _rot([0.3, 1, -0.2], 70), np.array([3.0, 1.0, -4.0]))
    est = np.linalg.inv(truth.apply_poses(ref)[0])[None] @ truth.apply_poses(ref)  # any gauge, any scale
    errors = trajectory_errors(est, ref)
    assert errors["rot_err_deg"] < 1e-5 and errors["ate_rmse"] < 1e-9 and errors["cammc"] < 1e-8
    assert math.isclose(errors["align_scale"], 1 / 0.2, rel_tol=1e-9)
    straight = np.repeat(np.eye(4)[None], 20, axis=0)
    straight[:, 2, 3] = np.linspace(0, 2, 20)  # collinear centres: Umeyama alone leaves the roll free
    rolled = truth.apply_poses(straight)
    assert trajectory_errors(rolled, straight)["rot_err_deg"] < 1e-5


def test_rotation_error_and_ate_are_the_injected_ones() -> None:
    ref = _path()
    est = ref.copy()
    est[20, :3, :3] = est[20, :3, :3] @ _rot([0, 0, 1], 2.0)  # one frame of 40 rolled by 2 deg
    errors = trajectory_errors(est, ref)
    # The best global rotation turns by about 2/40 deg toward it: 39 frames off by ~0.05 deg, one by ~1.95.
    assert 1.9 < errors["rot_err_max_deg"] <= 2.0
    assert math.isclose(errors["rot_err_deg"], (39 * 0.05 + 1.95) / 40, rel_tol=0.05)
    est = ref.copy()
    est[::2, :3, 3] += [0.0, 0.01, 0.0]  # every other centre 1 cm off: alignment halves it, RMS 5 mm
    errors = trajectory_errors(est, ref)
    assert math.isclose(errors["ate_rmse"], 0.005, rel_tol=0.05)
    assert math.isclose(errors["ate_pct_path"], 100 * errors["ate_rmse"] / path_length(ref), rel_tol=1e-9)


def test_turning_in_place_aligns_by_orientation() -> None:
    ref = np.repeat(np.eye(4)[None], 10, axis=0)
    for f in range(10):
        ref[f, :3, :3] = _rot([0, 1, 0], 3 * f)
    aligned, sim = align_trajectory(ref, ref)
    assert sim.scale == 1.0
    errors = trajectory_errors(ref, ref)
    assert errors["rot_err_deg"] < 1e-6 and math.isnan(errors["ate_pct_path"])


def test_fill_gaps_interpolates_and_holds() -> None:
    c2w = np.repeat(np.eye(4)[None], 5, axis=0)
    c2w[4, :3, :3] = _rot([0, 1, 0], 40)
    c2w[4, :3, 3] = [4.0, 0.0, 0.0]
    valid = np.array([False, True, False, False, True])
    c2w[1, :3, 3] = [1.0, 0.0, 0.0]
    filled = fill_gaps(c2w, valid)
    np.testing.assert_allclose(filled[0], c2w[1])  # held from the first valid pose
    np.testing.assert_allclose(filled[2, :3, 3], [2.0, 0, 0])
    assert math.isclose(rotation_angle_deg(filled[2, :3, :3]), 40 / 3, rel_tol=1e-9)
    q = quat_from_matrix(_rot([1, -2, 0.5], 123))
    np.testing.assert_allclose(matrix_from_quat(q), _rot([1, -2, 0.5], 123), atol=1e-12)
