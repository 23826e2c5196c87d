"""A training clip's camera tensors, built exactly as the official training dataset builds them.

Recipe (official ``SanaWMZipLatentDataset`` with ``cam_sample_strategy: last``):

1. translations times the clip's metric scale factor;
2. relative to the first pose (``P'_0 = I``);
3. intrinsics from the clip's pixels to the latent grid: fx, cx times ``w / width``; fy, cy times
   ``h / height``, with (h, w) the latent grid and (height, width) the clip's JSON fields (the pixels the
   intrinsics refer to, which need not be ``32 h x 32 w``: the clip may have been resized for the VAE);
4. latent frame k samples pixel frame ``8k`` and its Plücker window is frames ``max(0, 8k - 7)`` onward
   (:func:`sana_wm.camera.prepare_camera`); when the clip has more latent frames than poses cover, the last
   sampled frame is repeated; extra poses beyond the latents are unused.

Steps 2 and 4 are :func:`sana_wm.camera.prepare_camera`, called on a ``32 h x 32 w`` canvas with the
intrinsics rescaled to it, which composes to exactly the scaling of step 3.
"""

from __future__ import annotations

import numpy as np
import torch

from sana_wm.camera import prepare_camera
from sana_wm.latent_shape import LTX2_STRIDE

VAE_STRIDE_THW = LTX2_STRIDE.thw


def clip_camera_tensors(
    c2w_F44: np.ndarray | None,
    intrinsics_F4: np.ndarray | None,
    *,
    width: float,
    height: float,
    latent_thw: tuple[int, int, int],
    metric_scale: float = 1.0,
    vae_stride: tuple[int, int, int] = VAE_STRIDE_THW,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``camera_conditions`` (T, 20) and ``chunk_plucker`` (6 s_t, T, h, w) float32 for one clip.

    Args:
        c2w_F44: camera-to-world poses (OpenCV axes, translations in the clip's units), or None for a
            clip without cameras: identity poses and latent intrinsics ``[w, h, w / 2, h / 2]``, as the
            official reader falls back to.
        intrinsics_F4: ``[fx, fy, cx, cy]`` per pose in pixels of ``width`` x ``height``.
        width, height: the clip's pixel size from its JSON (the official reader divides by at least 1).
        latent_thw: the latent grid ``(T, h, w)`` the tensors must match.
        metric_scale: factor applied to every translation before relativisation.
        vae_stride: VAE (time, height, width) compression.
    """
    latent_t, latent_h, latent_w = latent_thw
    stride_t, stride_h, stride_w = vae_stride
    canvas_h, canvas_w = latent_h * stride_h, latent_w * stride_w
    if c2w_F44 is None:
        c2w = np.repeat(np.eye(4)[None], (latent_t - 1) * stride_t + 1, axis=0)
        intrinsics = np.tile([canvas_w, canvas_h, canvas_w / 2.0, canvas_h / 2.0], (len(c2w), 1))
    else:
        c2w = np.array(c2w_F44, dtype=np.float64)
        c2w[:, :3, 3] *= metric_scale
        intrinsics = np.array(intrinsics_F4, dtype=np.float64)
        intrinsics[:, [0, 2]] *= canvas_w / max(float(width), 1.0)
        intrinsics[:, [1, 3]] *= canvas_h / max(float(height), 1.0)
    conditions_T20, plucker_CThw = prepare_camera(c2w, intrinsics, canvas_h, canvas_w, vae_stride)
    if conditions_T20.shape[0] < latent_t:
        pad = latent_t - conditions_T20.shape[0]
        conditions_T20 = torch.cat([conditions_T20, conditions_T20[-1:].expand(pad, -1)])
        plucker_CThw = torch.cat([plucker_CThw, plucker_CThw[:, -1:].expand(-1, pad, -1, -1)], dim=1)
    return conditions_T20[:latent_t].contiguous(), plucker_CThw[:, :latent_t].contiguous()
