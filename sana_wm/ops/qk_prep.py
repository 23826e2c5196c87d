"""Query/key preparation of the attention blocks in one op: RMSNorm over all channels, ReLU, scale, RoPE.

Shape letters: ``B`` batch, ``M`` video tokens, ``D`` model width, ``N`` heads, ``E`` head dim (``D/N``),
``P`` RoPE pairs per head (``E/2``).

``y = scale · act(RMSNorm(x))`` with ``RMSNorm(x) = (x·rsqrt(mean_D(x²) + eps)) · weight`` (mean of the
fp32 squares; the normalised value is cast to the weight's dtype before ``· weight`` if that is half
precision, as ``sana_wm.models.attention.RMSNorm`` does), ``act`` ReLU or the identity. Given RoPE tables,
also ``y_rot``: each head's ``E`` channels of ``y`` rotated as interleaved pairs by the token's angles
(:func:`sana_wm.ops.rope.apply_rope`). Both are returned in ``x``'s dtype and ``(B, M, D)`` layout.

The ``"reference"`` and ``"torch"`` backends compose the model's eager steps (``"reference"`` rotates with
complex numbers). The ``"triton"`` kernel (``triton_qk_prep.py``) reads ``x`` once and writes ``y`` and
``y_rot``; eager PyTorch makes fp32 temporaries of all ``D`` channels for the norm and the RoPE (on an H100
about 130 ms per GDN block at 961 frames). It keeps every intermediate in fp32 and rounds each output once,
where the eager path with bf16 activations rounds to bf16 after the norm, the weight, the scale and the
rotation: bf16 outputs differ by at most a couple of bf16 ulps, fp32 ones agree to fp32 rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sana_wm.errors import InputError
from sana_wm.ops import Backend, check_backend
from sana_wm.ops.rope import apply_rope


def _check_inputs(
    x_BMD: Tensor, weight_D: Tensor, rope_cos_MP: Tensor | None, rope_sin_MP: Tensor | None, heads: int
) -> None:
    if x_BMD.dim() != 3 or not x_BMD.is_floating_point():
        raise InputError(
            f"x_BMD: expected a floating (B, M, D) tensor, got {x_BMD.dtype} {tuple(x_BMD.shape)}"
        )
    _, tokens, dim = x_BMD.shape
    if tuple(weight_D.shape) != (dim,) or weight_D.device != x_BMD.device:
        raise InputError(f"weight_D: expected shape ({dim},) on {x_BMD.device}, got {tuple(weight_D.shape)}")
    if heads < 1 or dim % heads:
        raise InputError(f"heads: {heads} does not divide the width {dim} of x_BMD")
    if (rope_cos_MP is None) != (rope_sin_MP is None):
        raise InputError("rope_cos_MP, rope_sin_MP: give both tables or neither")
    if rope_cos_MP is None or rope_sin_MP is None:
        return
    head_dim = dim // heads
    if head_dim % 2:
        raise InputError(f"heads: head dim {head_dim} (= {dim} / {heads}) is odd, RoPE needs pairs")
    for name, table in (("rope_cos_MP", rope_cos_MP), ("rope_sin_MP", rope_sin_MP)):
        if tuple(table.shape) != (tokens, head_dim // 2) or table.device != x_BMD.device:
            raise InputError(
                f"{name}: expected shape {(tokens, head_dim // 2)} on {x_BMD.device}, "
                f"got {tuple(table.shape)} on {table.device}"
            )


def qk_prep(
    x_BMD: Tensor,
    weight_D: Tensor,
    *,
    eps: float,
    relu: bool,
    scale: float,
    rope_cos_MP: Tensor | None = None,
    rope_sin_MP: Tensor | None = None,
    heads: int,
    backend: Backend = "torch",
) -> tuple[Tensor, Tensor | None]:
    """``(y_BMD, y_rot_BMD)``: ``scale·act(RMSNorm(x))`` and its per-head RoPE rotation (``None`` without
    tables), in ``x``'s dtype. ``scale`` 1.0 scales nothing."""
    check_backend(backend)
    _check_inputs(x_BMD, weight_D, rope_cos_MP, rope_sin_MP, heads)
    if backend == "triton":
        from sana_wm.ops.triton_qk_prep import qk_prep_triton

        return qk_prep_triton(
            x_BMD,
            weight_D,
            eps=eps,
            relu=relu,
            scale=scale,
            cos_MP=rope_cos_MP,
            sin_MP=rope_sin_MP,
            heads=heads,
        )
    normed = x_BMD * torch.rsqrt(x_BMD.float().square().mean(-1, keepdim=True) + eps)
    if weight_D.dtype in (torch.float16, torch.bfloat16):
        normed = normed.to(weight_D.dtype)
    y = normed * weight_D
    if relu:
        y = F.relu(y)
    if scale != 1.0:
        y = y * scale
    y_BMD = y.to(x_BMD.dtype)
    if rope_cos_MP is None or rope_sin_MP is None:
        return y_BMD, None
    y_BNME = y_BMD.unflatten(-1, (heads, -1)).transpose(1, 2)
    rot_BNME = apply_rope(y_BNME, rope_cos_MP, rope_sin_MP, backend=backend)
    return y_BMD, rot_BNME.transpose(1, 2).flatten(2)
