"""Triton kernel of :func:`sana_wm.ops.qk_prep.qk_prep` (forward only).

Shape letters: docs/conventions.md.

Grid ``(M, B)``: a program owns one token row and holds it in registers as one tile, ``(heads, E)`` padded
to powers of two with RoPE (``32 × 128`` for 20 × 112), ``D`` padded otherwise (4096 for 2240). It sums the
fp32 squares, normalises, multiplies by the weight, applies ReLU and the scale and stores ``y``. With RoPE
the same tile, viewed as ``(heads, P, 2)``, is split into even and odd channels (within each thread: no
shared-memory shuffle), rotated by the token's one ``cos/sin`` row (broadcast over the heads) and stored as
``y_rot``. Every intermediate is fp32 and each output is rounded once (Triton's fp32 → bf16/fp16 cast rounds
to nearest even on the GPU; the interpreter truncates), where the eager path rounds between steps.

``x`` is read in its own dtype with any strides (the model's ``q`` is a chunk of the ``qkv`` projection);
outputs are contiguous ``(B, M, D)``. Row offsets are int64, channel offsets int32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from sana_wm.errors import InputError
from sana_wm.ops.launch import check_kernel_inputs, on_device

WARPS = 8


@triton.jit
def _normalise(x, w, D, eps, scale, RELU: tl.constexpr):
    """``scale · act(x · rsqrt(mean(x²) + eps) · w)`` of one row (any tile shape; masked lanes hold 0)."""
    x = x.to(tl.float32)
    rstd = tl.rsqrt(tl.sum(tl.reshape(x * x, (x.numel,)), axis=0) / D + eps)
    y = x * rstd * w.to(tl.float32)
    if RELU:
        y = tl.where(y < 0.0, 0.0, y)  # NaN stays NaN, as F.relu
    return y * scale


@triton.jit
def _qk_prep_kernel(
    x_ptr,
    w_ptr,
    cos_ptr,
    sin_ptr,
    y_ptr,
    rot_ptr,
    M,
    D,
    N,
    eps,
    scale,
    stride_x_b,
    stride_x_m,
    stride_x_d,
    stride_cos_m,
    stride_cos_p,
    stride_sin_m,
    stride_sin_p,
    RELU: tl.constexpr,
    ROPE: tl.constexpr,
    PAIRS: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    m = tl.program_id(0).to(tl.int64)
    b = tl.program_id(1).to(tl.int64)
    x_row = x_ptr + b * stride_x_b + m * stride_x_m
    out_row = (b * M + m) * D
    if ROPE:
        # The row as (head, channel) tiles, seen as (head, pair, 2) for the rotation: channel n·E + 2p + j.
        n = tl.arange(0, BLOCK_N)[:, None]
        e = tl.arange(0, 2 * BLOCK_P)[None, :]
        c = n * (2 * PAIRS) + e
        valid = (n < N) & (e < 2 * PAIRS)
        x = tl.load(x_row + c * stride_x_d, mask=valid, other=0.0)
        w = tl.load(w_ptr + c, mask=valid, other=0.0)
        y = _normalise(x, w, D, eps, scale, RELU)
        tl.store(y_ptr + out_row + c, y.to(y_ptr.dtype.element_ty), mask=valid)
        pair = tl.arange(0, BLOCK_P)
        cos = tl.load(cos_ptr + m * stride_cos_m + pair * stride_cos_p, mask=pair < PAIRS, other=0.0)
        sin = tl.load(sin_ptr + m * stride_sin_m + pair * stride_sin_p, mask=pair < PAIRS, other=0.0)
        cos = cos.to(tl.float32)[None, :]
        sin = sin.to(tl.float32)[None, :]
        even, odd = tl.split(tl.reshape(y, (BLOCK_N, BLOCK_P, 2)))
        rot = tl.reshape(tl.join(even * cos - odd * sin, even * sin + odd * cos), (BLOCK_N, 2 * BLOCK_P))
        tl.store(rot_ptr + out_row + c, rot.to(rot_ptr.dtype.element_ty), mask=valid)
    else:
        c = tl.arange(0, BLOCK_D)
        valid = c < D
        x = tl.load(x_row + c * stride_x_d, mask=valid, other=0.0)
        w = tl.load(w_ptr + c, mask=valid, other=0.0)
        y = _normalise(x, w, D, eps, scale, RELU)
        tl.store(y_ptr + out_row + c, y.to(y_ptr.dtype.element_ty), mask=valid)


_INTERPRETED = not isinstance(_qk_prep_kernel, triton.runtime.JITFunction)


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
) -> tuple[Tensor, Tensor | None]:
    """See :func:`sana_wm.ops.qk_prep.qk_prep` (which checks shapes and devices before calling this)."""
    named = {"x_BMD": x_BMD, "weight_D": weight_D, "rope_cos_MP": rope_cos_MP, "rope_sin_MP": rope_sin_MP}
    check_kernel_inputs(named, interpreted=_INTERPRETED)
    batch, tokens, dim = x_BMD.shape
    if batch > 65535:
        raise InputError(f"x_BMD: batch {batch} is above 65535, the kernel's grid limit")
    rope = rope_cos_MP is not None and rope_sin_MP is not None
    pairs = dim // heads // 2 if rope else 1
    y = torch.empty(batch, tokens, dim, device=x_BMD.device, dtype=x_BMD.dtype)
    rot = torch.empty_like(y) if rope else None
    if y.numel() == 0:
        return y, rot
    cos = rope_cos_MP if rope_cos_MP is not None else y  # unread without RoPE
    sin = rope_sin_MP if rope_sin_MP is not None else y
    with on_device(x_BMD):
        _qk_prep_kernel[(tokens, batch)](
            x_BMD,
            weight_D.contiguous(),
            cos,
            sin,
            y,
            rot if rot is not None else y,
            tokens,
            dim,
            heads,
            eps,
            scale,
            *x_BMD.stride(),
            cos.stride(0),
            cos.stride(-1),
            sin.stride(0),
            sin.stride(-1),
            RELU=relu,
            ROPE=rope,
            PAIRS=pairs,
            BLOCK_D=max(16, triton.next_power_of_2(dim)),
            BLOCK_N=triton.next_power_of_2(heads),
            BLOCK_P=max(16, triton.next_power_of_2(pairs)),
            num_warps=WARPS,
        )
    return y, rot
