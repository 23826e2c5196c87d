"""Functional math of the SANA-WM transformer: GDN scans, UCPE camera transforms, RoPE, short convolutions,
the FFN's gated depthwise convolution and q/k preparation.

Every op here is a plain function of tensors (no parameters, no module state). Each has up to three
implementations behind one signature, picked by an explicit ``backend=`` argument, never by an import-time
fallback:

- ``"reference"``: the specification, written as directly as possible in fp32 PyTorch (per-frame Python loops,
  complex-number RoPE, ``einsum``). Slow; it exists to be read and to be compared against.
- ``"torch"``: a faster pure-PyTorch formulation of the same math (batched matmuls over frames, a log-depth
  scan, real-valued rotations). Parity with ``"reference"`` is tested in ``tests/ops``.

- ``"triton"``: GPU kernels (forward only, no autograd) for the GDN scans (``gdn/triton_scan.py``), the fused
  UCPE encode (``triton_ucpe.py``), the FFN's depthwise-conv/GLU (``triton_glu_conv.py``), ``qk_prep``
  (``triton_qk_prep.py``), the short convolution (``triton_short_conv.py``) and the adaLN modulation and
  output gate (``triton_norm_gate.py``); RoPE, which has no kernel, runs its ``"torch"`` code. Needs the
  ``triton`` package (imported only when this backend is used) and CUDA tensors, or ``TRITON_INTERPRET=1`` set
  before the kernels are first imported to run them on the CPU. Parity with ``"torch"`` is tested under the
  interpreter in ``tests/ops/test_triton_ops.py``.

See ``sana_wm/ops/README.md`` for the math.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Mapping
from typing import Literal

import torch

from sana_wm.errors import InputError

Backend = Literal["reference", "torch", "triton"]
BACKENDS: tuple[str, ...] = ("reference", "torch", "triton")


@functools.cache
def triton_importable() -> bool:
    """Whether ``import triton`` works here (checked once per process)."""
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return True


def check_backend(backend: str) -> None:
    """Raise :class:`InputError` unless ``backend`` names an implemented backend usable here."""
    if backend not in BACKENDS:
        raise InputError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "triton" and not triton_importable():
        raise InputError("backend: 'triton' needs the triton package, which is not importable here")


def fastest_backend(device: torch.device) -> Backend:
    """``"triton"`` on CUDA when triton is importable (the fused kernels; the accuracy of ``"torch"``, 2.3×
    faster per step at 321 frames and 1.8× at 961 on an H100), else ``"torch"``."""
    return "triton" if device.type == "cuda" and triton_importable() else "torch"


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
