"""Bidirectional depthwise short convolution over latent frames (applied to K and K_cam in GDN blocks).

Shape letters: docs/conventions.md.

The official model stores a *causal* depthwise kernel ``w[0..K−1]`` (fla ``ShortConvolution`` layout
``(C, 1, K)``; ``w[K−1]`` multiplies the current frame) and makes it bidirectional by running it forwards and
on the time-reversed sequence, then subtracting one copy of the centre tap:

    y[t] = Σ_j w[j]·x[t−K+1+j] + Σ_j w[j]·x[t+K−1−j] − w[K−1]·x[t]      (x = 0 outside [0, T))

which is one symmetric ``2K−1``-tap filter ``[w0 … w_{K−2}, w_{K−1}, w_{K−2} … w0]``. No bias, no activation.
Each spatial position and channel is filtered independently along T. This module computes it exactly as
written: the causal filter forwards, backwards, minus the centre tap.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _causal_conv_BTSC(x_BTSC: torch.Tensor, weight_CK: torch.Tensor) -> torch.Tensor:
    taps = weight_CK.shape[-1]
    padded = F.pad(x_BTSC, (0, 0, 0, 0, taps - 1, 0))
    num_frames = x_BTSC.shape[1]
    return sum(weight_CK[:, j] * padded[:, j : j + num_frames] for j in range(taps))


def bidirectional_short_conv(x_BTSC: torch.Tensor, weight_CK: torch.Tensor) -> torch.Tensor:
    """See :func:`sana_wm.ops.short_conv.bidirectional_short_conv`."""
    x = x_BTSC.float()
    weight = weight_CK.float()
    forward = _causal_conv_BTSC(x, weight)
    backward = _causal_conv_BTSC(x.flip(1), weight).flip(1)
    y = forward + backward - weight[:, -1] * x
    return y.to(x_BTSC.dtype)


def chunk_causal_short_conv(
    x_BTSC: torch.Tensor,
    weight_CK: torch.Tensor,
    starts: Sequence[int],
    tail_BKSC: torch.Tensor | None = None,
) -> torch.Tensor:
    """See :func:`sana_wm.ops.short_conv.chunk_causal_short_conv`."""
    x = x_BTSC.float()
    weight = weight_CK.float()
    taps = weight.shape[-1]
    tail = x.new_zeros(x.shape[0], taps - 1, *x.shape[2:]) if tail_BKSC is None else tail_BKSC.float()
    forward = _causal_conv_BTSC(torch.cat([tail, x], dim=1), weight)[:, taps - 1 :]
    backward = torch.zeros_like(x)
    ends = [*starts[1:], x.shape[1]]
    for start, end in zip(starts, ends, strict=True):
        backward[:, start:end] = _causal_conv_BTSC(x[:, start:end].flip(1), weight).flip(1)
    y = forward + backward - weight[:, -1] * x
    return y.to(x_BTSC.dtype)
