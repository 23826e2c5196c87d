"""Two elementwise steps of every block: the frame-wise adaLN modulation and the SiLU output gate.

Shape letters: docs/conventions.md.

- :func:`layer_norm_modulate`: ``LN(x)·(1 + scale_t) + shift_t`` where ``LN`` is a LayerNorm over ``D``
  without affine (eps given) and ``t`` the token's latent frame; statistics and arithmetic in fp32 (the
  residual stream ``x`` is fp32 in the model), the result rounded once to ``out_dtype``, the dtype of the
  attention / FFN weights that read it.
- :func:`silu_gate_sum`: ``((a + b)·SiLU(g))`` in fp32, rounded once to ``a``'s dtype: the self-attention's
  two branch outputs summed and gated before the output projection.

Eager PyTorch, also the ``"torch"`` backend. Shapes are checked by :mod:`sana_wm.ops.norm_gate`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def layer_norm_modulate(
    x_BMD: Tensor, shift_BTD: Tensor, scale_BTD: Tensor, *, eps: float, out_dtype: torch.dtype
) -> Tensor:
    """See :func:`sana_wm.ops.norm_gate.layer_norm_modulate`."""
    frames = shift_BTD.shape[1]
    normed_BTSD = F.layer_norm(x_BMD.float(), (x_BMD.shape[-1],), eps=eps).unflatten(1, (frames, -1))
    out_BTSD = normed_BTSD * (1 + scale_BTD.float()[:, :, None]) + shift_BTD.float()[:, :, None]
    return out_BTSD.flatten(1, 2).to(out_dtype)


def silu_gate_sum(a: Tensor, b: Tensor, g: Tensor) -> Tensor:
    """See :func:`sana_wm.ops.norm_gate.silu_gate_sum`."""
    return ((a.float() + b.float()) * F.silu(g.float())).to(a.dtype)
