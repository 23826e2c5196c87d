"""Per-call camera geometry for the camera branch: UCPE ray transforms shared by all blocks.

Shape letters: ``B`` batch, ``T`` latent frames, ``h``/``w`` latent grid, ``M`` video tokens (``T·h·w``),
``P`` main RoPE pairs (``E/2``), ``Q`` camera RoPE pairs (``E/4``).

The learnable camera inputs are elsewhere: the Plücker embedder (a per-token linear of the 48-channel chunked
Plücker map, ``plucker_embedder``) and its per-block projection (``blocks.i.plucker_proj``) live in ``dit.py``
/ ``blocks.py``; the camera branch's projections live in ``attention.py``. The checkpoint also holds a
``raymap_embedder`` (an absolute up/latitude map embedding); the released configuration never uses it
(``use_chunk_plucker_post_attn`` disables it), so sana-wm keeps its weights for loading and never computes it.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from sana_wm.ops.rope import camera_rope_tables
from sana_wm.ops.ucpe import invert_rigid, ray_matrices


class RayTransforms(NamedTuple):
    """UCPE transforms for every token (fp32): queries use ``Pᵀ``, keys and values ``P⁻¹``, outputs ``P``."""

    query_BM44: Tensor
    key_BM44: Tensor
    out_BM44: Tensor
    cos_MQ: Tensor
    sin_MQ: Tensor


def ray_transforms(
    camera_BT20: Tensor, grid: tuple[int, int, int], cos_MP: Tensor, sin_MP: Tensor, head_dim: int
) -> RayTransforms:
    """Build the per-token UCPE transforms from camera conditions ``(B, T, 20)`` and the main RoPE tables."""
    _, height, width = grid
    world_to_ray_BM44 = ray_matrices(camera_BT20, height, width).flatten(1, 3)
    cos_MQ, sin_MQ = camera_rope_tables(cos_MP, sin_MP, head_dim)
    return RayTransforms(
        query_BM44=world_to_ray_BM44.transpose(-1, -2),
        key_BM44=invert_rigid(world_to_ray_BM44),
        out_BM44=world_to_ray_BM44,
        cos_MQ=cos_MQ,
        sin_MQ=sin_MQ,
    )
