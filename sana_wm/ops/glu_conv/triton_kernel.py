"""Triton kernel of :func:`sana_wm.ops.glu_conv.silu_dwconv_glu` (forward only).

Shape letters: docs/conventions.md.

SiLU runs first as one elementwise pass (in place when the caller gives up ``u``): each input value is read
by nine output pixels, and applying SiLU on load would cost nine exponentials per value. Then the kernel,
grid (pixel blocks of ``BLOCK_P`` over all ``X·h·w`` pixels, channel blocks of ``BLOCK_C`` over the ``G/2``
value channels): a program sums the nine taps of the activated input ``s = SiLU(u)`` for its value channels
``c`` and gate channels ``c + G/2`` with fp32 accumulators, masks neighbours outside the frame (zero padding),
adds the biases and stores ``value·SiLU(gate)``, only the ``G/2`` gated channels. ``s`` is made contiguous
channels-last ``(X, h, w, G)``; launches cover whole frames and under 2**31 elements each, so int32 offsets
suffice.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from sana_wm.ops.glu_conv.reference import silu_input

# Launch shape: pixels × value channels per program, warps (benchmarks/attention_head_dim.py times others).
BLOCK_P, BLOCK_C, WARPS = 32, 64, 4


@triton.jit
def _dwconv_glu_kernel(
    s_ptr,
    w_ptr,
    b_ptr,
    out_ptr,
    num_pixels,
    height,
    width,
    hidden,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    pid_p = tl.program_id(0)
    pid_c = tl.program_id(1)
    pix = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    chan = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    pix_ok = pix < num_pixels
    chan_ok = chan < hidden
    per_frame = height * width
    frame = pix // per_frame
    rem = pix % per_frame
    row = rem // width
    col = rem % width
    channels = 2 * hidden
    acc_v = tl.full((BLOCK_P, BLOCK_C), 0.0, tl.float32)
    acc_g = tl.full((BLOCK_P, BLOCK_C), 0.0, tl.float32)
    for tap in tl.static_range(9):
        dy = tap // 3 - 1
        dx = tap % 3 - 1
        r = row + dy
        c = col + dx
        ok = pix_ok & (r >= 0) & (r < height) & (c >= 0) & (c < width)
        src = (frame * per_frame + r * width + c) * channels
        mask = ok[:, None] & chan_ok[None, :]
        s_v = tl.load(s_ptr + src[:, None] + chan[None, :], mask=mask, other=0.0).to(tl.float32)
        s_g = tl.load(s_ptr + src[:, None] + (chan[None, :] + hidden), mask=mask, other=0.0).to(tl.float32)
        w_v = tl.load(w_ptr + chan * 9 + tap, mask=chan_ok, other=0.0).to(tl.float32)
        w_g = tl.load(w_ptr + (chan + hidden) * 9 + tap, mask=chan_ok, other=0.0).to(tl.float32)
        acc_v += s_v * w_v[None, :]
        acc_g += s_g * w_g[None, :]
    acc_v += tl.load(b_ptr + chan, mask=chan_ok, other=0.0).to(tl.float32)[None, :]
    acc_g += tl.load(b_ptr + chan + hidden, mask=chan_ok, other=0.0).to(tl.float32)[None, :]
    out = acc_v * acc_g / (1.0 + tl.exp(-acc_g))  # SiLU written out: tl.sigmoid is a jit helper
    dst = pix[:, None] * hidden + chan[None, :]
    tl.store(out_ptr + dst, out.to(out_ptr.dtype.element_ty), mask=pix_ok[:, None] & chan_ok[None, :])


def dwconv_glu_triton(s_XhwG: Tensor, weight_G133: Tensor, bias_G: Tensor) -> Tensor:
    """The depthwise 3×3 → GLU of :func:`sana_wm.ops.glu_conv.silu_dwconv_glu`, given ``s = SiLU(u)``."""
    frames, height, width, channels = s_XhwG.shape
    hidden = channels // 2
    s = s_XhwG.contiguous()
    out = torch.empty(frames, height, width, hidden, device=s.device, dtype=s.dtype)
    # Offsets are int32 inside the kernel: launch on slices of whole frames of under 2**31 elements each.
    per_launch = max(1, (2**31 - 1) // (height * width * channels))
    for start in range(0, frames, per_launch):
        s_part, out_part = s[start : start + per_launch], out[start : start + per_launch]
        num_pixels = s_part.shape[0] * height * width
        grid = (triton.cdiv(num_pixels, BLOCK_P), triton.cdiv(hidden, BLOCK_C))
        _dwconv_glu_kernel[grid](
            s_part,
            weight_G133.reshape(channels, 9).contiguous(),
            bias_G.contiguous(),
            out_part,
            num_pixels,
            height,
            width,
            hidden,
            BLOCK_P=BLOCK_P,
            BLOCK_C=BLOCK_C,
            num_warps=WARPS,
        )
    return out


def silu_dwconv_glu(u_XhwG: Tensor, weight_G133: Tensor, bias_G: Tensor, *, overwrite_input: bool) -> Tensor:
    """See :func:`sana_wm.ops.glu_conv.silu_dwconv_glu`."""
    return dwconv_glu_triton(silu_input(u_XhwG, overwrite_input), weight_G133, bias_G)
