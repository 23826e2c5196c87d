"""Camera control: the action language, poses, intrinsics and the DiT's camera tensors (geometry only)."""

from sana_wm.camera.actions import MAPPINGS, ActionMapping, ActionRollout, action_to_c2w, parse_action
from sana_wm.camera.intrinsics import (
    check_fov,
    default_intrinsics,
    estimate_intrinsics,
    fit_intrinsics,
    fov_deg,
    intrinsics_from_exif,
    latent_intrinsics,
    load_intrinsics,
    transform_intrinsics_for_crop,
)
from sana_wm.camera.plucker import compute_raymap, prepare_camera
from sana_wm.camera.pose import load_c2w, pose_inverse, relative_to_first, validate_c2w
from sana_wm.camera.rays import ray_matrices, world_rays
from sana_wm.camera.trajectory import align_num_frames, latent_frames, snap_num_frames

__all__ = [
    "MAPPINGS",
    "ActionMapping",
    "ActionRollout",
    "action_to_c2w",
    "align_num_frames",
    "check_fov",
    "compute_raymap",
    "default_intrinsics",
    "estimate_intrinsics",
    "fit_intrinsics",
    "fov_deg",
    "intrinsics_from_exif",
    "latent_frames",
    "latent_intrinsics",
    "load_c2w",
    "load_intrinsics",
    "parse_action",
    "pose_inverse",
    "prepare_camera",
    "ray_matrices",
    "relative_to_first",
    "snap_num_frames",
    "transform_intrinsics_for_crop",
    "validate_c2w",
    "world_rays",
]
