"""Functional math of the SANA-WM transformer: GDN scans, UCPE camera transforms, RoPE, short convolutions.

Every op here is a plain function of tensors (no parameters, no module state). Each has two implementations
behind one signature, picked by an explicit ``backend=`` argument, never by an import-time fallback:

- ``"reference"``: the specification, written as directly as possible in fp32 PyTorch (per-frame Python loops,
  complex-number RoPE, ``einsum``). Slow; it exists to be read and to be compared against.
- ``"torch"``: a faster pure-PyTorch formulation of the same math (batched matmuls over frames, a log-depth
  scan, real-valued rotations). Parity with ``"reference"`` is tested in ``tests/ops``.

A later ``"triton"`` backend slots in behind the same signatures. See ``sana_wm/ops/README.md`` for the math.
"""

from __future__ import annotations

from typing import Literal

from sana_wm.errors import InputError

Backend = Literal["reference", "torch"]
BACKENDS: tuple[str, ...] = ("reference", "torch")


def check_backend(backend: str) -> None:
    """Raise :class:`InputError` unless ``backend`` names an implemented backend."""
    if backend not in BACKENDS:
        raise InputError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
