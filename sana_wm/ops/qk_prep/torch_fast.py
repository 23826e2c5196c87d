"""q/k preparation with the real-valued RoPE rotation (``"torch"`` backend): :mod:`.reference`'s steps.

Shape letters: docs/conventions.md.
"""

from __future__ import annotations

from torch import Tensor

from sana_wm.ops.qk_prep.reference import rms_norm_act
from sana_wm.ops.rope.torch_fast import apply_rope


def qk_prep(
    x_BMD: Tensor,
    weight_D: Tensor,
    *,
    eps: float,
    relu: bool,
    scale: float,
    rope_cos_MP: Tensor | None,
    rope_sin_MP: Tensor | None,
    heads: int,
) -> tuple[Tensor, Tensor | None]:
    """See :func:`sana_wm.ops.qk_prep.qk_prep`."""
    y_BMD = rms_norm_act(x_BMD, weight_D, eps=eps, relu=relu, scale=scale)
    if rope_cos_MP is None or rope_sin_MP is None:
        return y_BMD, None
    y_BNME = y_BMD.unflatten(-1, (heads, -1)).transpose(1, 2)
    rot_BNME = apply_rope(y_BNME, rope_cos_MP, rope_sin_MP)
    return y_BMD, rot_BNME.transpose(1, 2).flatten(2)
