"""Pixel rays: the one definition of a pixel's ray, and the per-pixel world-to-ray frames UCPE uses.

Shape letters: docs/conventions.md (``X`` is any leading shape: frames, or batch × frames).

Pixel ``(u, v)`` of an integer ``height × width`` grid (column ``u``, row ``v``, no +0.5) seen by a camera
with intrinsics ``[fx, fy, cx, cy]`` (pixels of that grid) has the camera-frame direction
``((u − cx)/fx, (v − cy)/fy, 1)`` (OpenCV axes) and the world direction ``R·d`` for a camera-to-world
rotation ``R``. :func:`sana_wm.camera.plucker.compute_raymap` (Plücker maps) and :func:`ray_matrices` (UCPE)
both start from :func:`world_rays`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def world_rays(
    intrinsics_X4: torch.Tensor, rotation_X33: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Unnormalised world direction ``R·((u − cx)/fx, (v − cy)/fy, 1)`` of every pixel: ``(*X, h, w, 3)``,
    in ``intrinsics_X4``'s dtype and device (``rotation_X33`` must match them)."""
    lead = intrinsics_X4.shape[:-1]
    fx, fy, cx, cy = (intrinsics_X4[..., i, None, None] for i in range(4))
    us = torch.arange(width, dtype=intrinsics_X4.dtype, device=intrinsics_X4.device)
    vs = torch.arange(height, dtype=intrinsics_X4.dtype, device=intrinsics_X4.device)
    x_Xhw = ((us[None, :] - cx) / fx).expand(*lead, height, width)
    y_Xhw = ((vs[:, None] - cy) / fy).expand(*lead, height, width)
    dirs_cam_Xhw3 = torch.stack([x_Xhw, y_Xhw, torch.ones_like(x_Xhw)], dim=-1)
    return torch.einsum("...ij,...hwj->...hwi", rotation_X33, dirs_cam_Xhw3)


def ray_matrices(camera_BT20: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-token world-to-ray matrices ``P_BThw44`` (fp32) from camera conditions ``(B, T, 20)``.

    ``camera_BT20[..., :16]`` is the row-major relative camera-to-world pose ``(R, c)``, ``[..., 16:20]`` is
    ``[fx, fy, cx, cy]`` in latent-grid pixels. Intrinsics must be finite with non-zero focal lengths.

    A pixel's ray frame is ``z = R·d / |R·d|`` (:func:`world_rays`), ``x = normalise(R[:, 1] × z)``
    (``R[:, 1]`` is the camera's +Y, OpenCV down), ``y = normalise(z × x)``; its world-to-ray matrix is
    ``P = [[Rᵣᵀ, −Rᵣᵀ·c], [0, 0, 0, 1]]`` with ``Rᵣ = [x y z]``. Always computed in fp32 (diffusers 0.42.1
    and the official code compute it in the camera tensor's dtype, bf16 at inference, and round-trip ``fx``
    through a field of view first; both only add rounding).
    """
    cam = camera_BT20.float()
    c2w_BT44 = cam[..., :16].unflatten(-1, (4, 4))
    rot_BT33 = c2w_BT44[..., :3, :3]
    ray_world = world_rays(cam[..., 16:20], rot_BT33, height, width)
    z_axis = F.normalize(ray_world, dim=-1, eps=1e-6)
    cam_down = rot_BT33[..., :, 1][:, :, None, None, :].expand_as(z_axis)
    x_axis = F.normalize(torch.linalg.cross(cam_down, z_axis, dim=-1), dim=-1, eps=1e-6)
    y_axis = F.normalize(torch.linalg.cross(z_axis, x_axis, dim=-1), dim=-1, eps=1e-6)
    world_to_ray = torch.stack([x_axis, y_axis, z_axis], dim=-2)
    centre = c2w_BT44[..., :3, 3][:, :, None, None, :, None]
    top_BThw34 = torch.cat([world_to_ray, -(world_to_ray @ centre)], dim=-1)
    # [0, 0, 0, 1], made on the device (no host-to-device copy: CUDA-graph capturable)
    bottom = F.pad(top_BThw34.new_ones(*top_BThw34.shape[:-2], 1, 1), (3, 0))
    return torch.cat([top_BThw34, bottom], dim=-2)
