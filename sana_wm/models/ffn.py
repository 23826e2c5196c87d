"""The SANA-WM feed-forward block (``GLUMBConvTemp``): a gated inverted-bottleneck conv per frame plus a
residual dense temporal convolution.

Shape letters: ``B`` batch, ``T`` latent frames, ``h``/``w`` latent grid, ``S`` tokens per frame, ``M`` video
tokens (``T·S``), ``D`` model width, ``G`` doubled hidden width (``2·int(D·mlp_ratio)``).

Per frame on the ``h×w`` grid: 1×1 conv ``D → G`` (+bias) → SiLU → depthwise 3×3 (pad 1, +bias) → split into
value (first half) and gate → ``value · SiLU(gate)`` → 1×1 conv ``G/2 → D`` (no bias). Then across frames:
``u + Conv_{(k,1)}(u)``, a dense ``D → D`` convolution over ``k`` neighbouring latent frames (zero padded at
both ends, no bias). The 1×1 convs run as linears on channels-last tokens; the checkpoint's conv layouts
are kept.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class _ConvSlot(nn.Module):
    """Holds a conv under the attribute ``conv`` (checkpoint keys ``mlp.inverted_conv.conv.weight``, ...)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv


class GLUMBConvTemp(nn.Module):
    """Gated MBConv FFN with a residual temporal conv; ``forward(x_BMD, grid) -> (B, M, D)``."""

    def __init__(self, dim: int, hidden: int, temporal_kernel: int) -> None:
        super().__init__()
        self.inverted_conv = _ConvSlot(nn.Conv2d(dim, 2 * hidden, kernel_size=1))
        self.depth_conv = _ConvSlot(
            nn.Conv2d(2 * hidden, 2 * hidden, kernel_size=3, padding=1, groups=2 * hidden)
        )
        self.point_conv = _ConvSlot(nn.Conv2d(hidden, dim, kernel_size=1, bias=False))
        self.t_conv = nn.Conv2d(
            dim, dim, kernel_size=(temporal_kernel, 1), padding=(temporal_kernel // 2, 0), bias=False
        )

    def forward(self, x_BMD: Tensor, grid: tuple[int, int, int]) -> Tensor:
        batch, tokens, dim = x_BMD.shape
        num_frames, height, width = grid
        inverted, depth, point = self.inverted_conv.conv, self.depth_conv.conv, self.point_conv.conv
        u_BMG = F.silu(F.linear(x_BMD, inverted.weight.flatten(1), inverted.bias))
        u_XGhw = u_BMG.reshape(batch * num_frames, height, width, -1).permute(
            0, 3, 1, 2
        )  # channels-last view
        u_XhwG = F.conv2d(u_XGhw, depth.weight, depth.bias, padding=1, groups=depth.groups).permute(
            0, 2, 3, 1
        )
        value, gate = u_XhwG.chunk(2, dim=-1)
        y_XhwD = F.linear(value * F.silu(gate), point.weight.flatten(1))
        y_BDTS = y_XhwD.reshape(batch, num_frames, height * width, dim).permute(0, 3, 1, 2)
        y_BDTS = y_BDTS + F.conv2d(y_BDTS, self.t_conv.weight, padding=self.t_conv.padding)
        return y_BDTS.permute(0, 2, 3, 1).reshape(batch, tokens, dim)
