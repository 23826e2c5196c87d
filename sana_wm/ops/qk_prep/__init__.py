"""Query/key preparation of the attention blocks in one op: RMSNorm over all channels, ReLU, scale, RoPE.

Shape letters: docs/conventions.md. The definition is in ``reference.py`` (complex-number RoPE);
``torch_fast.py`` is the same with the real rotation; ``triton_kernel.py`` reads ``x`` once, keeps every
intermediate in fp32 and rounds each output once, where the eager path with bf16 activations rounds after the
norm, the weight, the scale and the rotation: bf16 outputs differ by at most a couple of bf16 ulps, fp32 ones
agree to fp32 rounding.
"""

from __future__ import annotations

from torch import Tensor

from sana_wm.errors import InputError
from sana_wm.ops.backend import Backend, Dispatch

__all__ = ["qk_prep"]

_IMPLEMENTATIONS = Dispatch(__name__, reference="reference", torch="torch_fast", triton="triton_kernel")


def _check_inputs(
    x_BMD: Tensor, weight_D: Tensor, rope_cos_MP: Tensor | None, rope_sin_MP: Tensor | None, heads: int
) -> None:
    if x_BMD.dim() != 3 or not x_BMD.is_floating_point():
        raise InputError(
            f"x_BMD: expected a floating (B, M, D) tensor, got {x_BMD.dtype} {tuple(x_BMD.shape)}"
        )
    _, tokens, dim = x_BMD.shape
    if tuple(weight_D.shape) != (dim,) or weight_D.device != x_BMD.device:
        raise InputError(f"weight_D: expected shape ({dim},) on {x_BMD.device}, got {tuple(weight_D.shape)}")
    if heads < 1 or dim % heads:
        raise InputError(f"heads: {heads} does not divide the width {dim} of x_BMD")
    if (rope_cos_MP is None) != (rope_sin_MP is None):
        raise InputError("rope_cos_MP, rope_sin_MP: give both tables or neither")
    if rope_cos_MP is None or rope_sin_MP is None:
        return
    head_dim = dim // heads
    if head_dim % 2:
        raise InputError(f"heads: head dim {head_dim} (= {dim} / {heads}) is odd, RoPE needs pairs")
    for name, table in (("rope_cos_MP", rope_cos_MP), ("rope_sin_MP", rope_sin_MP)):
        if tuple(table.shape) != (tokens, head_dim // 2) or table.device != x_BMD.device:
            raise InputError(
                f"{name}: expected shape {(tokens, head_dim // 2)} on {x_BMD.device}, "
                f"got {tuple(table.shape)} on {table.device}"
            )


def qk_prep(
    x_BMD: Tensor,
    weight_D: Tensor,
    *,
    eps: float,
    relu: bool,
    scale: float,
    rope_cos_MP: Tensor | None = None,
    rope_sin_MP: Tensor | None = None,
    heads: int,
    backend: Backend = "torch",
) -> tuple[Tensor, Tensor | None]:
    """``(y_BMD, y_rot_BMD)``: ``scale·act(RMSNorm(x))`` and its per-head RoPE rotation (``None`` without
    tables), in ``x``'s dtype. ``scale`` 1.0 scales nothing."""
    _check_inputs(x_BMD, weight_D, rope_cos_MP, rope_sin_MP, heads)
    return _IMPLEMENTATIONS[backend].qk_prep(
        x_BMD,
        weight_D,
        eps=eps,
        relu=relu,
        scale=scale,
        rope_cos_MP=rope_cos_MP,
        rope_sin_MP=rope_sin_MP,
        heads=heads,
    )
