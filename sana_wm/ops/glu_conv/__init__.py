"""The middle of the FFN: SiLU, a depthwise 3×3 convolution per frame, then the GLU gate.

Shape letters: docs/conventions.md. The definition is in ``reference.py`` (also the ``"torch"`` backend);
``triton_kernel.py`` applies SiLU in one elementwise pass, then one kernel sums the nine taps of the value and
gate channels and writes only the gated half.
"""

from __future__ import annotations

from torch import Tensor

from sana_wm.ops.backend import Backend, Dispatch

__all__ = ["silu_dwconv_glu"]

_IMPLEMENTATIONS = Dispatch(__name__, reference="reference", torch="reference", triton="triton_kernel")


def silu_dwconv_glu(
    u_XhwG: Tensor,
    weight_G133: Tensor,
    bias_G: Tensor,
    *,
    overwrite_input: bool = False,
    backend: Backend = "torch",
) -> Tensor:
    """``value · SiLU(gate)`` of the depthwise-convolved ``SiLU(u)``; returns ``(X, h, w, G/2)``.

    ``overwrite_input=True`` lets the op store ``SiLU(u)`` into ``u`` (saves a ``G``-wide temporary); it is
    honoured only where no autograd graph records ``u``."""
    return _IMPLEMENTATIONS[backend].silu_dwconv_glu(
        u_XhwG, weight_G133, bias_G, overwrite_input=overwrite_input
    )
