"""3D rotary position embedding ("wan_rope"): the cos/sin tables and the rotation of interleaved pairs.

Shape letters: docs/conventions.md. The tables and the specification are in ``reference.py`` (see its
docstring for the axis split and the numerics); ``torch_fast.py`` rotates with real arithmetic. There is no
Triton kernel: ``"triton"`` runs the ``"torch"`` code (the model rotates inside ``qk_prep``'s kernel).
"""

from __future__ import annotations

import torch

from sana_wm.ops.backend import Backend, Dispatch
from sana_wm.ops.rope.reference import axis_pairs, camera_rope_tables, rope_tables

__all__ = ["apply_rope", "axis_pairs", "camera_rope_tables", "rope_tables"]

_IMPLEMENTATIONS = Dispatch(__name__, reference="reference", torch="torch_fast", triton="torch_fast")


def apply_rope(
    x_BNME: torch.Tensor,
    cos_MP: torch.Tensor,
    sin_MP: torch.Tensor,
    *,
    conjugate: bool = False,
    backend: Backend = "torch",
) -> torch.Tensor:
    """Rotate interleaved channel pairs of ``x_BNME`` by per-token angles (``conjugate``: backwards).

    ``E`` must equal ``2·P``. Computed in fp32, returned in ``x_BNME.dtype``.
    """
    return _IMPLEMENTATIONS[backend].apply_rope(x_BNME, cos_MP, sin_MP, conjugate=conjugate)
