"""What every Triton launcher in ``sana_wm/ops/*/triton_*.py`` shares: the input check and the launch device.

Nothing here imports ``triton``; the kernel modules do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import torch

from sana_wm.errors import InputError


def check_kernel_inputs(named: Mapping[str, torch.Tensor | None], *, interpreted: bool) -> None:
    """What every Triton wrapper checks before a launch: no input requires grad (the kernels are forward
    only), then every input is a CUDA tensor unless the Triton interpreter runs the kernels (``interpreted``,
    which each kernel module reads off its own kernel object). ``None`` entries are skipped."""
    present = {name: tensor for name, tensor in named.items() if tensor is not None}
    for name, tensor in present.items():
        if torch.is_grad_enabled() and tensor.requires_grad:
            raise InputError(f"{name}: requires grad, but the triton backend is forward-only (use 'torch')")
    for name, tensor in present.items():
        if tensor.device.type != "cuda" and not interpreted:
            where = f"got {tensor.device}; TRITON_INTERPRET=1 for CPU"
            raise InputError(f"{name}: the triton backend needs CUDA tensors ({where})")


def on_device(tensor: torch.Tensor) -> contextlib.AbstractContextManager:
    """Make ``tensor``'s GPU the current one for a Triton launch (which uses the current device); nothing on
    the CPU (the interpreter)."""
    return torch.cuda.device(tensor.device) if tensor.device.type == "cuda" else contextlib.nullcontext()
