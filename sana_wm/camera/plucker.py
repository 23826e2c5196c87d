"""Plücker ray maps and the two camera tensors the DiT consumes (``camera_conditions``, ``chunk_plucker``)."""

from __future__ import annotations

import numpy as np
import torch

from sana_wm.camera.intrinsics import latent_intrinsics
from sana_wm.camera.pose import relative_to_first
from sana_wm.camera.rays import world_rays
from sana_wm.latent_shape import LTX2_STRIDE


def compute_raymap(
    intrinsics_T4: torch.Tensor | np.ndarray,
    c2w_T44: torch.Tensor | np.ndarray,
    height: int,
    width: int,
) -> torch.Tensor:
    """Per-pixel Plücker rays ``(d, o x d)`` for each camera, in the dtype/device of ``intrinsics_T4``.

    Pixel ``(x, y)`` for integer column x in [0, width) and row y in [0, height) (no half-pixel offset) has
    camera direction ``((x - cx) / fx, (y - cy) / fy, 1)``; ``d`` is its world direction ``R @ d_cam`` scaled
    to unit length and ``o`` the camera centre ``t``.

    Args:
        intrinsics_T4: [fx, fy, cx, cy] per camera, in pixels of the ``height`` x ``width`` grid.
        c2w_T44: camera-to-world poses (OpenCV axes).

    Returns:
        rays_THW6: channels (d_x, d_y, d_z, m_x, m_y, m_z).
    """
    intrinsics_T4 = torch.as_tensor(intrinsics_T4)
    c2w_T44 = torch.as_tensor(c2w_T44, dtype=intrinsics_T4.dtype, device=intrinsics_T4.device)
    dirs_THW3 = world_rays(intrinsics_T4, c2w_T44[:, :3, :3], height, width)
    dirs_THW3 = dirs_THW3 / torch.linalg.vector_norm(dirs_THW3, dim=-1, keepdim=True)
    origins_THW3 = c2w_T44[:, None, None, :3, 3].expand_as(dirs_THW3)
    return torch.cat([dirs_THW3, torch.linalg.cross(origins_THW3, dirs_THW3, dim=-1)], dim=-1)


def prepare_camera(
    c2w: np.ndarray | torch.Tensor,
    intrinsics: np.ndarray | torch.Tensor,
    height: int = 704,
    width: int = 1280,
    vae_stride: tuple[int, int, int] = LTX2_STRIDE.thw,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Build the DiT's camera tensors from a pixel-rate trajectory (inputs as diffusers' ``prepare_camera``).

    Poses are made relative to frame 0 (``P'_0 = I``). With time stride s (8), latent frame k samples pixel
    frame ``8k``; its Plücker window is the s frames starting at ``max(0, 8k - 7)`` (the frames the causal
    VAE folds into latent k; latent 0 uses frames 0..7), padded with the last frame past the end.
    Computed in float64, returned as float32 on the CPU.

    Args:
        c2w: (F, 4, 4) camera-to-world poses, F >= 1 (any F; the CLI passes 8k + 1).
        intrinsics: (F, 4) [fx, fy, cx, cy] in pixels of the ``height`` x ``width`` (cropped) image.
        height, width: pixel canvas size; the latent grid is ``height // vae_stride[1]`` x
            ``width // vae_stride[2]``.
        vae_stride: VAE (time, height, width) compression.

    Returns:
        camera_conditions_T20: per latent frame, the 16 entries of P'_{8k} (row-major) then the latent-grid
            intrinsics [fx, fy, cx, cy] of frame 8k.
        chunk_plucker_CThw: (6 s, T_lat, h, w); channel ``6 j + c`` is Plücker component c of window
            frame j (components d_xyz, m_xyz, computed on the latent grid).
    """
    c2w_F44 = relative_to_first(torch.as_tensor(c2w).detach().cpu().double().numpy())
    intrinsics_F4 = torch.as_tensor(intrinsics).detach().cpu().double().numpy()
    num_frames = c2w_F44.shape[0]
    if intrinsics_F4.shape != (num_frames, 4):
        raise ValueError(f"intrinsics must be ({num_frames}, 4) to match c2w, got {intrinsics_F4.shape}")
    stride_t, stride_h, stride_w = vae_stride
    latent_h, latent_w = height // stride_h, width // stride_w
    intrinsics_F4 = latent_intrinsics(intrinsics_F4, height, width, (latent_h, latent_w))

    samples_T = np.arange(0, num_frames, stride_t)
    camera_conditions_T20 = np.concatenate(
        [c2w_F44[samples_T].reshape(-1, 16), intrinsics_F4[samples_T]], axis=-1
    )

    starts_T = np.maximum(samples_T - (stride_t - 1), 0)
    window_TS = np.minimum(starts_T[:, None] + np.arange(stride_t), num_frames - 1)
    num_latents = len(samples_T)
    rays = compute_raymap(
        torch.from_numpy(intrinsics_F4[window_TS.ravel()]),
        torch.from_numpy(c2w_F44[window_TS.ravel()]),
        latent_h,
        latent_w,
    )
    rays_TShw6 = rays.reshape(num_latents, stride_t, latent_h, latent_w, 6)
    chunk_plucker = rays_TShw6.permute(1, 4, 0, 2, 3).reshape(6 * stride_t, num_latents, latent_h, latent_w)
    return torch.from_numpy(camera_conditions_T20).float(), chunk_plucker.float().contiguous()
