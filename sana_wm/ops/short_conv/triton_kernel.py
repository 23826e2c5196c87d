"""Triton kernel of :func:`sana_wm.ops.short_conv.bidirectional_short_conv` (forward only).

Shape letters: docs/conventions.md.

Grid ``(tiles, T, B)``: a program owns a ``BLOCK_S × BLOCK_C`` tile (tokens × channels) of one output frame
and sums the symmetric ``2K−1``-tap filter over the neighbouring frames in fp32 (frames outside ``[0, T)``
are zero), rounding once to the input's dtype. Frames are the slowest-varying grid axis but one, so the
frames a tile reads were just read by its neighbours and mostly come from L2. ``x`` is read with its own
strides (the model's ``k`` is a chunk of the ``qkv`` projection, row stride ``3·C``); the output is
contiguous ``(B, T, S, C)``. Offsets are int64 per frame, int32 inside a frame.

The chunk-causal version has no kernel of its own: ``chunk_causal_short_conv`` is the ``"torch"`` one (it
runs on a few frames per streamed chunk, far from the cost of the attention).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from sana_wm.errors import InputError
from sana_wm.ops.launch import check_kernel_inputs, on_device
from sana_wm.ops.short_conv.torch_fast import chunk_causal_short_conv, symmetric_taps

__all__ = ["bidirectional_short_conv", "chunk_causal_short_conv", "short_conv_triton"]

BLOCK_S, BLOCK_C = 16, 128


@triton.jit
def _short_conv_kernel(
    x_ptr,
    w_ptr,
    out_ptr,
    T,
    S,
    C,
    stride_x_b,
    stride_x_t,
    stride_x_s,
    TAPS: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    tiles_c = tl.cdiv(C, BLOCK_C)
    tile = tl.program_id(0)
    t = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)
    s = (tile // tiles_c) * BLOCK_S + tl.arange(0, BLOCK_S)
    c = (tile % tiles_c) * BLOCK_C + tl.arange(0, BLOCK_C)
    inside = (s < S)[:, None] & (c < C)[None, :]
    offsets = s[:, None] * stride_x_s + c[None, :]
    acc = tl.zeros((BLOCK_S, BLOCK_C), dtype=tl.float32)
    for j in tl.static_range(2 * TAPS - 1):
        src = t + j - (TAPS - 1)
        frame = x_ptr + b * stride_x_b + src.to(tl.int64) * stride_x_t
        ok = (src >= 0) & (src < T)
        x = tl.load(frame + offsets, mask=tl.where(ok, inside, False), other=0.0).to(tl.float32)
        w = tl.load(w_ptr + c * (2 * TAPS - 1) + j, mask=c < C, other=0.0).to(tl.float32)
        acc += x * w[None, :]
    out = out_ptr + (b * T + t) * S * C + s[:, None] * C + c[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=inside)


_INTERPRETED = not isinstance(_short_conv_kernel, triton.runtime.JITFunction)


def short_conv_triton(x_BTSC: Tensor, symmetric_CJ: Tensor) -> Tensor:
    """``x`` filtered along T by the ``2K−1``-tap symmetric filter ``symmetric_CJ`` (fp32, per channel)."""
    check_kernel_inputs({"x_BTSC": x_BTSC, "weight_CK": symmetric_CJ}, interpreted=_INTERPRETED)
    batch, frames, tokens, channels = x_BTSC.shape
    if batch > 65535 or frames > 65535:
        raise InputError(f"x_BTSC: batch {batch} or frames {frames} above 65535, the kernel's grid limit")
    x = x_BTSC if x_BTSC.stride(-1) == 1 else x_BTSC.contiguous()
    if tokens * max(x.stride(2), channels) >= 2**31:
        raise InputError(f"x_BTSC: a frame of {tokens} × {channels} values overflows the int32 offsets")
    out = torch.empty(batch, frames, tokens, channels, device=x.device, dtype=x.dtype)
    if out.numel() == 0:
        return out
    weight = symmetric_CJ.float().contiguous()
    taps = (weight.shape[1] + 1) // 2
    grid = (triton.cdiv(tokens, BLOCK_S) * triton.cdiv(channels, BLOCK_C), frames, batch)
    with on_device(x):
        _short_conv_kernel[grid](
            x, weight, out, frames, tokens, channels, x.stride(0), x.stride(1), x.stride(2),
            TAPS=taps, BLOCK_S=BLOCK_S, BLOCK_C=BLOCK_C,
        )  # fmt: skip
    return out


def bidirectional_short_conv(x_BTSC: Tensor, weight_CK: Tensor) -> Tensor:
    """See :func:`sana_wm.ops.short_conv.bidirectional_short_conv`."""
    return short_conv_triton(x_BTSC, symmetric_taps(weight_CK.float()))
