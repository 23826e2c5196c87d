"""Triton kernel of the fused UCPE encode (``backend="triton"`` of :func:`sana_wm.ops.ucpe.ucpe_encode` and
:func:`~sana_wm.ops.ucpe.ucpe_transform`). Forward only.

Shape letters: docs/conventions.md.

One program per (block of ``BLOCK_M`` tokens, batch) loops over the heads: the per-token 4×4 matrices and
RoPE angles are expanded once into four ``(BLOCK_M, E)`` coefficient tiles ``w_j`` with source channels
``col_j``, and every head computes ``y[c] = Σ_j w_j[c]·x[col_j[c]]``:

- first half, ``c < E/2`` (4-channel groups): ``w_j[c] = P[c mod 4, j]``, ``col_j[c] = c − c mod 4 + j``;
- second half (interleaved pairs ``(2i, 2i+1)`` rotated by the camera RoPE): ``w_0 = cos``, ``col_0 = c``;
  ``w_1 = ∓sin`` (``−`` on even channels, signs flipped when ``conjugate``), ``col_1 = c xor 1``;
  ``w_2 = w_3 = 0``.

Then, with ``downscale``, ``y ← y·min(1, rms(x) / max(rms(y), eps))`` with ``rms(v) = sqrt(mean(v²) + eps)``,
and ``y`` is stored in the output dtype (round to nearest even). ``x`` is read in its own dtype with any
strides (e.g. a ``(B, M, N, E) → (B, N, M, E)`` transposed view); the output is written in ``x``'s memory
layout (as ``torch.empty_like``). All math in fp32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from sana_wm.errors import InputError
from sana_wm.ops.launch import check_kernel_inputs, on_device
from sana_wm.ops.ucpe.reference import DOWNSCALE_EPS

# Launch shape: tokens per program, warps (measured on an H100: BENCHMARKS.md).
BLOCK_M, WARPS = 8, 2


@triton.jit
def _ucpe_kernel(
    x_ptr,
    matrix_ptr,
    cos_ptr,
    sin_ptr,
    out_ptr,
    N,
    M,
    E,
    eps,
    stride_x_b,
    stride_x_n,
    stride_x_m,
    stride_x_e,
    stride_p_b,
    stride_p_m,
    stride_p_i,
    stride_p_j,
    stride_cos_m,
    stride_cos_q,
    stride_sin_m,
    stride_sin_q,
    stride_o_b,
    stride_o_n,
    stride_o_m,
    stride_o_e,
    CONJUGATE: tl.constexpr,
    DOWNSCALE: tl.constexpr,
    ROUND_OUT: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_E: tl.constexpr,
):
    b = tl.program_id(1).to(tl.int64)
    tokens = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    c = tl.arange(0, BLOCK_E)
    half = E // 2
    in_groups = c < half
    in_pairs = (c >= half) & (c < E)
    token_mask = (tokens < M)[:, None]
    valid = token_mask & (c < E)[None, :]
    group_mask = token_mask & in_groups[None, :]
    pair_mask = token_mask & in_pairs[None, :]

    # Coefficients shared by every head of these tokens.
    row = c % 4
    group_start = c - row
    matrix_rows = matrix_ptr + b * stride_p_b + tokens[:, None] * stride_p_m + (row * stride_p_i)[None, :]
    w0 = tl.load(matrix_rows, mask=group_mask, other=0.0).to(tl.float32)
    w1 = tl.load(matrix_rows + stride_p_j, mask=group_mask, other=0.0).to(tl.float32)
    w2 = tl.load(matrix_rows + 2 * stride_p_j, mask=group_mask, other=0.0).to(tl.float32)
    w3 = tl.load(matrix_rows + 3 * stride_p_j, mask=group_mask, other=0.0).to(tl.float32)
    pair = tl.where(in_pairs, (c - half) // 2, 0)
    cos = tl.load(
        cos_ptr + tokens[:, None] * stride_cos_m + (pair * stride_cos_q)[None, :], mask=pair_mask, other=0.0
    )
    sin = tl.load(
        sin_ptr + tokens[:, None] * stride_sin_m + (pair * stride_sin_q)[None, :], mask=pair_mask, other=0.0
    )
    odd = c % 2
    sign = (2 * odd - 1).to(tl.float32)  # −1 on even channels (x_e·cos − x_o·sin), +1 on odd ones
    if CONJUGATE:
        sign = -sign
    coef0 = w0 + cos.to(tl.float32)
    coef1 = w1 + sign[None, :] * sin.to(tl.float32)
    col0 = tl.where(in_groups, group_start, c)
    col1 = tl.where(in_groups, group_start + 1, c + 1 - 2 * odd)
    col2 = group_start + 2
    col3 = group_start + 3

    for n in range(N):
        x_rows = x_ptr + b * stride_x_b + n * stride_x_n + tokens[:, None] * stride_x_m
        x0 = tl.load(x_rows + (col0 * stride_x_e)[None, :], mask=valid, other=0.0).to(tl.float32)
        x1 = tl.load(x_rows + (col1 * stride_x_e)[None, :], mask=valid, other=0.0).to(tl.float32)
        x2 = tl.load(x_rows + (col2 * stride_x_e)[None, :], mask=group_mask, other=0.0).to(tl.float32)
        x3 = tl.load(x_rows + (col3 * stride_x_e)[None, :], mask=group_mask, other=0.0).to(tl.float32)
        y = coef0 * x0 + coef1 * x1 + w2 * x2 + w3 * x3
        if DOWNSCALE:
            x = tl.load(x_rows + (c * stride_x_e)[None, :], mask=valid, other=0.0).to(tl.float32)
            x_rms = tl.sqrt_rn(tl.sum(x * x, axis=1) / E + eps)
            y_rms = tl.sqrt_rn(tl.sum(y * y, axis=1) / E + eps)
            y = y * tl.minimum(x_rms / tl.maximum(y_rms, eps), 1.0)[:, None]
        out = (
            out_ptr
            + b * stride_o_b
            + n * stride_o_n
            + tokens[:, None] * stride_o_m
            + (c * stride_o_e)[None, :]
        )
        if ROUND_OUT:
            tl.store(out, y.to(out_ptr.dtype.element_ty, fp_downcast_rounding="rtne"), mask=valid)
        else:
            tl.store(out, y.to(out_ptr.dtype.element_ty), mask=valid)


_INTERPRETED = not isinstance(_ucpe_kernel, triton.runtime.JITFunction)


def ucpe_encode(
    x_BNME: torch.Tensor,
    matrix_BM44: torch.Tensor,
    cos_MQ: torch.Tensor,
    sin_MQ: torch.Tensor,
    *,
    conjugate: bool = False,
    downscale: bool = False,
    out_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """UCPE transform (+ RMS downscale) of ``x_BNME`` in one pass (:func:`sana_wm.ops.ucpe.ucpe_encode`)."""
    if x_BNME.dim() != 4:
        raise InputError(f"x_BNME: expected (B, N, M, E), got shape {tuple(x_BNME.shape)}")
    batch, heads, tokens, dim = x_BNME.shape
    if dim % 8:
        raise InputError(f"x_BNME: head dim {dim} is not a multiple of 8")
    expected = {
        "matrix_BM44": (matrix_BM44, (batch, tokens, 4, 4)),
        "cos_MQ": (cos_MQ, (tokens, dim // 4)),
        "sin_MQ": (sin_MQ, (tokens, dim // 4)),
    }
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape or tensor.device != x_BNME.device:
            got = f"{tuple(tensor.shape)} on {tensor.device}"
            raise InputError(f"{name}: expected shape {shape} on {x_BNME.device}, got {got}")
    check_kernel_inputs({"x_BNME": x_BNME}, interpreted=_INTERPRETED)
    out = torch.empty_like(x_BNME, dtype=out_dtype)
    grid = (triton.cdiv(tokens, BLOCK_M), batch)
    with on_device(x_BNME):
        _ucpe_kernel[grid](
            x_BNME,
            matrix_BM44,
            cos_MQ,
            sin_MQ,
            out,
            heads,
            tokens,
            dim,
            DOWNSCALE_EPS,
            *x_BNME.stride(),
            *matrix_BM44.stride(),
            *cos_MQ.stride(),
            *sin_MQ.stride(),
            *out.stride(),
            CONJUGATE=conjugate,
            DOWNSCALE=downscale,
            ROUND_OUT=out.element_size() < 4,
            BLOCK_M=BLOCK_M,
            BLOCK_E=max(16, triton.next_power_of_2(dim)),
            num_warps=WARPS,
        )
    return out


def ucpe_transform(
    x_BNME: torch.Tensor,
    matrix_BM44: torch.Tensor,
    cos_MQ: torch.Tensor,
    sin_MQ: torch.Tensor,
    *,
    conjugate: bool = False,
) -> torch.Tensor:
    """:func:`ucpe_encode` without the downscale, fp32 out (:func:`sana_wm.ops.ucpe.ucpe_transform`)."""
    return ucpe_encode(x_BNME, matrix_BM44, cos_MQ, sin_MQ, conjugate=conjugate)
