"""The SANA-WM feed-forward block (``GLUMBConvTemp``): a gated inverted-bottleneck conv per frame plus a
residual dense temporal convolution. Both parts can run on a few frames at a time (bounded memory).

Shape letters: ``B`` batch, ``T`` latent frames, ``h``/``w`` latent grid, ``S`` tokens per frame, ``M`` video
tokens (``T·S``), ``D`` model width, ``G`` doubled hidden width (``2·int(D·mlp_ratio)``).

Per frame on the ``h×w`` grid: 1×1 conv ``D → G`` (+bias) → SiLU → depthwise 3×3 (pad 1, +bias) → split into
value (first half) and gate → ``value · SiLU(gate)`` → 1×1 conv ``G/2 → D`` (no bias). Then across frames:
``u + Conv_{(k,1)}(u)``, a dense ``D → D`` convolution over ``k`` neighbouring latent frames (zero padded at
both ends, no bias). The 1×1 convs run as linears on channels-last tokens; the checkpoint's conv layouts
are kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sana_wm.ops import Backend
from sana_wm.ops.glu_conv import silu_dwconv_glu


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

    def forward(
        self,
        x_BMD: Tensor,
        grid: tuple[int, int, int],
        frames_per_chunk: int | None = None,
        backend: Backend = "torch",
    ) -> Tensor:
        """``frames_per_chunk`` bounds the memory of the hidden activations (same result for any value)."""
        batch, tokens, dim = x_BMD.shape
        num_frames = grid[0]
        step = num_frames if frames_per_chunk is None else max(1, min(frames_per_chunk, num_frames))
        x_BTSD = x_BMD.unflatten(1, (num_frames, -1))
        y_BTSD = torch.empty_like(x_BTSD)
        for start in range(0, num_frames, step):
            y_BTSD[:, start : start + step] = self._per_frame(x_BTSD[:, start : start + step], grid, backend)
        out_BTSD = torch.empty_like(y_BTSD)
        weight_KDD = self.t_conv.weight[..., 0].permute(2, 0, 1).contiguous()  # (k, D_out, D_in)
        for start in range(0, num_frames, step):
            self._temporal(y_BTSD, weight_KDD, out_BTSD, start, min(start + step, num_frames))
        return out_BTSD.flatten(1, 2)

    def _per_frame(self, x_BFSD: Tensor, grid: tuple[int, int, int], backend: Backend) -> Tensor:
        """The 2D part on ``F`` frames: inverted 1×1, SiLU, depthwise 3×3, GLU, point 1×1."""
        batch, frames, _, dim = x_BFSD.shape
        _, height, width = grid
        inverted, depth, point = self.inverted_conv.conv, self.depth_conv.conv, self.point_conv.conv
        # A frame slice of a batch is not contiguous: without the copy the bias would be a separate pass over
        # the G-wide output (about 1 ms per 16-frame chunk on an H100) instead of the matmul's epilogue.
        u_XhwG = F.linear(x_BFSD.contiguous(), inverted.weight.flatten(1), inverted.bias).reshape(
            batch * frames, height, width, -1
        )
        glu_XhwH = silu_dwconv_glu(u_XhwG, depth.weight, depth.bias, overwrite_input=True, backend=backend)
        y_XhwD = F.linear(glu_XhwH, point.weight.flatten(1))
        return y_XhwD.reshape(batch, frames, height * width, dim)

    @staticmethod
    def _temporal(y_BTSD: Tensor, weight_KDD: Tensor, out_BTSD: Tensor, start: int, stop: int) -> None:
        """Write ``y + Conv_{(k,1)}(y)`` of frames ``[start, stop)`` into ``out`` (zero frames beyond both
        ends): each tap is a matmul accumulated in place, per batch row (no shifted or padded copies)."""
        num_frames = y_BTSD.shape[1]
        taps = weight_KDD.shape[0]
        half = taps // 2
        out_BFSD = out_BTSD[:, start:stop]
        out_BFSD.copy_(y_BTSD[:, start:stop])
        for j in range(taps):
            lo, hi = max(start, half - j), min(stop, num_frames + half - j)  # outputs whose source exists
            if lo >= hi:
                continue
            for b in range(y_BTSD.shape[0]):
                source = y_BTSD[b, lo + j - half : hi + j - half].flatten(0, 1)
                out_BFSD[b, lo - start : hi - start].flatten(0, 1).addmm_(source, weight_KDD[j].t())
