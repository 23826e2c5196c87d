"""The middle of the FFN: SiLU, a depthwise 3×3 convolution per frame, then the GLU gate.

Shape letters: ``X`` frames (batch × latent frames), ``h``/``w`` latent grid, ``G`` doubled hidden width,
``H = G/2``.

``u_XhwG`` is the inverted 1×1 conv's output before its activation, channels last. Per frame and channel
``c``: ``d = DepthwiseConv3x3(SiLU(u))[c] + bias[c]`` (zero padding 1), then ``out[c] = d[c]·SiLU(d[c + H])``
for ``c < H`` (value half times the SiLU of the gate half). Arithmetic in fp32, result in ``u``'s dtype.

The ``"triton"`` path applies SiLU in one elementwise pass (in place when the caller gives up ``u``), then
one kernel loads the 3×3 neighbourhood of a block of pixels for a block of value channels and the matching
gate channels, sums the nine taps in fp32 and writes only the ``H`` gated channels (eager PyTorch writes and
reads the ``G``-wide tensor three more times; on an H100 cuDNN's grouped kernel for this channels-last
depthwise conv alone takes ~170 ms per block at 961 frames). SiLU is not applied on load: each input value is
read by nine output pixels, and nine exponentials per value made the first version of the kernel bound by
the GPU's special-function units (8 ms per 16-frame chunk on an H100, 5× the memory-bound time).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sana_wm.ops import Backend, check_backend


def silu_dwconv_glu(
    u_XhwG: Tensor,
    weight_G133: Tensor,
    bias_G: Tensor,
    *,
    overwrite_input: bool = False,
    backend: Backend = "torch",
) -> Tensor:
    """``value · SiLU(gate)`` of the depthwise-convolved ``SiLU(u)``; returns ``(X, h, w, G/2)``.

    ``overwrite_input=True`` lets the op store ``SiLU(u)`` into ``u`` (saves a ``G``-wide temporary); it is
    honoured only where no autograd graph records ``u``."""
    check_backend(backend)
    inplace = overwrite_input and not (torch.is_grad_enabled() and u_XhwG.requires_grad)
    s_XhwG = F.silu(u_XhwG, inplace=inplace)
    if backend == "triton":
        from sana_wm.ops.triton_glu_conv import dwconv_glu_triton

        return dwconv_glu_triton(s_XhwG, weight_G133, bias_G)
    d_XGhw = F.conv2d(
        s_XhwG.permute(0, 3, 1, 2), weight_G133, bias_G, padding=1, groups=u_XhwG.shape[-1]
    )  # conv on a channels-last view
    value, gate = d_XGhw.permute(0, 2, 3, 1).chunk(2, dim=-1)
    return value * F.silu(gate)
