"""Pose geometry for annotation and its validation: similarity alignment, trajectory errors, interpolation.

Poses are camera-to-world 4 x 4 matrices with OpenCV axes (``c2w_F44``, float64 here); camera centres are
``c2w[:, :3, 3]``. A similarity ``(s, R, t)`` maps a point ``x`` to ``s R x + t`` and a pose by
``R' = R R_c``, ``c' = s R c + t``.

Metrics (all after a similarity maps the estimate onto the reference):

- alignment: :func:`align_trajectory` (rotation from the orientations, scale and translation from
  the centres);
- rotation error: geodesic angle between ``R_ref`` and the aligned estimate, in degrees (the paper's
  RotErr is its mean);
- ATE: RMS distance between reference and aligned estimated centres (``ate_rmse``), also as a fraction of
  the reference path length (sum of centre-to-centre steps);
- TransErr: mean of the same distances; CamMC: mean Frobenius norm of the difference of the 3 x 4 ``[R|t]``
  matrices (the paper's App. D.3 definitions, poses relative to frame 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Similarity:
    """``x -> scale * rotation @ x + translation``."""

    scale: float
    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,)

    def apply_points(self, points_N3: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(points_N3) @ self.rotation.T + self.translation

    def apply_poses(self, c2w_F44: np.ndarray) -> np.ndarray:
        out = np.array(c2w_F44, dtype=np.float64)
        out[:, :3, :3] = self.rotation @ out[:, :3, :3]
        out[:, :3, 3] = self.apply_points(out[:, :3, 3])
        return out


def umeyama(src_N3: np.ndarray, dst_N3: np.ndarray, *, with_scale: bool = True) -> Similarity:
    """Least-squares similarity (Umeyama 1991) mapping ``src`` points onto ``dst`` points.

    Degenerate inputs (fewer than 2 points, or all source points equal) give the identity rotation, unit
    scale and the translation between centroids.
    """
    src, dst = np.asarray(src_N3, np.float64), np.asarray(dst_N3, np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = float((xs**2).sum() / len(src))
    if len(src) < 2 or var_s < 1e-18:
        return Similarity(1.0, np.eye(3), mu_d - mu_s)
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1.0
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign) / var_s) if with_scale else 1.0
    return Similarity(scale, rotation, mu_d - scale * rotation @ mu_s)


def rotation_align(est_F33: np.ndarray, ref_F33: np.ndarray) -> np.ndarray:
    """The rotation ``Q`` minimising ``sum ||Q R_est - R_ref||`` (chordal mean of ``R_ref R_est^T``)."""
    m = np.einsum("fij,fkj->ik", np.asarray(ref_F33, np.float64), np.asarray(est_F33, np.float64))
    u, _, vt = np.linalg.svd(m)
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    return u @ sign @ vt


def align_trajectory(est_F44: np.ndarray, ref_F44: np.ndarray) -> tuple[np.ndarray, Similarity]:
    """Estimated poses mapped onto the reference frame by a similarity.

    The rotation is the chordal mean of the orientation differences (:func:`rotation_align`), then scale
    and translation are the least-squares fit of the centres given that rotation. Unlike Umeyama on the
    centres alone, this stays well defined on straight paths (collinear centres leave the rotation about
    the line free) and on a camera turning in place (no centre spread at all: scale 1).
    """
    est, ref = np.asarray(est_F44, np.float64), np.asarray(ref_F44, np.float64)
    rotation = rotation_align(est[:, :3, :3], ref[:, :3, :3])
    x = est[:, :3, 3] @ rotation.T
    xc, yc = x - x.mean(axis=0), ref[:, :3, 3] - ref[:, :3, 3].mean(axis=0)
    denominator = float((xc**2).sum())
    scale = float((xc * yc).sum() / denominator) if denominator > 1e-18 else 1.0
    scale = scale if scale > 0 else 1.0
    sim = Similarity(scale, rotation, ref[:, :3, 3].mean(axis=0) - scale * x.mean(axis=0))
    return sim.apply_poses(est), sim


def rotation_angle_deg(r_N33: np.ndarray) -> np.ndarray:
    """Rotation angle in degrees of each 3 x 3 rotation."""
    cos = (np.trace(np.asarray(r_N33), axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def path_length(c2w_F44: np.ndarray) -> float:
    """Sum of the distances between consecutive camera centres."""
    centres = np.asarray(c2w_F44)[:, :3, 3]
    return float(np.linalg.norm(np.diff(centres, axis=0), axis=1).sum())


def relative_to_first(c2w_F44: np.ndarray) -> np.ndarray:
    """Poses relative to frame 0 (``P_0^-1 P_t``), float64."""
    c2w = np.asarray(c2w_F44, np.float64)
    return np.linalg.inv(c2w[0])[None] @ c2w


def trajectory_errors(est_F44: np.ndarray, ref_F44: np.ndarray) -> dict[str, float]:
    """Errors of an estimated trajectory against a reference after similarity alignment.

    Returns ``rot_err_deg`` (mean), ``rot_err_max_deg``, ``ate_rmse`` (reference units), ``ate_pct_path``
    (ATE as % of the reference path length; nan for a path under 1e-6), ``trans_err`` (mean centre
    distance), ``cammc`` (mean Frobenius norm of ``[R|t]`` differences, poses relative to frame 0 before
    alignment) and ``align_scale`` (the similarity's scale: reference units per estimated unit).
    """
    est, ref = relative_to_first(est_F44), relative_to_first(ref_F44)
    aligned, sim = align_trajectory(est, ref)
    rot = rotation_angle_deg(np.einsum("fji,fjk->fik", ref[:, :3, :3], aligned[:, :3, :3]))
    dist = np.linalg.norm(aligned[:, :3, 3] - ref[:, :3, 3], axis=1)
    length = path_length(ref)
    ate = float(np.sqrt((dist**2).mean()))
    cammc = np.linalg.norm((aligned - ref)[:, :3, :4], axis=(1, 2))
    return {
        "rot_err_deg": float(rot.mean()),
        "rot_err_max_deg": float(rot.max()),
        "ate_rmse": ate,
        "ate_pct_path": 100.0 * ate / length if length > 1e-6 else float("nan"),
        "trans_err": float(dist.mean()),
        "cammc": float(cammc.mean()),
        "align_scale": float(sim.scale),
        "path_length": length,
    }


def quat_from_matrix(r_33: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(w, x, y, z)`` of a rotation matrix (w >= 0)."""
    m = np.asarray(r_33, np.float64)
    w = math.sqrt(max(0.0, 1.0 + m[0, 0] + m[1, 1] + m[2, 2])) / 2.0
    x = math.sqrt(max(0.0, 1.0 + m[0, 0] - m[1, 1] - m[2, 2])) / 2.0
    y = math.sqrt(max(0.0, 1.0 - m[0, 0] + m[1, 1] - m[2, 2])) / 2.0
    z = math.sqrt(max(0.0, 1.0 - m[0, 0] - m[1, 1] + m[2, 2])) / 2.0
    x = math.copysign(x, m[2, 1] - m[1, 2])
    y = math.copysign(y, m[0, 2] - m[2, 0])
    z = math.copysign(z, m[1, 0] - m[0, 1])
    q = np.array([w, x, y, z])
    return q / np.linalg.norm(q)


def matrix_from_quat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def slerp(q0: np.ndarray, q1: np.ndarray, u: float) -> np.ndarray:
    if float(np.dot(q0, q1)) < 0.0:
        q1 = -q1
    dot = min(1.0, float(np.dot(q0, q1)))
    if dot > 0.9995:
        q = q0 + u * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(dot)
    return (math.sin((1 - u) * theta) * q0 + math.sin(u * theta) * q1) / math.sin(theta)


def fill_gaps(c2w_F44: np.ndarray, valid_F: np.ndarray) -> np.ndarray:
    """Poses for every frame: valid ones kept, the rest interpolated between the nearest valid neighbours
    (SLERP rotation, linear centre) or held from the nearest one at either end. Needs a valid frame."""
    c2w = np.array(c2w_F44, dtype=np.float64)
    valid = np.flatnonzero(np.asarray(valid_F, bool))
    if len(valid) == 0:
        raise ValueError("fill_gaps: no valid pose")
    for f in range(len(c2w)):
        if valid_F[f]:
            continue
        after = valid[valid > f]
        before = valid[valid < f]
        if len(before) == 0 or len(after) == 0:
            c2w[f] = c2w[after[0] if len(before) == 0 else before[-1]]
            continue
        a, b = int(before[-1]), int(after[0])
        u = (f - a) / (b - a)
        q = slerp(quat_from_matrix(c2w[a, :3, :3]), quat_from_matrix(c2w[b, :3, :3]), u)
        c2w[f] = np.eye(4)
        c2w[f, :3, :3] = matrix_from_quat(q)
        c2w[f, :3, 3] = (1 - u) * c2w[a, :3, 3] + u * c2w[b, :3, 3]
    return c2w
