"""The middle of the FFN: SiLU, a depthwise 3×3 convolution per frame, then the GLU gate.

Shape letters: docs/conventions.md.

``u_XhwG`` is the inverted 1×1 conv's output before its activation, channels last. Per frame and
channel ``c``: ``d = DepthwiseConv3x3(SiLU(u))[c] + bias[c]`` (zero padding 1), then
``out[c] = d[c]·SiLU(d[c + G/2])`` for ``c < G/2`` (value half times the SiLU of the gate half).
Arithmetic in fp32, result in ``u``'s dtype. This is also the ``"torch"`` backend (cuDNN's depthwise
convolution on a channels-last view).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def silu_input(u_XhwG: Tensor, overwrite_input: bool) -> Tensor:
    """``SiLU(u)``, stored into ``u`` when ``overwrite_input`` and no autograd graph records ``u``."""
    inplace = overwrite_input and not (torch.is_grad_enabled() and u_XhwG.requires_grad)
    return F.silu(u_XhwG, inplace=inplace)


def silu_dwconv_glu(u_XhwG: Tensor, weight_G133: Tensor, bias_G: Tensor, *, overwrite_input: bool) -> Tensor:
    """See :func:`sana_wm.ops.glu_conv.silu_dwconv_glu`."""
    s_XhwG = silu_input(u_XhwG, overwrite_input)
    d_XGhw = F.conv2d(
        s_XhwG.permute(0, 3, 1, 2), weight_G133, bias_G, padding=1, groups=u_XhwG.shape[-1]
    )  # conv on a channels-last view
    value, gate = d_XGhw.permute(0, 2, 3, 1).chunk(2, dim=-1)
    return value * F.silu(gate)
