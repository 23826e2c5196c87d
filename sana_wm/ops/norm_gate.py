"""Two elementwise steps of every block: the frame-wise adaLN modulation and the SiLU output gate.

Shape letters: ``B`` batch, ``T`` latent frames, ``S`` tokens per frame, ``M`` video tokens (``T·S``), ``D``
model width.

- :func:`layer_norm_modulate`: ``LN(x)·(1 + scale_t) + shift_t`` where ``LN`` is a LayerNorm over ``D``
  without affine (eps given) and ``t`` the token's latent frame; statistics and arithmetic in fp32 (the
  residual stream ``x`` is fp32 in the model), the result rounded once to ``out_dtype``, the dtype of the
  attention / FFN weights that read it.
- :func:`silu_gate_sum`: ``((a + b)·SiLU(g))`` in fp32, rounded once to ``a``'s dtype: the self-attention's
  two branch outputs summed and gated before the output projection.

The ``"triton"`` kernels (``triton_norm_gate.py``) read each input once and write the output once; in eager
PyTorch the fp32 temporaries of a 961-frame clip (2 × 106,480 × 2,240 values) are 1.9 GB each, made three or
four times per call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sana_wm.errors import InputError
from sana_wm.ops import Backend, check_backend


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
    check_backend(backend)
    batch, tokens, dim = x_BMD.shape
    for name, table in (("shift_BTD", shift_BTD), ("scale_BTD", scale_BTD)):
        if table.dim() != 3 or table.shape[0] != batch or table.shape[2] != dim or tokens % table.shape[1]:
            raise InputError(
                f"{name}: expected (B={batch}, T, D={dim}) with T dividing {tokens} tokens, "
                f"got {tuple(table.shape)}"
            )
    if shift_BTD.shape != scale_BTD.shape:
        raise InputError(f"scale_BTD: shape {tuple(scale_BTD.shape)} differs from shift_BTD's")
    if backend == "triton":
        from sana_wm.ops.triton_norm_gate import layer_norm_modulate_triton

        return layer_norm_modulate_triton(x_BMD, shift_BTD, scale_BTD, eps=eps, out_dtype=out_dtype)
    frames = shift_BTD.shape[1]
    normed_BTSD = F.layer_norm(x_BMD.float(), (dim,), eps=eps).unflatten(1, (frames, -1))
    out_BTSD = normed_BTSD * (1 + scale_BTD.float()[:, :, None]) + shift_BTD.float()[:, :, None]
    return out_BTSD.flatten(1, 2).to(out_dtype)


def silu_gate_sum(a: Tensor, b: Tensor, g: Tensor, *, backend: Backend = "torch") -> Tensor:
    """``(a + b)·SiLU(g)`` computed in fp32, in ``a``'s dtype; all three of one shape."""
    check_backend(backend)
    if a.shape != b.shape or a.shape != g.shape:
        raise InputError(f"b, g: shapes {tuple(b.shape)}, {tuple(g.shape)} differ from a's {tuple(a.shape)}")
    if backend == "triton":
        from sana_wm.ops.triton_norm_gate import silu_gate_sum_triton

        return silu_gate_sum_triton(a, b, g)
    return ((a.float() + b.float()) * F.silu(g.float())).to(a.dtype)
