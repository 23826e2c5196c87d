"""RoPE rotation with real arithmetic (``"torch"`` backend, also used by ``"triton"``, which has no kernel).

Shape letters: docs/conventions.md. Same rotation as :func:`sana_wm.ops.rope.reference.apply_rope`, written
as ``(e·cos − o·sin, e·sin + o·cos)`` on the even/odd channels instead of a complex multiply.
"""

from __future__ import annotations

import torch


def apply_rope(
    x_BNME: torch.Tensor, cos_MP: torch.Tensor, sin_MP: torch.Tensor, *, conjugate: bool = False
) -> torch.Tensor:
    """See :func:`sana_wm.ops.rope.apply_rope`."""
    pairs_BNMP2 = x_BNME.float().unflatten(-1, (-1, 2))
    sin_MP = -sin_MP if conjugate else sin_MP
    even, odd = pairs_BNMP2.unbind(-1)
    rotated = torch.stack([even * cos_MP - odd * sin_MP, even * sin_MP + odd * cos_MP], dim=-1)
    return rotated.flatten(-2).to(x_BNME.dtype)
