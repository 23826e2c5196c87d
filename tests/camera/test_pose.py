"""Rigid inverse, relativisation to frame 0, and --camera .npy validation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from sana_wm.camera import load_c2w, pose_inverse, relative_to_first, validate_c2w
from sana_wm.errors import InputError


def random_rotations(rng: np.random.Generator, count: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(count, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[np.linalg.det(q) < 0, :, 0] *= -1.0
    return q


def random_c2w(rng: np.random.Generator, count: int, spread: float = 5.0) -> np.ndarray:
    c2w = np.tile(np.eye(4), (count, 1, 1))
    c2w[:, :3, :3] = random_rotations(rng, count)
    c2w[:, :3, 3] = rng.uniform(-spread, spread, size=(count, 3))
    return c2w


def test_pose_inverse_is_the_matrix_inverse():
    c2w = random_c2w(np.random.default_rng(0), 7).reshape(7, 1, 4, 4)
    np.testing.assert_allclose(pose_inverse(c2w), np.linalg.inv(c2w), atol=1e-12)
    np.testing.assert_allclose(pose_inverse(c2w) @ c2w, np.broadcast_to(np.eye(4), c2w.shape), atol=1e-12)


def test_relative_to_first_golden():
    c2w = np.tile(np.eye(4), (2, 1, 1))
    c2w[0, :3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]  # yawed 90 deg right
    c2w[0, :3, 3] = [1.0, 2.0, 3.0]
    c2w[1, :3, 3] = [2.0, 2.0, 3.0]  # one metre along world +X = the first camera's forward axis
    rel = relative_to_first(c2w)
    np.testing.assert_array_equal(rel[0], np.eye(4))
    np.testing.assert_allclose(rel[1, :3, 3], [0.0, 0.0, 1.0], atol=1e-15)
    np.testing.assert_allclose(rel[1, :3, :3], np.array(c2w[0, :3, :3]).T, atol=1e-15)


def test_relative_to_first_ignores_a_global_rigid_transform():
    rng = np.random.default_rng(1)
    c2w = random_c2w(rng, 9)
    world = random_c2w(rng, 1)[0]
    rel = relative_to_first(c2w)
    np.testing.assert_array_equal(rel[0], np.eye(4))
    np.testing.assert_allclose(relative_to_first(world @ c2w), rel, atol=1e-12)
    np.testing.assert_allclose(rel[1:], np.linalg.inv(c2w[0]) @ c2w[1:], atol=1e-12)


def test_load_c2w_round_trip(tmp_path):
    c2w = random_c2w(np.random.default_rng(2), 5).astype(np.float32)
    path = tmp_path / "traj.npy"
    np.save(path, c2w)
    loaded = load_c2w(path)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, c2w)
    np.save(path, c2w.astype(np.float16))  # half precision is still rigid within 1e-3
    np.testing.assert_allclose(load_c2w(path), c2w, atol=5e-3)


def test_validate_tolerance_is_1e_minus_3():
    c2w = random_c2w(np.random.default_rng(3), 3)
    nearly = c2w.copy()
    nearly[1, :3, :3] *= 1.0 + 3e-4
    validate_c2w(nearly)
    scaled = c2w.copy()
    scaled[1, :3, :3] *= 1.0 + 1e-3
    with pytest.raises(InputError, match=r"^--camera: frame 1 rotation is not rigid"):
        validate_c2w(scaled)


def _bad_arrays() -> list[tuple[str, np.ndarray, str]]:
    good = random_c2w(np.random.default_rng(4), 3)
    cases = [("single pose", good[0], "shape (F, 4, 4)"), ("empty", good[:0], "shape (F, 4, 4)")]
    cases.append(("3x4", good[:, :3, :], "shape (F, 4, 4)"))
    nan = good.copy()
    nan[2, 0, 3] = np.nan
    cases.append(("nan", nan, "frame 2 contains NaN"))
    inf = good.copy()
    inf[1, 1, 1] = np.inf
    cases.append(("inf", inf, "frame 1 contains NaN or infinity"))
    row = good.copy()
    row[0, 3] = [0, 0, 1, 1]
    cases.append(("last row", row, "frame 0 has last row"))
    mirror = good.copy()
    mirror[2, :3, 0] *= -1
    cases.append(("mirror", mirror, "frame 2 rotation is not rigid"))
    shear = good.copy()
    shear[1, 0, 1] += 0.1
    cases.append(("shear", shear, "frame 1 rotation is not rigid"))
    return cases


@pytest.mark.parametrize(
    ("label", "array", "fragment"), _bad_arrays(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_bad_camera_arrays(tmp_path, label, array, fragment):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(InputError) as info:
        load_c2w(path)
    message = str(info.value)
    assert message.startswith("--camera: ") and "\n" not in message and fragment in message, message


def test_bad_camera_files(tmp_path):
    def message_for(path) -> str:
        with pytest.raises(InputError) as info:
            load_c2w(path)
        assert str(info.value).startswith("--camera: ") and "\n" not in str(info.value)
        return str(info.value)

    assert "file not found" in message_for(tmp_path / "missing.npy")
    np.savez(tmp_path / "traj.npz", c2w=np.eye(4)[None])
    assert "expected a .npy file" in message_for(tmp_path / "traj.npz")
    (tmp_path / "text.npy").write_text("not an array\nat all\n")
    assert "cannot read" in message_for(tmp_path / "text.npy")
    objects = np.empty(2, dtype=object)
    objects[:] = [np.eye(4), "x"]
    np.save(tmp_path / "objects.npy", objects, allow_pickle=True)
    assert "cannot read" in message_for(tmp_path / "objects.npy")
    (tmp_path / "pickle.npy").write_bytes(pickle.dumps(np.eye(4)[None]))
    assert "cannot read" in message_for(tmp_path / "pickle.npy")
    np.save(tmp_path / "complex.npy", np.eye(4)[None].astype(np.complex64))
    assert "expected real numbers" in message_for(tmp_path / "complex.npy")
    np.save(tmp_path / "strings.npy", np.array([["a"]]))
    assert "expected real numbers" in message_for(tmp_path / "strings.npy")
