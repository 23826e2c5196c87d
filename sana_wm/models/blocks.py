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
from torch import Tensor, nn

from sana_wm.models.attention import (
    BlockContext,
    CrossAttention,
    GDNCameraAttention,
    SoftmaxCameraAttention,
)
from sana_wm.models.config import SanaWMConfig
from sana_wm.models.embeddings import Fp32Linear
from sana_wm.models.ffn import GLUMBConvTemp
from sana_wm.ops.norm_gate import layer_norm_modulate

LN_EPS = 1e-6


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
        """``x_BMD`` is the fp32 residual stream; without autograd it is updated in place."""
        dtype = self.attn.qkv.weight.dtype  # what the branches compute in
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            self.scale_shift_table.float() + t0_BT6D.float()
        ).unbind(2)  # each (B, T, D)

        a_BMD = layer_norm_modulate(
            x_BMD, shift_msa, scale_msa, eps=LN_EPS, out_dtype=dtype, backend=ctx.backend
        )
        x_BMD = _gated_add(x_BMD, gate_msa, self.attn(a_BMD, ctx))
        del a_BMD
        if self.plucker_proj is not None:
            x_BMD = _add(x_BMD, self.plucker_proj(plucker_BMD))
        x_BMD = _add(x_BMD, self.cross_attn(x_BMD.to(dtype), text_BLD, keep_BL, ctx.backend))
        m_BMD = layer_norm_modulate(
            x_BMD, shift_mlp, scale_mlp, eps=LN_EPS, out_dtype=dtype, backend=ctx.backend
        )
        return _gated_add(x_BMD, gate_mlp, self.mlp(m_BMD, ctx.grid, ctx.ffn_frames_per_chunk, ctx.backend))


def _add(x_BMD: Tensor, y_BMD: Tensor) -> Tensor:
    """``x + y`` in ``x``'s dtype; in place when no autograd graph is being recorded."""
    if torch.is_grad_enabled():
        return x_BMD + y_BMD
    return x_BMD.add_(y_BMD)


def _gated_add(x_BMD: Tensor, gate_BTD: Tensor, y_BMD: Tensor) -> Tensor:
    """``x + gate_t·y`` with the per-frame gate broadcast over each frame's tokens, in ``x``'s dtype."""
    frames = gate_BTD.shape[1]
    x_BTSD, y_BTSD = x_BMD.unflatten(1, (frames, -1)), y_BMD.unflatten(1, (frames, -1))
    if torch.is_grad_enabled():
        return (x_BTSD + gate_BTD[:, :, None] * y_BTSD).flatten(1, 2)
    return x_BTSD.addcmul_(gate_BTD[:, :, None], y_BTSD).flatten(1, 2)


class FinalLayer(nn.Module):
    """Frame-aware ``LN → (1 + scale)·x + shift → Linear(D → C)``; shift, scale = table + raw ``t``."""

    def __init__(self, hidden_size: int, out_channels: int) -> None:
        super().__init__()
        self.scale_shift_table = nn.Parameter(torch.zeros(2, hidden_size))
        self.linear = Fp32Linear(hidden_size, out_channels)

    def forward(self, x_BMD: Tensor, t_BTD: Tensor) -> Tensor:
        """In fp32 whatever the weights' dtype (the output is the velocity the sampler integrates)."""
        table_BT2D = self.scale_shift_table.float() + t_BTD.float()[:, :, None]
        shift, scale = table_BT2D.unbind(2)  # each (B, T, D)
        x_BMD = layer_norm_modulate(x_BMD, shift, scale, eps=LN_EPS, out_dtype=torch.float32)
        return self.linear(x_BMD)
