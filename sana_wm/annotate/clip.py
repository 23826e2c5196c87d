"""One clip through the annotation stages: cheap filters, SfM, metric scale, camera filters, its files.

The record (``annotate_work/<key>/record.json``) is the clip's whole story: ``kept`` and the ``reasons``
it was dropped for, the cheap statistics, the SfM numbers, the metric scale and, when the input carried
ground truth, ``gt_check``: rotation error, ATE, focal and scale error against it (for validation only;
no decision reads it).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sana_wm.annotate.filters import camera_reasons, cheap_reasons, frame_stats, pose_jumps
from sana_wm.annotate.geometry import fill_gaps, relative_to_first, trajectory_errors
from sana_wm.annotate.scale import ScaleEstimate, metric_scale
from sana_wm.annotate.sfm import SfmError, reconstruct
from sana_wm.camera.intrinsics import fov_deg, transform_intrinsics_for_crop
from sana_wm.data.layout import write_json
from sana_wm.utils.image import crop_info

if TYPE_CHECKING:
    from sana_wm.annotate.decode import Source
    from sana_wm.annotate.settings import AnnotateSettings, Window


def process_clip(
    window: Window,
    source: Source,
    settings: AnnotateSettings,
    work: Path,
    depth_model: object | None,
    captioner: object | None,
) -> dict[str, Any]:
    """Run the stages on a closed window and write its record (last, marking the clip done)."""
    frames = np.stack(window.small) if window.small else np.zeros((0, 8, 8, 3), np.uint8)
    record: dict[str, Any] = {
        "key": window.key,
        "source": str(source.path) + (f":{source.member}" if source.member else ""),
        "source_frames": [window.source_index[0], window.source_index[-1]] if window.source_index else [],
        "num_frames": int(len(frames)),
        "fps": settings.fps,
        "width": settings.width,
        "height": settings.height,
        "ends_at_scene_cut": window.ends_at_cut,
        "prompt": source.prompt or "",
        "kept": False,
        "reasons": [],
        "stats": {},
        "timings_s": {},
    }
    if len(frames) < settings.min_frames:
        record["reasons"].append(f"too short ({len(frames)} frames < {settings.min_frames})")
        return _finish(record, work)
    start = time.perf_counter()
    record["stats"] = frame_stats(np.stack(window.thumbs[: len(frames)]))
    record["timings_s"]["filters"] = time.perf_counter() - start
    record["reasons"] = cheap_reasons(record["stats"], settings.filters)
    if record["reasons"]:
        return _finish(record, work)
    sfm_settings = settings.sfm
    if sfm_settings.focal_px is not None:  # given in pixels of the clip; SfM sees the analysis frames
        sfm_settings = dataclasses.replace(
            sfm_settings, focal_px=sfm_settings.focal_px * frames.shape[2] / settings.width
        )
    try:
        sfm = reconstruct(frames, sfm_settings)
    except SfmError as err:
        record["reasons"].append(f"SfM failed ({err})")
        return _finish(record, work)
    record["timings_s"].update({f"sfm_{k}": v for k, v in sfm.timings_s.items()})
    filled = fill_gaps(sfm.c2w_F44, sfm.registered_F)
    c2w = relative_to_first(filled)
    intrinsics = sfm.intrinsics(settings.height, settings.width)
    fov = (float(fov_deg(intrinsics[0], settings.width)), float(fov_deg(intrinsics[1], settings.height)))
    gt_c2w, gt_intrinsics = _ground_truth(source, window, settings)
    start = time.perf_counter()
    scale, tried = metric_scale(
        c2w_F44=c2w,
        valid_F=sfm.registered_F,
        points_P3=(sfm.points_P3 - filled[0, :3, 3]) @ filled[0, :3, :3],  # into the frame-0 camera frame
        observations=sfm.observations,
        frames_FHW3=frames,
        sfm_hw=(sfm.height, sfm.width),
        gt_c2w_F44=gt_c2w,
        depth_model=depth_model,
        camera_height_m=settings.camera_height_m,
    )
    record["timings_s"]["scale"] = time.perf_counter() - start
    jumps = pose_jumps(c2w[sfm.registered_F], settings.filters)
    record["camera_qc"] = {
        "score": sfm.registered_fraction,
        "hfov_deg": fov[0],
        "vfov_deg": fov[1],
        "focal_px": float(intrinsics[0]),
        "k1": sfm.k1,
        "reproj_error_px": sfm.reproj_error_px,
        "registered_fraction": sfm.registered_fraction,
        "pnp_registered": sfm.pnp_registered,
        "num_points": sfm.num_points,
        "focal_self_calibrated_px": None
        if sfm.focal_self_calibrated is None
        else sfm.focal_self_calibrated * settings.width / sfm.width,
        "mapping_attempts": sfm.attempts,
        **jumps,
        "scale_dispersion": scale.dispersion,
        "scale_cv": scale.cv,
    }
    record["metric_scale"] = scale.record()
    record["metric_scale_tried"] = tried
    record["reasons"] = camera_reasons(
        fov_deg=fov,
        reproj_error_px=sfm.reproj_error_px,
        registered_fraction=sfm.registered_fraction,
        jumps=jumps,
        scale_dispersion=scale.dispersion if scale.source != "gt" else None,
        scale_cv=scale.cv if scale.source != "gt" else None,
        settings=settings.filters,
    )
    if gt_c2w is not None:
        record["gt_check"] = gt_check(c2w, sfm.registered_F, intrinsics, scale, gt_c2w, gt_intrinsics, tried)
    if captioner is not None and not record["prompt"]:
        record["prompt"] = str(captioner.caption(frames[:: max(1, len(frames) // 8)][:8]))
        record["caption_model"] = captioner.name
    np.savez(
        work / window.key / "camera.npz",
        c2w=c2w.astype(np.float32),
        intrinsics=np.tile(intrinsics, (len(c2w), 1)).astype(np.float32),
    )
    record["kept"] = not record["reasons"]
    return _finish(record, work)


def _finish(record: dict[str, Any], work: Path) -> dict[str, Any]:
    record = json.loads(json.dumps(record, default=_jsonable))
    if not record["kept"]:
        for name in ("clip.mp4", "camera.npz"):
            (work / record["key"] / name).unlink(missing_ok=True)
    write_json(work / record["key"] / "record.json", record)
    return record


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def _ground_truth(
    source: Source, window: Window, settings: AnnotateSettings
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The clip's ground-truth c2w (relative to its first frame) and intrinsics at the clip's size."""
    if source.gt_c2w_F44 is None or source.gt_size is None:
        return None, None
    index = np.asarray(window.source_index, dtype=np.int64)
    if len(index) == 0 or index.max() >= len(source.gt_c2w_F44):
        return None, None
    crop = crop_info(source.gt_size, settings.height, settings.width)
    intrinsics = transform_intrinsics_for_crop(source.gt_intrinsics_F4[index], crop)
    return relative_to_first(source.gt_c2w_F44[index]), intrinsics


