"""The SANA-WM feed-forward block (``GLUMBConvTemp``): a gated inverted-bottleneck conv per frame plus a
residual dense temporal convolution, with its chunk-causal form.

Shape letters: docs/conventions.md.

Chunk-causal (``sana_wm.models.causal``): the temporal conv reads earlier frames across chunks (a streamed
chunk's first frame reads the previous chunk's last frame, kept in the cache) and later frames inside the
chunk only (zero past a chunk's end), as the official ``ChunkGLUMBConvTemp`` / ``CachedGLUMBConvTemp``.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sana_wm.models.attention import init_param_
from sana_wm.models.causal import BlockCache, ChunkLayout
from sana_wm.ops import Backend
from sana_wm.ops.glu_conv import silu_dwconv_glu


def _init_conv_default(conv: nn.Conv2d | nn.Conv3d) -> None:
    """PyTorch's default conv init (``reset_parameters``): Kaiming-uniform ``a=√5`` weight, bias
    ``U(±1/√fan_in)``."""
    init_param_(conv.weight, functools.partial(nn.init.kaiming_uniform_, a=math.sqrt(5)))
    if conv.bias is not None:
        bound = 1 / math.sqrt(math.prod(conv.weight.shape[1:]))
        init_param_(conv.bias, functools.partial(nn.init.uniform_, a=-bound, b=bound))


class _ConvSlot(nn.Module):
    """Holds a conv under the attribute ``conv`` (checkpoint keys ``mlp.inverted_conv.conv.weight``, ...)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv


