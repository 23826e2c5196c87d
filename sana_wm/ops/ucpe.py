"""UCPE: per-ray SE(3) transforms of the camera branch's queries, keys, values and outputs.

Shape letters: ``B`` batch, ``T`` latent frames, ``h``/``w`` latent grid, ``N`` heads, ``M`` video tokens
(``T·h·w``), ``E`` head dim, ``Q`` camera RoPE pairs (``E // 4``).

Geometry (:func:`ray_matrices`): for latent frame ``t`` with relative camera-to-world pose ``(R, c)`` and
latent-unit intrinsics ``fx, fy, cx, cy``, pixel ``(u, v)`` of the integer latent grid (no +0.5) has the
camera ray ``d = ((u − cx)/fx, (v − cy)/fy, 1)`` and world ray ``R·d``. Its ray frame is ``z = R·d / |R·d|``,
``x = normalise(R[:, 1] × z)`` (``R[:, 1]`` is the camera's +Y, OpenCV down), ``y = normalise(z × x)``, and
the token's world-to-ray matrix is ``P = [[Rᵣᵀ, −Rᵣᵀ·c], [0, 0, 0, 1]]`` with ``Rᵣ = [x y z]``. Always
computed in fp32 (diffusers 0.42.1 and the official code compute it in the camera tensor's dtype, bf16 at
inference, and round-trip ``fx`` through a field of view first; both only add rounding).

Transform (:func:`ucpe_transform`): a head vector of ``E`` channels is split in halves. The first half is
``E/8`` groups of 4 consecutive channels, each multiplied by a per-token 4×4 matrix (``Pᵀ`` for queries,
``P⁻¹`` for keys and values, ``P`` for outputs). The second half is ``E/4`` interleaved pairs rotated by the
camera RoPE (conjugate rotation for outputs). Computed in fp32.

:func:`rms_downscale` is the post-transform RMS envelope of diffusers 0.42.1 (present in its GDN *and* softmax
camera branches; the official Triton GDN camera path has none, and official commits differ for the softmax
camera branch — we follow diffusers 0.42.1).

:func:`ucpe_encode` is the transform, the optional downscale and the cast to the consumer's dtype in one call;
its ``"triton"`` backend is one kernel (``triton_ucpe.py``) that reads ``x`` once in its own dtype and writes
the output in ``x``'s memory layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sana_wm.ops import Backend, check_backend
from sana_wm.ops.rope import apply_rope

# The eps of the RMS envelope in the camera branches (diffusers 0.42.1).
DOWNSCALE_EPS = 1e-6


def ray_matrices(camera_BT20: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-token world-to-ray matrices ``P_BThw44`` (fp32) from camera conditions ``(B, T, 20)``.

    ``camera_BT20[..., :16]`` is the row-major relative camera-to-world pose, ``[..., 16:20]`` is
    ``[fx, fy, cx, cy]`` in latent-grid pixels. Intrinsics must be finite with non-zero focal lengths.
    """
    cam = camera_BT20.float()
    c2w_BT44 = cam[..., :16].unflatten(-1, (4, 4))
    fx, fy, cx, cy = (cam[..., i, None, None] for i in range(16, 20))
    u_w = torch.arange(width, dtype=torch.float32, device=cam.device)
    v_h = torch.arange(height, dtype=torch.float32, device=cam.device)
    x_BThw = ((u_w[None, :] - cx) / fx).expand(-1, -1, height, width)
    y_BThw = ((v_h[:, None] - cy) / fy).expand(-1, -1, height, width)
    ray_cam_BThw3 = torch.stack([x_BThw, y_BThw, torch.ones_like(x_BThw)], dim=-1)
    rot_BT33 = c2w_BT44[..., :3, :3]
    ray_world = torch.einsum("btij,bthwj->bthwi", rot_BT33, ray_cam_BThw3)
    z_axis = F.normalize(ray_world, dim=-1, eps=1e-6)
    cam_down = rot_BT33[..., :, 1][:, :, None, None, :].expand_as(z_axis)
    x_axis = F.normalize(torch.linalg.cross(cam_down, z_axis, dim=-1), dim=-1, eps=1e-6)
    y_axis = F.normalize(torch.linalg.cross(z_axis, x_axis, dim=-1), dim=-1, eps=1e-6)
    world_to_ray = torch.stack([x_axis, y_axis, z_axis], dim=-2)
    centre = c2w_BT44[..., :3, 3][:, :, None, None, :, None]
    top_BThw34 = torch.cat([world_to_ray, -(world_to_ray @ centre)], dim=-1)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], device=cam.device).expand(*top_BThw34.shape[:-2], 1, 4)
    return torch.cat([top_BThw34, bottom], dim=-2)


