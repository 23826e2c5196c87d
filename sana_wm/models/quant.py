"""fp8 weight storage for the stage-1 transformer: weights kept as float8 (e4m3) with one fp32 scale per
output channel, computed in the model's dtype.

:func:`quantize_fp8_` stores the large projections of every block (self-attention qkv / output projection /
output gate, cross-attention, the FFN's 1×1 convs and temporal conv) in fp8 and leaves in full precision what
the official code does: the embedders, the timestep block, the final layer, and the camera path (the camera
branch's projections, the Plücker injections); plus the small per-head gates and the depthwise conv. A stored
weight is a parametrization of the module's ``weight`` (``torch.nn.utils.parametrize``): every read of
``module.weight``, by the module or by a fused op reading it directly, dequantises (``w8 · scale`` in the
compute dtype), so the model's code does not change and a dequantised copy lives only while it is used.

Scales are per output channel: ``scale = max|w_row| / 448`` (e4m3's largest finite value), so every row uses
the format's whole range; the relative rounding error of a weight is at most 2⁻⁴.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448

# Module names (relative to the transformer) stored in fp8.
FP8_MODULES = (
    "blocks.*.attn.qkv",
    "blocks.*.attn.proj",
    "blocks.*.attn.output_gate",
    "blocks.*.cross_attn.q_linear",
    "blocks.*.cross_attn.kv_linear",
    "blocks.*.cross_attn.proj",
    "blocks.*.mlp.inverted_conv.conv",
    "blocks.*.mlp.point_conv.conv",
    "blocks.*.mlp.t_conv",
)


class Fp8Weight(nn.Module):
    """Parametrization: the stored ``original`` is fp8; the weight read is ``original · scale`` in ``dtype``
    (the weight's dtype when quantised)."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        rows = weight.detach().float().flatten(1)
        scale = rows.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / FP8_MAX
        self.register_buffer("scale", scale.view(-1, *([1] * (weight.ndim - 1))))
        self.dtype = weight.dtype

    def forward(self, stored: torch.Tensor) -> torch.Tensor:
        return (stored.to(torch.float32) * self.scale).to(self.dtype)

    def encode(self, weight: torch.Tensor) -> torch.Tensor:
        """The fp8 values stored for ``weight``."""
        return (weight.detach().float() / self.scale).clamp(-FP8_MAX, FP8_MAX).to(FP8)


@dataclass(frozen=True)
class Fp8Report:
    """What :func:`quantize_fp8_` changed: modules, parameters stored in fp8, bytes of the model's
    parameters and buffers before and after."""

    modules: int
    params: int
    bytes_before: int
    bytes_after: int


def quantize_fp8_(model: nn.Module, patterns: tuple[str, ...] = FP8_MODULES) -> Fp8Report:
    """Store the weights of ``model``'s modules matching ``patterns`` in fp8 (in place); returns a report.
    Inference only: the stored weights are not trainable."""
    before = _weight_bytes(model)
    modules = params = 0
    for name, module in list(model.named_modules()):
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns) or is_fp8(module):
            continue
        weight = module.weight
        if weight.is_meta or not weight.is_floating_point():
            continue
        fp8 = Fp8Weight(weight)
        stored = fp8.encode(weight)
        # Registered over the float weight (parametrize refuses a right inverse that changes the dtype),
        # then the stored tensor is swapped for its fp8 encoding.
        parametrize.register_parametrization(module, "weight", fp8, unsafe=True)
        module.parametrizations.weight.original = nn.Parameter(stored, requires_grad=False)
        modules += 1
        params += weight.numel()
    return Fp8Report(modules, params, before, _weight_bytes(model))


def is_fp8(module: nn.Module) -> bool:
    """Whether ``module``'s weight is stored in fp8 by :func:`quantize_fp8_`."""
    return parametrize.is_parametrized(module, "weight") and isinstance(
        module.parametrizations.weight[0], Fp8Weight
    )


def weight_dtype(module: nn.Module) -> torch.dtype:
    """The dtype ``module.weight`` computes in, without dequantising an fp8 weight to find out."""
    if is_fp8(module):
        return module.parametrizations.weight[0].dtype
    return module.weight.dtype


def _weight_bytes(model: nn.Module) -> int:
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)
