"""UCPE transform as batched matmuls (``"torch"`` backend): the math of :mod:`sana_wm.ops.ucpe.reference`.

Shape letters: docs/conventions.md. The 4-groups of all heads of a token are multiplied by the token's matrix
in one ``(N·E/8 × 4) @ (4 × 4)`` product instead of one per token and head; RoPE by real rotation.
"""

from __future__ import annotations

import functools

import torch

from sana_wm.ops.rope.torch_fast import apply_rope
from sana_wm.ops.ucpe import reference


def ucpe_transform(
    x_BNME: torch.Tensor,
    matrix_BM44: torch.Tensor,
    cos_MQ: torch.Tensor,
    sin_MQ: torch.Tensor,
    *,
    conjugate: bool = False,
) -> torch.Tensor:
    """See :func:`sana_wm.ops.ucpe.ucpe_transform`; fp32 ``(B, N, M, E)``."""
    x = x_BNME.float()
    half = x.shape[-1] // 2
    groups_BNMG4 = x[..., :half].unflatten(-1, (-1, 4))
    rows_BMR4 = groups_BNMG4.transpose(1, 2).flatten(2, 3)
    projected_BMR4 = rows_BMR4 @ matrix_BM44.float().transpose(-1, -2)
    projected = projected_BMR4.unflatten(2, (x.shape[1], -1)).transpose(1, 2)
    rotated = apply_rope(x[..., half:], cos_MQ, sin_MQ, conjugate=conjugate)
    return torch.cat([projected.flatten(-2), rotated], dim=-1)


ucpe_encode = functools.partial(reference.ucpe_encode, transform=ucpe_transform)
