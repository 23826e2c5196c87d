"""The bidirectional short convolution as one symmetric ``2K−1``-tap filter (``"torch"`` backend).

Shape letters: docs/conventions.md (``J = 2K−1`` taps). Same sum as :mod:`sana_wm.ops.short_conv.reference`,
one pass over the padded frames instead of two causal passes and a correction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symmetric_taps(weight_CK: torch.Tensor) -> torch.Tensor:
    """The ``2K−1`` taps ``[w0 … w_{K−1} … w0]`` of the bidirectional filter, oldest frame first."""
    return torch.cat([weight_CK, weight_CK[:, :-1].flip(-1)], dim=-1)


def bidirectional_short_conv(x_BTSC: torch.Tensor, weight_CK: torch.Tensor) -> torch.Tensor:
    """See :func:`sana_wm.ops.short_conv.bidirectional_short_conv`."""
    x = x_BTSC.float()
    weight = weight_CK.float()
    taps = weight.shape[-1]
    symmetric_CJ = symmetric_taps(weight)
    padded = F.pad(x, (0, 0, 0, 0, taps - 1, taps - 1))
    num_frames = x.shape[1]
    y = sum(symmetric_CJ[:, j] * padded[:, j : j + num_frames] for j in range(2 * taps - 1))
    return y.to(x_BTSC.dtype)
