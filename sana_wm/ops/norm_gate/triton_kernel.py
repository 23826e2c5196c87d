"""Triton kernels of :mod:`sana_wm.ops.norm_gate` (forward only).

Shape letters: docs/conventions.md.

- ``layer_norm_modulate``: grid ``(M, B)``, one program per token row held in registers (``D`` padded to a
  power of two, 4096 for 2240): fp32 mean and variance (two passes over the registers, as
  ``F.layer_norm``), then ``(x − mean)·rstd·(1 + scale_t) + shift_t`` with the row's frame ``t = m // S``,
  one rounding to the output dtype. Row offsets are int64.
- ``silu_gate_sum``: a flat elementwise kernel over contiguous inputs, ``BLOCK`` values per program, int64
  offsets.

Both run under the Triton interpreter on the CPU for the tests (``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from sana_wm.errors import InputError
from sana_wm.ops.launch import check_kernel_inputs, on_device

ROW_WARPS = 8
GATE_BLOCK = 2048


@triton.jit
def _layer_norm_modulate_kernel(
    x_ptr,
    shift_ptr,
    scale_ptr,
    out_ptr,
    M,
    D,
    per_frame,
    eps,
    stride_x_b,
    stride_x_m,
    stride_t_b,
    stride_t_t,
    BLOCK_D: tl.constexpr,
):
    m = tl.program_id(0).to(tl.int64)
    b = tl.program_id(1).to(tl.int64)
    c = tl.arange(0, BLOCK_D)
    valid = c < D
    x = tl.load(x_ptr + b * stride_x_b + m * stride_x_m + c, mask=valid, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / D
    centred = tl.where(valid, x - mean, 0.0)
    rstd = tl.rsqrt(tl.sum(centred * centred, axis=0) / D + eps)
    table = b * stride_t_b + (m // per_frame) * stride_t_t + c
    shift = tl.load(shift_ptr + table, mask=valid, other=0.0).to(tl.float32)
    scale = tl.load(scale_ptr + table, mask=valid, other=0.0).to(tl.float32)
    out = centred * rstd * (1.0 + scale) + shift
    tl.store(out_ptr + (b * M + m) * D + c, out.to(out_ptr.dtype.element_ty), mask=valid)


@triton.jit
def _silu_gate_sum_kernel(a_ptr, b_ptr, g_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < n
    a = tl.load(a_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    out = (a + b) * g / (1.0 + tl.exp(-g))
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=ok)


_INTERPRETED = not isinstance(_silu_gate_sum_kernel, triton.runtime.JITFunction)


def layer_norm_modulate(
    x_BMD: Tensor, shift_BTD: Tensor, scale_BTD: Tensor, *, eps: float, out_dtype: torch.dtype
) -> Tensor:
    """See :func:`sana_wm.ops.norm_gate.layer_norm_modulate` (which checks the shapes)."""
    check_kernel_inputs(
        {"x_BMD": x_BMD, "shift_BTD": shift_BTD, "scale_BTD": scale_BTD}, interpreted=_INTERPRETED
    )
    batch, tokens, dim = x_BMD.shape
    if batch > 65535:
        raise InputError(f"x_BMD: batch {batch} is above 65535, the kernel's grid limit")
    x = x_BMD if x_BMD.stride(-1) == 1 else x_BMD.contiguous()
    shift, scale = shift_BTD.contiguous(), scale_BTD.contiguous()
    out = torch.empty(batch, tokens, dim, device=x.device, dtype=out_dtype)
    if out.numel() == 0:
        return out
    with on_device(x):
        _layer_norm_modulate_kernel[(tokens, batch)](
            x,
            shift,
            scale,
            out,
            tokens,
            dim,
            tokens // shift.shape[1],
            eps,
            x.stride(0),
            x.stride(1),
            shift.stride(0),
            shift.stride(1),
            BLOCK_D=max(16, triton.next_power_of_2(dim)),
            num_warps=ROW_WARPS,
        )
    return out


def silu_gate_sum(a: Tensor, b: Tensor, g: Tensor) -> Tensor:
    """See :func:`sana_wm.ops.norm_gate.silu_gate_sum` (which checks the shapes)."""
    check_kernel_inputs({"a": a, "b": b, "g": g}, interpreted=_INTERPRETED)
    a, b, g = a.contiguous(), b.contiguous(), g.contiguous()
    out = torch.empty_like(a)
    if out.numel() == 0:
        return out
    with on_device(a):
        _silu_gate_sum_kernel[(triton.cdiv(a.numel(), GATE_BLOCK),)](
            a, b, g, out, a.numel(), BLOCK=GATE_BLOCK
        )
    return out
