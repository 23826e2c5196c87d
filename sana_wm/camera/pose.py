"""Rigid camera poses: inverse, relativisation to the first frame, validation and ``--camera`` loading.

Poses are camera-to-world (c2w) 4x4 matrices ``[[R, t], [0, 0, 0, 1]]`` in OpenCV camera axes
(+X right, +Y down, +Z forward), translations in metres.
"""

from __future__ import annotations

import os

import numpy as np

from sana_wm.camera.npyio import load_npy
from sana_wm.errors import InputError

RIGID_TOL = 1e-3


def pose_inverse(c2w_N44: np.ndarray) -> np.ndarray:
    """Rigid inverse ``[R^T | -R^T t]`` over any leading dims (assumes R is a rotation); keeps the dtype."""
    rotation_T = np.swapaxes(c2w_N44[..., :3, :3], -1, -2)
    out = np.zeros_like(c2w_N44)
    out[..., :3, :3] = rotation_T
    out[..., :3, 3] = -(rotation_T @ c2w_N44[..., :3, 3:4])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def relative_to_first(c2w_F44: np.ndarray) -> np.ndarray:
    """Express every pose in the first camera's frame: ``P'_0 = I`` exactly, ``P'_i = inv(P_0) @ P_i``.

    Computed in float64; returns float64 of shape (F, 4, 4).
    """
    poses = np.asarray(c2w_F44, dtype=np.float64)
    relative = pose_inverse(poses[0]) @ poses
    relative[0] = np.eye(4)
    return relative


def validate_c2w(c2w: np.ndarray, name: str = "--camera") -> np.ndarray:
    """Check that ``c2w`` is a (F, 4, 4) stack of finite rigid transforms; return it as float32.

    A pose is accepted when its last row is [0, 0, 0, 1] within 1e-3 and its rotation block R satisfies
    ``max|R^T R - I| <= 1e-3`` and ``|det(R) - 1| <= 1e-3`` (tolerance ``RIGID_TOL``). 1e-3 admits poses
    written in float32 or float16 or rounded to a few decimals, and rejects any scale, shear or mirror
    large enough to bend the Plücker rays (a 0.1 % scale already fails).

    Raises:
        InputError: one line naming ``name``, the first bad frame (0-based) and what is wrong.
    """
    poses = np.asarray(c2w, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or poses.shape[0] < 1:
        raise InputError(f"{name}: expected an array of shape (F, 4, 4) with F >= 1, got {poses.shape}")
    finite = np.isfinite(poses).all(axis=(1, 2))
    if not finite.all():
        raise InputError(f"{name}: frame {int(np.argmin(finite))} contains NaN or infinity")
    row_error = np.abs(poses[:, 3] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=1)
    if (row_error > RIGID_TOL).any():
        frame = int(np.argmax(row_error > RIGID_TOL))
        last_row = poses[frame, 3].tolist()
        raise InputError(f"{name}: frame {frame} has last row {last_row}, expected [0, 0, 0, 1]")
    rotation = poses[:, :3, :3]
    ortho_error = np.abs(np.swapaxes(rotation, 1, 2) @ rotation - np.eye(3)).max(axis=(1, 2))
    det_error = np.abs(np.linalg.det(rotation) - 1.0)
    bad = (ortho_error > RIGID_TOL) | (det_error > RIGID_TOL)
    if bad.any():
        frame = int(np.argmax(bad))
        raise InputError(
            f"{name}: frame {frame} rotation is not rigid (max|R^T R - I| = {ortho_error[frame]:.3g}, "
            f"det R = {np.linalg.det(rotation[frame]):.4g}; tolerance {RIGID_TOL:g}); "
            "expected OpenCV camera-to-world [R | t] with R a rotation"
        )
    poses32 = poses.astype(np.float32)
    finite32 = np.isfinite(poses32).all(axis=(1, 2))
    if not finite32.all():
        frame = int(np.argmin(finite32))
        raise InputError(f"{name}: frame {frame} does not fit in float32 (a value beyond +-3.4e38)")
    return poses32


def load_c2w(path: str | os.PathLike[str], name: str = "--camera") -> np.ndarray:
    """Load a ``--camera`` trajectory: a ``.npy`` of shape (F, 4, 4), OpenCV c2w, metres.

    Returns the validated poses as float32 (F, 4, 4), unchanged otherwise (relativisation to the first
    frame happens later, in :func:`sana_wm.camera.plucker.prepare_camera`).
    """
    return validate_c2w(load_npy(path, name), name)
