"""UCPE: per-ray SE(3) transforms of the camera branch's queries, keys, values and outputs.

Shape letters: docs/conventions.md. The math is in ``reference.py`` (the specification), ``torch_fast.py``
(batched matmuls) and ``triton_kernel.py`` (one fused kernel for transform + downscale + cast). The per-token
matrices come from :func:`sana_wm.camera.rays.ray_matrices` (re-exported here).
"""

from __future__ import annotations

import torch

from sana_wm.camera.rays import ray_matrices
from sana_wm.ops.backend import Backend, Dispatch
from sana_wm.ops.ucpe.reference import DOWNSCALE_EPS, invert_rigid, rms_downscale

__all__ = ["DOWNSCALE_EPS", "invert_rigid", "ray_matrices", "rms_downscale", "ucpe_encode", "ucpe_transform"]

_IMPLEMENTATIONS = Dispatch(__name__, reference="reference", torch="torch_fast", triton="triton_kernel")


def ucpe_transform(
    x_BNME: torch.Tensor,
    matrix_BM44: torch.Tensor,
    cos_MQ: torch.Tensor,
    sin_MQ: torch.Tensor,
    *,
    conjugate: bool = False,
    backend: Backend = "torch",
) -> torch.Tensor:
    """Apply the block-diagonal UCPE transform; returns fp32 ``(B, N, M, E)``.

    First ``E/2`` channels: groups of 4, ``group ← matrix · group``. Last ``E/2`` channels: camera RoPE
    (``conjugate`` for the inverse rotation). ``"triton"``: :func:`ucpe_encode` without the downscale.
    """
    return _IMPLEMENTATIONS[backend].ucpe_transform(x_BNME, matrix_BM44, cos_MQ, sin_MQ, conjugate=conjugate)


def ucpe_encode(
    x_BNME: torch.Tensor,
    matrix_BM44: torch.Tensor,
    cos_MQ: torch.Tensor,
    sin_MQ: torch.Tensor,
    *,
    conjugate: bool = False,
    downscale: bool = False,
    out_dtype: torch.dtype = torch.float32,
    backend: Backend = "torch",
) -> torch.Tensor:
    """:func:`ucpe_transform`, then (``downscale``) :func:`rms_downscale` against ``x`` with eps
    ``DOWNSCALE_EPS``, cast to ``out_dtype``; returns ``(B, N, M, E)``.

    ``"reference"`` / ``"torch"`` compose those functions (contiguous output). ``"triton"``: one kernel that
    reads ``x`` in its dtype with any strides (e.g. a ``(B, M, N, E) → (B, N, M, E)`` transposed view) and
    writes ``out_dtype`` in ``x``'s memory layout (as ``torch.empty_like``).
    """
    return _IMPLEMENTATIONS[backend].ucpe_encode(
        x_BNME, matrix_BM44, cos_MQ, sin_MQ, conjugate=conjugate, downscale=downscale, out_dtype=out_dtype
    )
