"""Camera accuracy of generated clips: poses re-estimated by the annotator's SfM against the commanded path.

For one clip, :func:`camera_accuracy` runs :func:`sana_wm.annotate.sfm.reconstruct` (the same estimator,
intrinsics self-calibrated) on the generated video and on the ground-truth render of the same path, and
compares each with the commanded camera-to-world poses over the frames SfM registered, after a similarity
alignment (:func:`sana_wm.annotate.geometry.trajectory_errors`, poses relative to frame 0): the paper's
RotErr (mean geodesic angle, degrees), TransErr (mean centre distance, metres of the commanded path) and
CamMC (mean Frobenius norm of the ``[R | t]`` difference), plus ATE and the registered fraction. The
ground-truth row is the estimator's own floor: a model cannot be measured more precisely than that.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

METRICS = ("rot_err_deg", "trans_err", "cammc", "ate_pct_path", "registered_fraction")
VIDEOS = ("model", "ground_truth")


def estimate_errors(video_FHW3: np.ndarray, commanded_c2w_F44: np.ndarray) -> dict[str, Any]:
    """SfM of one video against the commanded poses: the metrics of :data:`METRICS`, or ``error``."""
    from sana_wm.annotate.geometry import trajectory_errors
    from sana_wm.annotate.sfm import SfmError, reconstruct

    try:
        sfm = reconstruct(np.asarray(video_FHW3))
    except SfmError as err:
        return {"error": str(err), "registered_fraction": 0.0}
    registered = sfm.registered_F
    if registered.sum() < 3:
        return {"error": "fewer than 3 frames registered", "registered_fraction": sfm.registered_fraction}
    errors = trajectory_errors(sfm.c2w_F44[registered], np.asarray(commanded_c2w_F44, np.float64)[registered])
    return {**errors, "registered_fraction": sfm.registered_fraction, "focal_px": sfm.focal_px}


def camera_accuracy(
    video_FHW3: np.ndarray, gt_FHW3: np.ndarray, commanded_c2w_F44: np.ndarray
) -> dict[str, dict[str, Any]]:
    """``{"model": ..., "ground_truth": ...}`` errors of :func:`estimate_errors`."""
    return {
        "model": estimate_errors(video_FHW3, commanded_c2w_F44),
        "ground_truth": estimate_errors(gt_FHW3, commanded_c2w_F44),
    }


def summarise_camera(records: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per video kind, the mean of each metric over clips SfM could reconstruct, and how many failed."""
    summary: dict[str, Any] = {}
    for video in VIDEOS:
        rows = [r[video] for r in records if video in r]
        ok = [r for r in rows if "error" not in r]
        summary[video] = {"reconstructed": len(ok), "failed": len(rows) - len(ok)}
        for name in METRICS:
            values = [r[name] for r in ok if r.get(name) is not None and math.isfinite(r[name])]
            summary[video][name] = float(np.mean(values)) if values else float("nan")
    return summary
