"""Clip filters: cheap image statistics before SfM, camera checks after it. Each returns reasons to drop.

Cheap filters (:func:`frame_stats`, :func:`scene_cuts`, :func:`cheap_reasons`), on frames scaled to
``THUMB_WIDTH`` pixels wide:

- scene cuts: PySceneDetect's ContentDetector score, the mean over H, S and V of the mean absolute change
  between consecutive frames (OpenCV HSV, 0-255 scale), a cut where it exceeds ``cut_threshold`` (27, the
  detector's default). The annotator splits a video at cuts, so a clip never contains one;
- motion: mean magnitude of DIS optical flow (OpenCV, ultrafast preset) between frames ``MOTION_GAP``
  (8 = 0.5 s at 16 fps) apart, in pixels of a 320-pixel-wide frame, averaged over the clip. Too little
  (below ``min_flow_px``: a still camera over a still scene) or too much (above ``max_flow_px``: the
  frames barely overlap) drops the clip; stored as the ``_flow_dis`` sidecar (our unit, not UniMatch's);
- too dark: mean luma (Rec. 601, 0-255) below ``min_luma``; stored as ``_luma``;
- static: the largest mean absolute grey change between any two frames ``MOTION_GAP`` apart below
  ``min_change`` (a frozen or slideshow-like clip);
- colour saturation: mean HSV S (0-255), stored as ``_saturation`` (no threshold by default).

Camera filters (:func:`camera_reasons`) on the annotation:

- FOV: horizontal and vertical field of view in ``[min_fov_deg, max_fov_deg]`` (25-120 deg, the paper's);
- reprojection error: SfM mean reprojection error at most ``max_reproj_px`` pixels (at SfM resolution);
- registered fraction: at least ``min_registered`` of the frames got a pose from SfM or PnP;
- smoothness: no pose jump: a camera-centre step larger than ``jump_factor`` x the median step plus 2 %
  of the path, or a rotation step above ``max_rot_step_deg`` (at 16 fps);
- scale stability: the dispersion of the per-frame metric-scale estimates (1.4826 MAD / median) at most
  ``max_scale_dispersion`` when a metric source gives several estimates, and the paper's CV (std / mean)
  at most ``max_scale_cv``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sana_wm.annotate.geometry import rotation_angle_deg

THUMB_WIDTH = 320
MOTION_GAP = 8


@dataclass(frozen=True)
class FilterSettings:
    """Thresholds; see the module docstring."""

    cut_threshold: float = 27.0
    min_flow_px: float = 0.5
    max_flow_px: float = 60.0
    min_luma: float = 20.0
    min_change: float = 0.5
    min_fov_deg: float = 25.0
    max_fov_deg: float = 120.0
    max_reproj_px: float = 1.5
    min_registered: float = 0.9
    jump_factor: float = 6.0
    max_rot_step_deg: float = 8.0
    max_scale_dispersion: float = 0.15
    max_scale_cv: float = 2.0


def thumbnail(frame_HW3: np.ndarray) -> np.ndarray:
    """RGB uint8 frame scaled to :data:`THUMB_WIDTH` pixels wide (aspect kept)."""
    import cv2

    height, width = frame_HW3.shape[:2]
    if width == THUMB_WIDTH:
        return frame_HW3
    size = (THUMB_WIDTH, max(2, round(height * THUMB_WIDTH / width)))
    return cv2.resize(frame_HW3, size, interpolation=cv2.INTER_AREA)


def content_score(prev_HW3: np.ndarray, next_HW3: np.ndarray) -> float:
    """PySceneDetect's ContentDetector score between two RGB thumbnails (mean HSV change, 0-255)."""
    import cv2

    a = cv2.cvtColor(prev_HW3, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    b = cv2.cvtColor(next_HW3, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    return float(np.abs(a - b).mean(axis=(0, 1)).mean())


def frame_stats(thumbs_FHW3: np.ndarray) -> dict[str, float]:
    """``flow_dis`` (px per 0.5 s at 320 px wide), ``luma``, ``saturation`` (0-255) and ``change`` (max
    mean absolute grey change over the motion gap) of a clip's thumbnails."""
    import cv2

    grey = np.stack([cv2.cvtColor(t, cv2.COLOR_RGB2GRAY) for t in thumbs_FHW3])
    hsv_s = np.mean([cv2.cvtColor(t, cv2.COLOR_RGB2HSV)[..., 1].mean() for t in thumbs_FHW3[::MOTION_GAP]])
    gap = min(MOTION_GAP, len(grey) - 1)
    flows, changes = [], []
    if gap >= 1:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        for start in range(0, len(grey) - gap, gap):
            flow = dis.calc(grey[start], grey[start + gap], None)
            flows.append(float(np.linalg.norm(flow, axis=-1).mean()))
            changes.append(float(np.abs(grey[start].astype(np.float32) - grey[start + gap]).mean()))
    return {
        "flow_dis": float(np.mean(flows)) if flows else 0.0,
        "luma": float(grey.mean()),
        "saturation": float(hsv_s),
        "change": float(max(changes)) if changes else 0.0,
    }


def cheap_reasons(stats: dict[str, float], settings: FilterSettings) -> list[str]:
    """Why the cheap statistics drop a clip (empty: keep)."""
    reasons = []
    if stats["luma"] < settings.min_luma:
        reasons.append(f"too dark (mean luma {stats['luma']:.1f} < {settings.min_luma:g})")
    if stats["change"] < settings.min_change:
        reasons.append(f"static (max grey change {stats['change']:.2f} < {settings.min_change:g})")
    elif stats["flow_dis"] < settings.min_flow_px:
        reasons.append(f"too little motion (flow {stats['flow_dis']:.2f} px < {settings.min_flow_px:g})")
    if stats["flow_dis"] > settings.max_flow_px:
        reasons.append(f"too much motion (flow {stats['flow_dis']:.1f} px > {settings.max_flow_px:g})")
    return reasons


def pose_jumps(c2w_F44: np.ndarray, settings: FilterSettings) -> dict[str, float]:
    """``jumps`` (count of abnormal steps), ``max_step_ratio`` (largest step / median step) and
    ``max_rot_step_deg`` of a trajectory (any units)."""
    c2w = np.asarray(c2w_F44, np.float64)
    if len(c2w) < 2:
        return {"jumps": 0, "max_step_ratio": 0.0, "max_rot_step_deg": 0.0}
    steps = np.linalg.norm(np.diff(c2w[:, :3, 3], axis=0), axis=1)
    rot = rotation_angle_deg(np.einsum("fji,fjk->fik", c2w[:-1, :3, :3], c2w[1:, :3, :3]))
    median = float(np.median(steps))
    limit = settings.jump_factor * median + 0.02 * float(steps.sum())
    jumps = int((steps > limit).sum() + (rot > settings.max_rot_step_deg).sum())
    return {
        "jumps": jumps,
        "max_step_ratio": float(steps.max() / median) if median > 0 else 0.0,
        "max_rot_step_deg": float(rot.max()),
    }


def camera_reasons(
    *,
    fov_deg: tuple[float, float],
    reproj_error_px: float,
    registered_fraction: float,
    jumps: dict[str, float],
    scale_dispersion: float | None,
    scale_cv: float | None,
    settings: FilterSettings,
) -> list[str]:
    """Why the camera checks drop a clip (empty: keep); see the module docstring."""
    reasons = []
    for axis, fov in zip(("horizontal", "vertical"), fov_deg, strict=True):
        if not settings.min_fov_deg <= fov <= settings.max_fov_deg:
            reasons.append(
                f"{axis} FOV {fov:.1f} deg outside [{settings.min_fov_deg:g}, {settings.max_fov_deg:g}]"
            )
    if reproj_error_px > settings.max_reproj_px:
        reasons.append(f"reprojection error {reproj_error_px:.2f} px > {settings.max_reproj_px:g}")
    if registered_fraction < settings.min_registered:
        reasons.append(
            f"registered {100 * registered_fraction:.0f} % of frames < {100 * settings.min_registered:g} %"
        )
    if jumps["jumps"]:
        reasons.append(
            f"pose jumps ({int(jumps['jumps'])}; largest step {jumps['max_step_ratio']:.1f}x the median, "
            f"largest turn {jumps['max_rot_step_deg']:.1f} deg per frame)"
        )
    if scale_dispersion is not None and scale_dispersion > settings.max_scale_dispersion:
        reasons.append(
            f"unstable metric scale (dispersion {scale_dispersion:.3f} > {settings.max_scale_dispersion:g})"
        )
    if scale_cv is not None and scale_cv > settings.max_scale_cv:
        reasons.append(f"unstable metric scale (CV {scale_cv:.2f} > {settings.max_scale_cv:g})")
    return reasons
