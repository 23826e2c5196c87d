"""Bidirectional depthwise short convolution over latent frames (applied to K and K_cam in GDN blocks).

Shape letters: docs/conventions.md. The definition is in ``reference.py``; ``torch_fast.py`` runs it as one
symmetric ``2K−1``-tap filter; ``triton_kernel.py`` sums those taps in one pass over ``x``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sana_wm.ops.backend import Backend, Dispatch

__all__ = ["bidirectional_short_conv", "chunk_causal_short_conv"]

_IMPLEMENTATIONS = Dispatch(__name__, reference="reference", torch="torch_fast", triton="triton_kernel")


def bidirectional_short_conv(
    x_BTSC: torch.Tensor, weight_CK: torch.Tensor, *, backend: Backend = "torch"
) -> torch.Tensor:
    """Filter ``x_BTSC`` along T with the bidirectional version of the causal kernel ``weight_CK``.

    Computed in fp32, returned in ``x_BTSC.dtype``.
    """
    return _IMPLEMENTATIONS[backend].bidirectional_short_conv(x_BTSC, weight_CK)


def chunk_causal_short_conv(
    x_BTSC: torch.Tensor,
    weight_CK: torch.Tensor,
    *,
    starts: Sequence[int] = (0,),
    tail_BKSC: torch.Tensor | None = None,
    backend: Backend = "torch",
) -> torch.Tensor:
    """The chunk-causal version (the chunk-causal teacher and the streaming student): the causal half runs
    over every frame, after ``tail_BKSC`` (the ``K−1`` frames before frame 0, the previous chunk's last
    inputs; zeros if None), the anti-causal half inside each chunk (chunks begin at ``starts``, the first
    0). One chunk and no tail is :func:`bidirectional_short_conv`. Computed in fp32, returned in
    ``x_BTSC.dtype``.
    """
    return _IMPLEMENTATIONS[backend].chunk_causal_short_conv(x_BTSC, weight_CK, list(starts), tail_BKSC)
