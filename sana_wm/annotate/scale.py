"""The metric-scale chain: one factor per clip that turns reconstruction units into metres.

Sources, first applicable wins (:func:`metric_scale`), recorded with the clip:

1. ``gt``: the input carries metric ground-truth poses: the similarity that maps the SfM trajectory onto
   them (:func:`sana_wm.annotate.geometry.align_trajectory`) gives the factor;
2. ``depth:<name>``: a :class:`~sana_wm.annotate.plugins.MetricDepth` plug-in: per keyframe, the median
   over its triangulated points of ``depth_metric(u, v) / z_sfm``; the clip factor is the median over
   keyframes;
3. ``prior:camera_height``: the ground is the dominant plane of the SfM points whose normal is within
   ``GROUND_MAX_TILT_DEG`` of the cameras' mean "down" axis and which lies below every camera; the factor
   is the given camera height (metres) over the median camera-to-ground distance. It applies to footage
   shot at a known height above flat ground (walking, driving, game cameras);
4. ``none``: factor 1 (poses in SfM units; keep such clips out of metric-sensitive training).

Each source gives several estimates (per keyframe or per frame); the record keeps their ``dispersion``
(1.4826 MAD / median) and ``cv`` (std / mean, the paper's scale filter) for the stability filter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sana_wm.annotate.geometry import align_trajectory, relative_to_first

GROUND_MAX_TILT_DEG = 25.0
RANSAC_ITERATIONS = 400
MIN_GROUND_POINTS = 30
MIN_GROUND_SHARE = 0.1
MAX_DEPTH_SAMPLES = 64


@dataclass(frozen=True)
class ScaleEstimate:
    """Metres per reconstruction unit and where it came from. ``median`` multiplies translations."""

    median: float
    source: str
    estimates: tuple[float, ...] = field(default=())

    @property
    def dispersion(self) -> float | None:
        values = np.asarray(self.estimates, np.float64)
        if len(values) < 3:
            return None
        median = float(np.median(values))
        return float(1.4826 * np.median(np.abs(values - median)) / median) if median > 0 else None

    @property
    def cv(self) -> float | None:
        values = np.asarray(self.estimates, np.float64)
        if len(values) < 3:
            return None
        return float(values.std() / (abs(values.mean()) + 1e-12))

    def record(self) -> dict[str, object]:
        """The clip's ``_metric_scale_stats.json`` entry (no field the official reader prefers over
        ``median``)."""
        return {
            "median": self.median,
            "source": self.source,
            "dispersion": self.dispersion,
            "cv": self.cv,
            "num_estimates": len(self.estimates),
        }


def from_ground_truth(
    c2w_F44: np.ndarray, gt_c2w_F44: np.ndarray, valid_F: np.ndarray
) -> ScaleEstimate | None:
    """``gt``: the similarity scale from SfM poses to metric ground truth over the valid frames; per-frame
    estimates are the ratios of distances from the first valid frame (frames at least 10 % of the
    largest such distance away)."""
    valid = np.flatnonzero(valid_F)
    if len(valid) < 3:
        return None
    est, gt = relative_to_first(c2w_F44[valid]), relative_to_first(gt_c2w_F44[valid])
    gt_spread = np.linalg.norm(gt[:, :3, 3], axis=1)
    if gt_spread.max() < 1e-6:
        return None
    _, sim = align_trajectory(est, gt)
    est_spread = np.linalg.norm(est[:, :3, 3], axis=1)
    far = gt_spread > 0.1 * gt_spread.max()
    ratios = gt_spread[far] / np.maximum(est_spread[far], 1e-12)
    return ScaleEstimate(float(sim.scale), "gt", tuple(float(r) for r in ratios))


def from_depth(
    observations: list[tuple[int, np.ndarray, np.ndarray]],
    frames_FHW3: np.ndarray,
    depth_model: object,
    sfm_hw: tuple[int, int],
) -> ScaleEstimate | None:
    """``depth:<name>``: per keyframe median of metric depth over SfM depth at the observed points.
    ``observations`` are (frame, (N, 2) pixel coords at ``sfm_hw``, (N,) SfM depth)."""
    picks = observations
    if len(picks) > MAX_DEPTH_SAMPLES:
        picks = [picks[int(i)] for i in np.linspace(0, len(picks) - 1, MAX_DEPTH_SAMPLES).round()]
    ratios = []
    for frame, uv, z in picks:
        depth = np.asarray(depth_model.depth(frames_FHW3[frame]), np.float64)
        sy, sx = depth.shape[0] / sfm_hw[0], depth.shape[1] / sfm_hw[1]
        cols = np.clip(np.round(uv[:, 0] * sx).astype(int), 0, depth.shape[1] - 1)
        rows = np.clip(np.round(uv[:, 1] * sy).astype(int), 0, depth.shape[0] - 1)
        metric = depth[rows, cols]
        ok = np.isfinite(metric) & (metric > 0) & (z > 0)
        if ok.sum() >= 10:
            ratios.append(float(np.median(metric[ok] / z[ok])))
    if not ratios:
        return None
    return ScaleEstimate(float(np.median(ratios)), f"depth:{depth_model.name}", tuple(ratios))


def fit_ground_plane(
    points_P3: np.ndarray, c2w_F44: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, float] | None:
    """``(unit normal pointing down, offset)`` of the ground plane ``n . x = d`` among the SfM points, or
    None (see the module docstring)."""
    points = np.asarray(points_P3, np.float64)
    centres = c2w_F44[:, :3, 3]
    down = c2w_F44[:, :3, 1].mean(axis=0)
    if len(points) < MIN_GROUND_POINTS or np.linalg.norm(down) < 1e-6:
        return None
    down /= np.linalg.norm(down)
    # Points below the cameras along the mean down axis are the candidates.
    below = points[(points - centres.mean(axis=0)) @ down > 0]
    if len(below) < MIN_GROUND_POINTS:
        return None
    extent = float(np.median(np.linalg.norm(below - centres.mean(axis=0), axis=1)))
    tolerance = 0.01 * extent
    cos_tilt = math.cos(math.radians(GROUND_MAX_TILT_DEG))
    best, best_count = None, 0
    for _ in range(RANSAC_ITERATIONS):
        sample = below[rng.choice(len(below), 3, replace=False)]
        normal = np.cross(sample[1] - sample[0], sample[2] - sample[0])
        norm = np.linalg.norm(normal)
        if norm < 1e-12:
            continue
        normal /= norm
        if normal @ down < 0:
            normal = -normal
        if normal @ down < cos_tilt:
            continue
        count = int((np.abs(below @ normal - sample[0] @ normal) < tolerance).sum())
        if count > best_count:
            best, best_count = (normal, float(sample[0] @ normal)), count
    if best is None or best_count < max(MIN_GROUND_POINTS, MIN_GROUND_SHARE * len(below)):
        return None
    inliers = below[np.abs(below @ best[0] - best[1]) < tolerance]
    mean = inliers.mean(axis=0)
    normal = np.linalg.svd(inliers - mean)[2][-1]
    normal = normal if normal @ down > 0 else -normal
    offset = float(mean @ normal)
    if np.any(centres @ normal >= offset):  # a camera at or under the "ground": not a ground plane
        return None
    return normal, offset


def from_camera_height(
    points_P3: np.ndarray, c2w_F44: np.ndarray, valid_F: np.ndarray, height_m: float, seed: int = 0
) -> ScaleEstimate | None:
    """``prior:camera_height``: ``height_m`` over the median camera-to-ground distance (per-frame
    estimates: ``height_m`` over each frame's distance)."""
    c2w = np.asarray(c2w_F44, np.float64)[np.asarray(valid_F, bool)]
    plane = fit_ground_plane(points_P3, c2w, np.random.default_rng(seed))
    if plane is None:
        return None
    normal, offset = plane
    heights = offset - c2w[:, :3, 3] @ normal
    if np.any(heights <= 0):
        return None
    return ScaleEstimate(
        float(height_m / np.median(heights)), "prior:camera_height", tuple(height_m / heights)
    )


def metric_scale(
    *,
    c2w_F44: np.ndarray,
    valid_F: np.ndarray,
    points_P3: np.ndarray,
    observations: list,
    frames_FHW3: np.ndarray | None,
    sfm_hw: tuple[int, int],
    gt_c2w_F44: np.ndarray | None = None,
    depth_model: object | None = None,
    camera_height_m: float | None = None,
) -> tuple[ScaleEstimate, dict[str, object]]:
    """The first applicable source of the chain, and every source's estimate (for the record)."""
    tried: dict[str, object] = {}
    chosen = None
    if gt_c2w_F44 is not None:
        estimate = from_ground_truth(c2w_F44, gt_c2w_F44, valid_F)
        tried["gt"] = None if estimate is None else estimate.median
        chosen = chosen or estimate
    if depth_model is not None and frames_FHW3 is not None:
        estimate = from_depth(observations, frames_FHW3, depth_model, sfm_hw)
        tried[f"depth:{depth_model.name}"] = None if estimate is None else estimate.median
        chosen = chosen or estimate
    if camera_height_m is not None:
        estimate = from_camera_height(points_P3, c2w_F44, valid_F, camera_height_m)
        tried["prior:camera_height"] = None if estimate is None else estimate.median
        chosen = chosen or estimate
    return chosen or ScaleEstimate(1.0, "none"), tried