def gt_check(
    c2w_F44: np.ndarray,
    valid_F: np.ndarray,
    intrinsics_4: np.ndarray,
    scale: ScaleEstimate,
    gt_c2w_F44: np.ndarray,
    gt_intrinsics_F4: np.ndarray,
    tried: dict[str, Any],
) -> dict[str, Any]:
    """Errors against ground truth: trajectory errors over registered frames and over all frames, focal
    error, and each metric-scale source's error against the true factor (the similarity's scale)."""
    valid = np.asarray(valid_F, bool)
    registered = trajectory_errors(c2w_F44[valid], gt_c2w_F44[valid])
    every = trajectory_errors(c2w_F44, gt_c2w_F44)
    true_scale = registered["align_scale"]
    gt_focal = float(np.mean(gt_intrinsics_F4[:, 0]))
    return {
        "registered": registered,
        "all_frames": every,
        "focal_err_pct": 100.0 * (float(intrinsics_4[0]) / gt_focal - 1.0),
        "gt_hfov_deg": float(fov_deg(gt_focal, 2 * float(np.mean(gt_intrinsics_F4[:, 2])))),
        "true_scale": true_scale,
        "scale_err_pct": {
            name: None if value is None else 100.0 * (float(value) / true_scale - 1.0)
            for name, value in tried.items()
        },
        "chosen_scale_source": scale.source,
    }
