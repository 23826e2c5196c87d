"""Input embeddings: latent/Plücker patch embedding, timestep embedding, caption projection.

Shape letters: ``B`` batch, ``C`` input channels, ``T`` latent frames, ``h``/``w`` latent grid, ``M`` video
tokens (``T·h·w``, frame-major), ``D`` model width, ``L`` text tokens, ``K`` caption channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TIMESTEP_CHANNELS = 256


class Fp32Linear(nn.Linear):
    """A linear layer that computes in fp32 whatever its weights' dtype (weights upcast for the call): for the
    small modules outside the blocks, where bf16 rounding costs accuracy and fp32 costs nothing measurable.
    Same parameters and checkpoint keys as ``nn.Linear``."""

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias.float()
        return F.linear(x.float(), self.weight.float(), bias)


class PatchEmbed3d(nn.Module):
    """Per-token linear map of a ``(B, C, T, h, w)`` map to ``(B, M, D)`` fp32 tokens (patch size 1×1×1).

    The weight keeps the checkpoint's ``Conv3d`` layout ``(D, C, 1, 1, 1)`` under the key ``proj``.
    """

    def __init__(self, in_channels: int, hidden_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_channels, hidden_size, kernel_size=1)

    def forward(self, x_BCThw: Tensor) -> Tensor:
        tokens_BMC = x_BCThw.permute(0, 2, 3, 4, 1).flatten(1, 3).float()
        return F.linear(tokens_BMC, self.proj.weight.flatten(1).float(), self.proj.bias.float())


def timestep_sinusoid(t_X: Tensor, channels: int = TIMESTEP_CHANNELS, max_period: float = 10000.0) -> Tensor:
    """Sinusoid ``(X, channels)`` in fp32, ordered ``[cos | sin]``, frequencies ``exp(−ln(P)·i/half)``."""
    half = channels // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t_X.device) / half
    )
    args = t_X.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """``Linear(256 → D) → SiLU → Linear(D → D)`` on the sinusoid of (already floored) timesteps, in fp32."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear_1 = Fp32Linear(TIMESTEP_CHANNELS, hidden_size)
        self.linear_2 = Fp32Linear(hidden_size, hidden_size)

    def forward(self, t_X: Tensor) -> Tensor:
        return self.linear_2(F.silu(self.linear_1(timestep_sinusoid(t_X))))


class _Mlp(nn.Module):
    def __init__(self, in_features: int, hidden_size: int) -> None:
        super().__init__()
        self.fc1 = Fp32Linear(in_features, hidden_size)
        self.fc2 = Fp32Linear(hidden_size, hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class CaptionEmbedder(nn.Module):
    """Text features ``(B, L, K)`` → ``(B, L, D)`` in fp32: ``fc1 → GELU(tanh) → fc2`` (``y_proj``)."""

    def __init__(self, caption_channels: int, hidden_size: int) -> None:
        super().__init__()
        self.y_proj = _Mlp(caption_channels, hidden_size)

    def forward(self, text_BLK: Tensor) -> Tensor:
        return self.y_proj(text_BLK)