class GLUMBConvTemp(nn.Module):
    """The feed-forward block: a gated inverted-bottleneck conv per frame plus a residual dense temporal conv.

    Per frame on the ``h×w`` grid: 1×1 conv ``D → G`` (+bias, ``G = 2·hidden``) → SiLU → depthwise 3×3 (pad 1,
    +bias) → split into value (first half) and gate → ``value · SiLU(gate)`` → 1×1 conv ``G/2 → D`` (no bias).
    Then across frames: ``u + Conv_{(k,1)}(u)``, a dense ``D → D`` convolution over ``k`` neighbouring latent
    frames (zero padded at both ends, no bias). The 1×1 convs run as linears on channels-last tokens; the
    checkpoint's conv layouts are kept. Both parts can run on a few frames at a time (bounded memory).
    """

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

    @torch.no_grad()
    def init_weights(self) -> None:
        """PyTorch's conv defaults, as the official model leaves them."""
        for conv in (self.inverted_conv.conv, self.depth_conv.conv, self.point_conv.conv, self.t_conv):
            _init_conv_default(conv)

    def forward(
        self,
        x_BMD: Tensor,
        grid: tuple[int, int, int],
        frames_per_chunk: int | None = None,
        backend: Backend = "torch",
        *,
        layout: ChunkLayout | None = None,
        cache: BlockCache | None = None,
        write_cache: bool = False,
    ) -> Tensor:
        """``(B, M, D) → (B, M, D)``; ``frames_per_chunk`` bounds the memory of the hidden activations (same
        result for any value). With a chunk ``layout`` the temporal conv is chunk-causal; it reads the
        previous chunk's last frames from ``cache`` and, with ``write_cache``, stores this call's."""
        num_frames = grid[0]
        step = num_frames if frames_per_chunk is None else max(1, min(frames_per_chunk, num_frames))
        x_BTSD = x_BMD.unflatten(1, (num_frames, -1))
        y_BTSD = torch.empty_like(x_BTSD)
        for start in range(0, num_frames, step):
            y_BTSD[:, start : start + step] = self._per_frame(x_BTSD[:, start : start + step], grid, backend)
        out_BTSD = torch.empty_like(y_BTSD)
        weight_KDD = self.t_conv.weight[..., 0].permute(2, 0, 1).contiguous()  # (k, D_out, D_in)
        ends = None if layout is None else [end for _, end in layout.bounds(num_frames)]
        left = None if cache is None else cache.ffn_tail
        for start in range(0, num_frames, step):
            self._temporal(y_BTSD, weight_KDD, out_BTSD, start, min(start + step, num_frames), ends, left)
        if cache is not None and write_cache:
            half = weight_KDD.shape[0] // 2
            history = y_BTSD if left is None else torch.cat([left, y_BTSD], dim=1)
            cache.ffn_tail = history[:, history.shape[1] - half :].detach().clone()
        return out_BTSD.flatten(1, 2)

    def _per_frame(self, x_BTSD: Tensor, grid: tuple[int, int, int], backend: Backend) -> Tensor:
        """The 2D part on a chunk of frames: inverted 1×1, SiLU, depthwise 3×3, GLU, point 1×1."""
        batch, frames, _, dim = x_BTSD.shape
        _, height, width = grid
        inverted, depth, point = self.inverted_conv.conv, self.depth_conv.conv, self.point_conv.conv
        # A frame slice of a batch is not contiguous; the copy lets the bias ride the matmul's epilogue
        # instead of costing a separate pass over the G-wide output.
        u_XhwG = F.linear(x_BTSD.contiguous(), inverted.weight.flatten(1), inverted.bias).reshape(
            batch * frames, height, width, -1
        )
        # (X, h, w, G/2): value · SiLU(gate) after the depthwise conv
        glu = silu_dwconv_glu(u_XhwG, depth.weight, depth.bias, overwrite_input=True, backend=backend)
        y_XhwD = F.linear(glu, point.weight.flatten(1))
        return y_XhwD.reshape(batch, frames, height * width, dim)

    @staticmethod
    def _temporal(
        y_BTSD: Tensor,
        weight_KDD: Tensor,
        out_BTSD: Tensor,
        start: int,
        stop: int,
        chunk_ends: list[int] | None = None,
        left_BLSD: Tensor | None = None,
    ) -> None:
        """Write ``y + Conv_{(k,1)}(y)`` of frames ``[start, stop)`` into ``out`` (zero frames beyond both
        ends): each tap is a matmul accumulated in place, per batch row (no shifted or padded copies).

        Chunk-causal: with ``chunk_ends`` (the end frame of each chunk) a tap reading a later frame counts
        only inside the output frame's chunk; ``left_BLSD`` holds the frames before frame 0 (the previous
        chunk's last ones), which earlier taps read instead of zeros.
        """
        num_frames = y_BTSD.shape[1]
        taps = weight_KDD.shape[0]
        half = taps // 2
        chunk_BTSD = out_BTSD[:, start:stop]
        chunk_BTSD.copy_(y_BTSD[:, start:stop])
        for j in range(taps):
            offset = j - half  # the tap reads frame t + offset
            segments = [(0, num_frames)]
            if offset > 0 and chunk_ends is not None:
                segments = list(zip([0, *chunk_ends[:-1]], chunk_ends, strict=True))
            for seg_start, seg_end in segments:
                # outputs whose source exists (inside the segment for later frames)
                lo, hi = (
                    max(start, seg_start, -offset),
                    min(stop, seg_end - max(offset, 0), num_frames - offset),
                )
                for b in range(y_BTSD.shape[0]) if lo < hi else ():
                    source = y_BTSD[b, lo + offset : hi + offset].flatten(0, 1)
                    chunk_BTSD[b, lo - start : hi - start].flatten(0, 1).addmm_(source, weight_KDD[j].t())
            if offset < 0 and left_BLSD is not None:
                history = left_BLSD.shape[1]
                lo, hi = max(start, -offset - history), min(stop, -offset)  # outputs reading before frame 0
                for b in range(y_BTSD.shape[0]) if lo < hi else ():
                    source = left_BLSD[b, history + lo + offset : history + hi + offset].flatten(0, 1)
                    chunk_BTSD[b, lo - start : hi - start].flatten(0, 1).addmm_(source, weight_KDD[j].t())