def invert_rigid(P_X44: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of rigid 4×4 transforms ``[R | t]`` → ``[Rᵀ | −Rᵀt]``."""
    rot_t = P_X44[..., :3, :3].transpose(-1, -2)
    top = torch.cat([rot_t, -(rot_t @ P_X44[..., :3, 3:])], dim=-1)
    return torch.cat([top, P_X44[..., 3:, :]], dim=-2)


def ucpe_transform(
    x_BNME: torch.Tensor,
    matrix_BM44: torch.Tensor,
    cos_MQ: torch.Tensor,
    sin_MQ: torch.Tensor,
    *,
    conjugate: bool = False,
    backend: Backend = "torch",
) -> torch.Tensor:
    """Apply the block-diagonal UCPE transform; returns fp32 ``(B, N, M, E)``.

    First ``E/2`` channels: groups of 4, ``group ← matrix · group``. Last ``E/2`` channels: camera RoPE
    (``conjugate`` for the inverse rotation). ``"triton"``: :func:`ucpe_encode` without the downscale.
    """
    check_backend(backend)
    if backend == "triton":
        return ucpe_encode(x_BNME, matrix_BM44, cos_MQ, sin_MQ, conjugate=conjugate, backend=backend)
    x = x_BNME.float()
    half = x.shape[-1] // 2
    groups_BNMG4 = x[..., :half].unflatten(-1, (-1, 4))
    matrix = matrix_BM44.float()
    if backend == "reference":
        projected = torch.einsum("bmij,bnmgj->bnmgi", matrix, groups_BNMG4)
    else:
        # One (N·G × 4) @ (4 × 4) product per token instead of one per token and head.
        rows_BMR4 = groups_BNMG4.transpose(1, 2).flatten(2, 3)
        projected = (rows_BMR4 @ matrix.transpose(-1, -2)).unflatten(2, (x.shape[1], -1)).transpose(1, 2)
    rotated = apply_rope(x[..., half:], cos_MQ, sin_MQ, conjugate=conjugate, backend=backend)
    return torch.cat([projected.flatten(-2), rotated], dim=-1)


def rms_downscale(reference_BNME: torch.Tensor, x_BNME: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Scale each head vector of ``x`` down (never up) to the RMS of the matching ``reference`` vector.

    ``rms(v) = sqrt(mean(v²) + eps)``; factor ``min(1, rms(ref) / max(rms(x), eps))``.
    """
    ref_rms = reference_BNME.float().square().mean(-1, keepdim=True).add(eps).sqrt()
    x_rms = x_BNME.square().mean(-1, keepdim=True).add(eps).sqrt()
    return x_BNME * (ref_rms / x_rms.clamp_min(eps)).clamp(max=1.0)


def ucpe_encode(
    x_BNME: torch.Tensor,
    matrix_BM44: torch.Tensor,
    cos_MQ: torch.Tensor,
    sin_MQ: torch.Tensor,
    *,
    conjugate: bool = False,
    downscale: bool = False,
    out_dtype: torch.dtype = torch.float32,
    backend: Backend = "torch",
) -> torch.Tensor:
    """:func:`ucpe_transform`, then (``downscale``) :func:`rms_downscale` against ``x`` with eps 1e-6, cast to
    ``out_dtype``; returns ``(B, N, M, E)``.

    ``"reference"`` / ``"torch"`` compose those functions (contiguous output). ``"triton"``: one kernel that
    reads ``x`` in its dtype with any strides (e.g. a ``(B, M, N, E) → (B, N, M, E)`` transposed view) and
    writes ``out_dtype`` in ``x``'s memory layout (as ``torch.empty_like``).
    """
    check_backend(backend)
    if backend == "triton":
        from sana_wm.ops import triton_ucpe  # imports triton; only when asked for

        return triton_ucpe.ucpe_encode(
            x_BNME,
            matrix_BM44,
            cos_MQ,
            sin_MQ,
            conjugate=conjugate,
            downscale=downscale,
            eps=DOWNSCALE_EPS,
            out_dtype=out_dtype,
        )
    transformed = ucpe_transform(x_BNME, matrix_BM44, cos_MQ, sin_MQ, conjugate=conjugate, backend=backend)
    if downscale:
        transformed = rms_downscale(x_BNME, transformed, DOWNSCALE_EPS)
    return transformed.to(out_dtype)
