"""Two elementwise steps of every block: the frame-wise adaLN modulation and the SiLU output gate.

Shape letters: docs/conventions.md. The definitions are in ``reference.py`` (also the ``"torch"`` backend);
the ``triton_kernel.py`` kernels read each input once and write the output once, where eager PyTorch makes
several fp32 temporaries of the full ``(B, M, D)`` size.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sana_wm.errors import InputError
from sana_wm.ops.backend import Backend, Dispatch

__all__ = ["layer_norm_modulate", "silu_gate_sum"]

_IMPLEMENTATIONS = Dispatch(__name__, reference="reference", torch="reference", triton="triton_kernel")


def layer_norm_modulate(
    x_BMD: Tensor,
    shift_BTD: Tensor,
    scale_BTD: Tensor,
    *,
    eps: float,
    out_dtype: torch.dtype,
    backend: Backend = "torch",
) -> Tensor:
    """``LN(x)·(1 + scale) + shift`` with per-frame ``shift``/``scale`` broadcast over each frame's tokens;
    ``(B, M, D)`` in ``out_dtype``."""
    batch, tokens, dim = x_BMD.shape
    for name, table in (("shift_BTD", shift_BTD), ("scale_BTD", scale_BTD)):
        if table.dim() != 3 or table.shape[0] != batch or table.shape[2] != dim or tokens % table.shape[1]:
            raise InputError(
                f"{name}: expected (B={batch}, T, D={dim}) with T dividing {tokens} tokens, "
                f"got {tuple(table.shape)}"
            )
    if shift_BTD.shape != scale_BTD.shape:
        raise InputError(f"scale_BTD: shape {tuple(scale_BTD.shape)} differs from shift_BTD's")
    return _IMPLEMENTATIONS[backend].layer_norm_modulate(
        x_BMD, shift_BTD, scale_BTD, eps=eps, out_dtype=out_dtype
    )


def silu_gate_sum(a: Tensor, b: Tensor, g: Tensor, *, backend: Backend = "torch") -> Tensor:
    """``(a + b)·SiLU(g)`` computed in fp32, in ``a``'s dtype; all three of one shape."""
    if a.shape != b.shape or a.shape != g.shape:
        raise InputError(f"b, g: shapes {tuple(b.shape)}, {tuple(g.shape)} differ from a's {tuple(a.shape)}")
    return _IMPLEMENTATIONS[backend].silu_gate_sum(a, b, g)
