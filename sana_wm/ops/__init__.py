"""Functional math of the SANA-WM transformer: GDN scans, UCPE camera transforms, RoPE, short convolutions,
the FFN's gated depthwise convolution, q/k preparation and the adaLN modulation / output gate.

Every op is a plain function of tensors (no parameters, no module state) in its own package
``sana_wm/ops/<op>/``, with up to three implementations behind one signature, picked by an explicit
``backend=`` argument (never by an import-time fallback):

- ``"reference"`` (``reference.py``): the specification, written as directly as possible in PyTorch
  (per-frame Python loops, complex-number RoPE, ``einsum``). Slow; it exists to be read and compared against.
- ``"torch"`` (``torch_fast.py``, ``gdn/torch_scan.py``): a faster pure-PyTorch formulation of the same math
  (batched matmuls over frames, a log-depth scan, real-valued rotations), where there is one; otherwise the
  reference. Parity with ``"reference"`` is tested in ``tests/ops``.
- ``"triton"`` (``triton_kernel.py``, ``gdn/triton_scan.py`` + ``gdn/triton_kernels.py``): GPU kernels,
  forward only, needing the ``triton`` package (imported on first use) and CUDA tensors, or
  ``TRITON_INTERPRET=1`` set before the kernels are first imported to run them on the CPU. RoPE has no kernel
  and runs its ``"torch"`` code. Parity with ``"torch"`` is tested under the interpreter in ``tests/ops``.

The op's ``__init__.py`` dispatches through a :class:`~sana_wm.ops.backend.Dispatch` table; callers validate
the backend once with :func:`check_backend`. See ``sana_wm/ops/README.md`` for the math and the kernels.
"""

from __future__ import annotations

from sana_wm.ops.backend import BACKENDS, Backend, Dispatch, check_backend, fastest_backend, triton_importable
from sana_wm.ops.launch import check_kernel_inputs, on_device

__all__ = [
    "BACKENDS",
    "Backend",
    "Dispatch",
    "check_backend",
    "check_kernel_inputs",
    "fastest_backend",
    "on_device",
    "triton_importable",
]
