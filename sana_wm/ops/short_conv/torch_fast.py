"""The bidirectional short convolution as one symmetric ``2K−1``-tap filter (``"torch"`` backend).

Shape letters: docs/conventions.md (``J = 2K−1`` taps). Same sum as :mod:`sana_wm.ops.short_conv.reference`,
one pass over the padded frames instead of two causal passes and a correction.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def chunk_causal_short_conv(
    x_BTSC: torch.Tensor,
    weight_CK: torch.Tensor,
    starts: Sequence[int],
    tail_BKSC: torch.Tensor | None = None,
) -> torch.Tensor:
    """See :func:`sana_wm.ops.short_conv.chunk_causal_short_conv`: the past taps (and the current one) read
    the frames before ``t`` across chunks, ``tail`` first; a future tap at offset ``d`` counts only where
    ``t + d`` is in ``t``'s chunk."""
    x = x_BTSC.float()
    weight = weight_CK.float()
    taps = weight.shape[-1]
    num_frames = x.shape[1]
    tail = x.new_zeros(x.shape[0], taps - 1, *x.shape[2:]) if tail_BKSC is None else tail_BKSC.float()
    padded = torch.cat([tail, x, x.new_zeros(x.shape[0], taps - 1, *x.shape[2:])], dim=1)
    y = sum(weight[:, j] * padded[:, j : j + num_frames] for j in range(taps))
    ends = [*starts[1:], num_frames]
    # The end of each frame's chunk, filled slice by slice on the device (no host-to-device copy).
    chunk_end_T = torch.empty(num_frames, dtype=torch.int64, device=x.device)
    for start, end in zip(starts, ends, strict=True):
        chunk_end_T[start:end] = end
    frame_T = torch.arange(num_frames, device=x.device)
    for d in range(1, taps):
        valid_T = (frame_T + d < chunk_end_T).to(x.dtype)[None, :, None, None]
        y = y + weight[:, taps - 1 - d] * padded[:, taps - 1 + d : taps - 1 + d + num_frames] * valid_T
    return y.to(x_BTSC.dtype)
