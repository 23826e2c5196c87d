"""The SANA-WM transformer block (GDN or softmax self-attention) and the frame-aware final layer.

Shape letters: ``B`` batch, ``T`` latent frames, ``S`` tokens per frame, ``M`` video tokens (``T·S``), ``D``
model width, ``L`` text tokens, ``C`` output channels.

Layout rule: block ``i`` uses softmax self-attention iff ``(i + 1) % softmax_every_n == 0`` (blocks 3, 7, 11,
15, 19 of the release), frame-wise GDN otherwise (:meth:`SanaWMConfig.is_softmax_block`).

Modulation is *frame-aware*: each latent frame has its own timestep, so the six adaLN vectors
(shift/scale/gate for attention, then for the FFN) are ``scale_shift_table + t_block(t)`` per frame, broadcast
over that frame's tokens. One block:

    a = LN(x)·(1 + scale_msa) + shift_msa            (LayerNorm without affine, eps 1e-6)
    x = x + gate_msa · SelfAttn(a)
    x = x + plucker_proj(plucker)                     (no gate, no timestep; blocks i < plucker_blocks)
    x = x + CrossAttn(x, text)                        (no pre-norm, no gate)
    x = x + gate_mlp · FFN(LN(x)·(1 + scale_mlp) + shift_mlp)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sana_wm.models.attention import (
    BlockContext,
    CrossAttention,
    GDNCameraAttention,
    SoftmaxCameraAttention,
)
from sana_wm.models.config import SanaWMConfig
from sana_wm.models.ffn import GLUMBConvTemp

LN_EPS = 1e-6


def _layer_norm(x_BMD: Tensor) -> Tensor:
    return F.layer_norm(x_BMD, x_BMD.shape[-1:], eps=LN_EPS)


class SanaWMBlock(nn.Module):
    """One transformer block: ``forward(x_BMD, text_BLD, keep_BL, t0_BT6D, plucker_BMD, ctx)`` → ``x_BMD``."""

    def __init__(self, config: SanaWMConfig, index: int) -> None:
        super().__init__()
        dim = config.hidden_size
        self.scale_shift_table = nn.Parameter(torch.zeros(6, dim))
        self.plucker_proj = nn.Linear(dim, dim) if index < config.plucker_blocks else None
        if config.is_softmax_block(index):
            self.attn: GDNCameraAttention | SoftmaxCameraAttention = SoftmaxCameraAttention(
                dim, config.head_dim
            )
        else:
            self.attn = GDNCameraAttention(dim, config.head_dim, config.short_conv_kernel)
        self.cross_attn = CrossAttention(dim, config.cross_attn_heads)
        self.mlp = GLUMBConvTemp(dim, config.ffn_hidden, config.temporal_kernel)

    def forward(
        self,
        x_BMD: Tensor,
        text_BLD: Tensor,
        keep_BL: Tensor,
        t0_BT6D: Tensor,
        plucker_BMD: Tensor,
        ctx: BlockContext,
    ) -> Tensor:
        num_frames = ctx.grid[0]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            self.scale_shift_table + t0_BT6D
        ).split(1, dim=2)  # each (B, T, 1, D), broadcast over the frame's tokens

        a_BTSD = _layer_norm(x_BMD).unflatten(1, (num_frames, -1)) * (1 + scale_msa) + shift_msa
        attn_BTSD = self.attn(a_BTSD.flatten(1, 2), ctx).unflatten(1, (num_frames, -1))
        x_BMD = x_BMD + (gate_msa * attn_BTSD).flatten(1, 2)
        if self.plucker_proj is not None:
            x_BMD = x_BMD + self.plucker_proj(plucker_BMD)
        x_BMD = x_BMD + self.cross_attn(x_BMD, text_BLD, keep_BL)
        m_BTSD = _layer_norm(x_BMD).unflatten(1, (num_frames, -1)) * (1 + scale_mlp) + shift_mlp
        mlp_BTSD = self.mlp(m_BTSD.flatten(1, 2), ctx.grid, ctx.ffn_frames_per_chunk, ctx.backend).unflatten(
            1, (num_frames, -1)
        )
        return x_BMD + (gate_mlp * mlp_BTSD).flatten(1, 2)


class FinalLayer(nn.Module):
    """Frame-aware ``LN → (1 + scale)·x + shift → Linear(D → C)``; shift, scale = table + raw ``t``."""

    def __init__(self, hidden_size: int, out_channels: int) -> None:
        super().__init__()
        self.scale_shift_table = nn.Parameter(torch.zeros(2, hidden_size))
        self.linear = nn.Linear(hidden_size, out_channels)

    def forward(self, x_BMD: Tensor, t_BTD: Tensor) -> Tensor:
        num_frames = t_BTD.shape[1]
        shift, scale = (self.scale_shift_table + t_BTD[:, :, None]).split(1, dim=2)  # each (B, T, 1, D)
        x_BTSD = _layer_norm(x_BMD).unflatten(1, (num_frames, -1)) * (1 + scale) + shift
        return self.linear(x_BTSD.flatten(1, 2))
