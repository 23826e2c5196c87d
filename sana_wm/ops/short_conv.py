"""Bidirectional depthwise short convolution over latent frames (applied to K and K_cam in GDN blocks).

Shape letters: ``B`` batch, ``T`` latent frames, ``S`` tokens per frame, ``C`` channels, ``K`` taps.

The official model stores a *causal* depthwise kernel ``w[0..K−1]`` (fla ``ShortConvolution`` layout
``(C, 1, K)``; ``w[K−1]`` multiplies the current frame) and makes it bidirectional by running it forwards and
on the time-reversed sequence, then subtracting one copy of the centre tap:

    y[t] = Σ_j w[j]·x[t−K+1+j] + Σ_j w[j]·x[t+K−1−j] − w[K−1]·x[t]      (x = 0 outside [0, T))

which is one symmetric ``2K−1``-tap filter ``[w0 … w_{K−2}, w_{K−1}, w_{K−2} … w0]``. No bias, no activation.
Each spatial position and channel is filtered independently along T.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sana_wm.ops import Backend, check_backend


def _causal_conv_BTSC(x_BTSC: torch.Tensor, weight_CK: torch.Tensor) -> torch.Tensor:
    taps = weight_CK.shape[-1]
    padded = F.pad(x_BTSC, (0, 0, 0, 0, taps - 1, 0))
    num_frames = x_BTSC.shape[1]
    return sum(weight_CK[:, j] * padded[:, j : j + num_frames] for j in range(taps))


def _symmetric(weight_CK: torch.Tensor) -> torch.Tensor:
    """The ``2K−1`` taps ``[w0 … w_{K−1} … w0]`` of the bidirectional filter, oldest frame first."""
    return torch.cat([weight_CK, weight_CK[:, :-1].flip(-1)], dim=-1)


def bidirectional_short_conv(
    x_BTSC: torch.Tensor, weight_CK: torch.Tensor, *, backend: Backend = "torch"
) -> torch.Tensor:
    """Filter ``x_BTSC`` along T with the bidirectional version of the causal kernel ``weight_CK``.

    Computed in fp32, returned in ``x_BTSC.dtype``. ``"triton"``: one pass over ``x``
    (``triton_short_conv.py``).
    """
    check_backend(backend)
    if backend == "triton":
        from sana_wm.ops.triton_short_conv import short_conv_triton

        return short_conv_triton(x_BTSC, _symmetric(weight_CK.float()))
    x = x_BTSC.float()
    weight = weight_CK.float()
    if backend == "reference":
        forward = _causal_conv_BTSC(x, weight)
        backward = _causal_conv_BTSC(x.flip(1), weight).flip(1)
        y = forward + backward - weight[:, -1] * x
    else:
        taps = weight.shape[-1]
        symmetric_CJ = _symmetric(weight)
        padded = F.pad(x, (0, 0, 0, 0, taps - 1, taps - 1))
        num_frames = x.shape[1]
        y = sum(symmetric_CJ[:, j] * padded[:, j : j + num_frames] for j in range(2 * taps - 1))
    return y.to(x_BTSC.dtype)
