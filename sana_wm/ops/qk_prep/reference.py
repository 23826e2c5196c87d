"""Query/key preparation of the attention blocks in one op: RMSNorm over all channels, ReLU, scale, RoPE.

Shape letters: docs/conventions.md.

``y = scale · act(RMSNorm(x))`` with ``RMSNorm(x) = (x·rsqrt(mean_D(x²) + eps)) · weight`` (mean of the
fp32 squares; the normalised value is cast to the weight's dtype before ``· weight`` if that is half
precision, as ``sana_wm.models.attention.RMSNorm`` does), ``act`` ReLU or the identity. Given RoPE tables,
also ``y_rot``: each head's ``E`` channels of ``y`` rotated as interleaved pairs by the token's angles
(:func:`sana_wm.ops.rope.apply_rope`). Both are returned in ``x``'s dtype and ``(B, M, D)`` layout.

This module composes the model's eager steps, rotating with complex numbers; ``torch_fast.py`` is the same
with the real-valued rotation. Inputs are checked by :mod:`sana_wm.ops.qk_prep`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from sana_wm.ops.rope.reference import apply_rope


def rms_norm_act(x_BMD: Tensor, weight_D: Tensor, *, eps: float, relu: bool, scale: float) -> Tensor:
    """``scale·act(RMSNorm(x))`` in ``x``'s dtype, rounding where the model's eager modules round."""
    normed = x_BMD * torch.rsqrt(x_BMD.float().square().mean(-1, keepdim=True) + eps)
    if weight_D.dtype in (torch.float16, torch.bfloat16):
        normed = normed.to(weight_D.dtype)
    y = normed * weight_D
    if relu:
        y = F.relu(y)
    if scale != 1.0:
        y = y * scale
    return y.to(x_BMD.dtype)


def qk_prep(
    x_BMD: Tensor,
    weight_D: Tensor,
    *,
    eps: float,
    relu: bool,
    scale: float,
    rope_cos_MP: Tensor | None,
    rope_sin_MP: Tensor | None,
    heads: int,
    rotate: Callable[[Tensor, Tensor, Tensor], Tensor] = apply_rope,
) -> tuple[Tensor, Tensor | None]:
    """See :func:`sana_wm.ops.qk_prep.qk_prep`; ``rotate`` is the RoPE implementation (``torch_fast`` passes
    the real-valued one)."""
    y_BMD = rms_norm_act(x_BMD, weight_D, eps=eps, relu=relu, scale=scale)
    if rope_cos_MP is None or rope_sin_MP is None:
        return y_BMD, None
    y_BNME = y_BMD.unflatten(-1, (heads, -1)).transpose(1, 2)
    rot_BNME = rotate(y_BNME, rope_cos_MP, rope_sin_MP)
    return y_BMD, rot_BNME.transpose(1, 2).flatten(2)
