"""UCPE reference: per-ray SE(3) transforms of the camera branch's queries, keys, values and outputs.

Shape letters: docs/conventions.md.

Geometry: each token's world-to-ray matrix ``P`` (:func:`sana_wm.camera.rays.ray_matrices`, always fp32).

Transform (:func:`ucpe_transform`): a head vector of ``E`` channels is split in halves. The first half is
``E/8`` groups of 4 consecutive channels, each multiplied by a per-token 4×4 matrix (``Pᵀ`` for queries,
``P⁻¹`` for keys and values, ``P`` for outputs). The second half is ``E/4`` interleaved pairs rotated by the
camera RoPE (conjugate rotation for outputs). Computed in fp32.

:func:`rms_downscale` is the post-transform RMS envelope of diffusers 0.42.1 (present in its GDN *and* softmax
camera branches; the official Triton GDN camera path has none, and official commits differ for the softmax
camera branch — we follow diffusers 0.42.1).

:func:`ucpe_encode` is the transform, the optional downscale and the cast to the consumer's dtype in one call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sana_wm.ops.rope.reference import apply_rope

# The eps of the RMS envelope in the camera branches (diffusers 0.42.1).
DOWNSCALE_EPS = 1e-6


def invert_rigid(P_X44: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of rigid 4×4 transforms ``[R | t]`` → ``[Rᵀ | −Rᵀt]``."""
    rot_t = P_X44[..., :3, :3].transpose(-1, -2)
    top = torch.cat([rot_t, -(rot_t @ P_X44[..., :3, 3:])], dim=-1)
    return torch.cat([top, P_X44[..., 3:, :]], dim=-2)


def rms_downscale(reference_BNME: torch.Tensor, x_BNME: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Scale each head vector of ``x`` down (never up) to the RMS of the matching ``reference`` vector.

    ``rms(v) = sqrt(mean(v²) + eps)``; factor ``min(1, rms(ref) / max(rms(x), eps))``.
    """
    ref_rms = reference_BNME.float().square().mean(-1, keepdim=True).add(eps).sqrt()
    x_rms = x_BNME.square().mean(-1, keepdim=True).add(eps).sqrt()
    return x_BNME * (ref_rms / x_rms.clamp_min(eps)).clamp(max=1.0)


def ucpe_transform(
    x_BNME: torch.Tensor,
    matrix_BM44: torch.Tensor,
    cos_MQ: torch.Tensor,
    sin_MQ: torch.Tensor,
    *,
    conjugate: bool = False,
) -> torch.Tensor:
    """The block-diagonal UCPE transform, one ``einsum`` over the 4-groups; fp32 ``(B, N, M, E)``."""
    x = x_BNME.float()
    half = x.shape[-1] // 2
    groups_BNMG4 = x[..., :half].unflatten(-1, (-1, 4))
    projected = torch.einsum("bmij,bnmgj->bnmgi", matrix_BM44.float(), groups_BNMG4)
    rotated = apply_rope(x[..., half:], cos_MQ, sin_MQ, conjugate=conjugate)
    return torch.cat([projected.flatten(-2), rotated], dim=-1)


def ucpe_encode(
    x_BNME: torch.Tensor,
    matrix_BM44: torch.Tensor,
    cos_MQ: torch.Tensor,
    sin_MQ: torch.Tensor,
    *,
    conjugate: bool = False,
    downscale: bool = False,
    out_dtype: torch.dtype = torch.float32,
    transform: Callable[..., torch.Tensor] = ucpe_transform,
) -> torch.Tensor:
    """``transform`` (default :func:`ucpe_transform`; ``torch_fast`` passes its batched one), then
    (``downscale``) :func:`rms_downscale` against ``x``, cast to ``out_dtype``."""
    transformed = transform(x_BNME, matrix_BM44, cos_MQ, sin_MQ, conjugate=conjugate)
    if downscale:
        transformed = rms_downscale(x_BNME, transformed, DOWNSCALE_EPS)
    return transformed.to(out_dtype)
