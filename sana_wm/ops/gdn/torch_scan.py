"""Fast pure-PyTorch frame-wise gated delta rule: batched transitions plus a log-depth affine scan.

Shape letters: docs/conventions.md (``R`` rows of a state: ``V`` for ``M``, 1 for ``zᵀ``).

Writing each state as rows, one frame is an affine map ``X ← X·A_t + b_t`` with

    A_t = g_t·(I − K_tᵀ·diag(β_t)·K_t)   (E×E, symmetric; K_t has the frame's tokens as rows)
    b_t = V_tᵀ·diag(β_t)·K_t             (for M)        or  β_tᵀ·K_t   (for zᵀ)

This differs from the per-frame loop in three ways, all exact in real arithmetic:

1. ``A_t`` and ``b_t`` for all frames come from one batched matmul each (the ``S``-long contractions, the
   expensive part, run once per frame instead of once per direction and frame).
2. The ``T``-step recurrence runs as a Hillis–Steele inclusive scan over affine maps: ``⌈log2 T⌉`` levels of
   batched ``E×E`` matmuls instead of ``T`` sequential steps. The backward (exclusive) direction reuses the
   same maps in reverse order, prefixed by an identity map, and is scanned in the same batch as the forward
   one.
3. Both directions read out from the *summed* state: ``num = Q̃·(M_fwd + M_bwd)ᵀ`` is one matmul, not two.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sana_wm.ops.gdn.types import GDNState


def _transitions(k_BNTSE: Tensor, beta_BNTS: Tensor, decay_BNT: Tensor) -> Tensor:
    """``A_t = g_t·(I − K_tᵀ diag(β_t) K_t)`` for every frame: ``(B, N, T, E, E)``."""
    gram_BNTEE = (k_BNTSE * beta_BNTS[..., None]).transpose(-1, -2) @ k_BNTSE
    eye = torch.eye(k_BNTSE.shape[-1], dtype=k_BNTSE.dtype, device=k_BNTSE.device)
    return decay_BNT[..., None, None] * (eye - gram_BNTEE)


def _writes(k_BNTSE: Tensor, v_BNTSV: Tensor, beta_BNTS: Tensor) -> Tensor:
    """``b_t = V_tᵀ diag(β_t) K_t`` for every frame: ``(B, N, T, V, E)``."""
    return (v_BNTSV * beta_BNTS[..., None]).transpose(-1, -2) @ k_BNTSE


def affine_scan(A_XTEE: Tensor, b_XTRE: Tensor, initial_XRE: Tensor | None = None) -> Tensor:
    """Inclusive scan of ``X_t = X_{t−1}·A_t + b_t`` along dim −3 with ``X_{−1} = initial`` (zero if None).

    Hillis–Steele: after the level with offset ``d`` element ``t`` holds the composition of maps
    ``t−2d+1 … t``; composing "first p, then c" gives ``(A_p·A_c, b_p·A_c + b_c)``. Returns all ``X_t``.
    """
    num_frames = A_XTEE.shape[-3]
    need_products = initial_XRE is not None
    A, b = A_XTEE, b_XTRE
    step = 1
    while step < num_frames:
        A_cur = A[..., step:, :, :]
        b_new = b[..., :-step, :, :] @ A_cur + b[..., step:, :, :]
        if need_products or 2 * step < num_frames:
            A = torch.cat([A[..., :step, :, :], A[..., :-step, :, :] @ A_cur], dim=-3)
        b = torch.cat([b[..., :step, :, :], b_new], dim=-3)
        step *= 2
    if initial_XRE is not None:
        b = b + initial_XRE[..., None, :, :] @ A
    return b


def _bidirectional_states(
    A_BNTEE: Tensor,
    b_BNTRE: Tensor,
    starts: Sequence[int] = (0,),
    initial_BNRE: Tensor | None = None,
) -> Tensor:
    """Sum of the forward inclusive and backward exclusive states for every frame: ``(B, N, T, R, E)``.

    The backward direction at frame ``t`` holds frames ``t+1 … T−1``: scanning the maps of frames
    ``T−1, T−2, …, 1`` after an identity map gives ``[0, X_{T−2}, …, X_0]``, flipped back afterwards. With
    chunk ``starts`` the backward direction stays inside each chunk: the map of a chunk's first frame is
    replaced by zero (``A = 0``, ``b = 0``), so the frame before it reads an empty state. The forward
    direction starts from ``initial_BNRE`` (zero if None).
    """
    batch, heads, _, e, _ = A_BNTEE.shape
    A_cut, b_cut = A_BNTEE, b_BNTRE
    cuts = [s for s in starts if s > 0]
    if cuts:
        A_cut, b_cut = A_BNTEE.clone(), b_BNTRE.clone()
        A_cut[:, :, cuts] = 0.0
        b_cut[:, :, cuts] = 0.0
    eye = torch.eye(e, dtype=A_BNTEE.dtype, device=A_BNTEE.device).expand(batch, heads, 1, e, e)
    A_bwd = torch.cat([eye, A_cut[:, :, 1:].flip(2)], dim=2)
    b_bwd = torch.cat([torch.zeros_like(b_cut[:, :, :1]), b_cut[:, :, 1:].flip(2)], dim=2)
    initial = None
    if initial_BNRE is not None:
        initial = torch.cat([initial_BNRE, torch.zeros_like(initial_BNRE)])
    states = affine_scan(torch.cat([A_BNTEE, A_bwd]), torch.cat([b_BNTRE, b_bwd]), initial)
    return states[:batch] + states[batch:].flip(2)


def gdn_forward_scan(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_rot: Tensor,
    k_rot: Tensor,
    beta: Tensor,
    decay: Tensor,
    initial_state: GDNState | None = None,
) -> tuple[Tensor, Tensor, GDNState]:
    """Forward (inclusive) main-branch scan; see :func:`sana_wm.ops.gdn.gdn_forward_scan`."""
    q, k, v, q_rot, k_rot, beta, decay = (t.float() for t in (q, k, v, q_rot, k_rot, beta, decay))
    init_kv = None if initial_state is None else initial_state.kv.float()
    init_z = None if initial_state is None else initial_state.z.float()[..., None, :]
    kv_states = affine_scan(_transitions(k_rot, beta, decay), _writes(k_rot, v, beta), init_kv)
    z_states = affine_scan(_transitions(k, beta, decay), beta[..., None, :] @ k, init_z)
    num = q_rot @ kv_states.transpose(-1, -2)
    den = (q @ z_states.transpose(-1, -2))[..., 0]
    return num, den, GDNState(kv=kv_states[:, :, -1], z=z_states[:, :, -1, 0])


def gdn_bidirectional(
    q: Tensor, k: Tensor, v: Tensor, q_rot: Tensor, k_rot: Tensor, beta: Tensor, decay: Tensor, eps: float
) -> Tensor:
    """Bidirectional main branch (the chunk-causal scan with one chunk); see
    :func:`sana_wm.ops.gdn.gdn_bidirectional`."""
    return gdn_chunk_causal(q, k, v, q_rot, k_rot, beta, decay, eps, (0,))[0]


def cam_forward_scan(
    q: Tensor, k: Tensor, v: Tensor, beta: Tensor, decay: Tensor, initial_state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Forward (inclusive) camera scan; see :func:`sana_wm.ops.gdn.cam_forward_scan`."""
    q, k, v, beta, decay = (t.float() for t in (q, k, v, beta, decay))
    init = None if initial_state is None else initial_state.float()
    states = affine_scan(_transitions(k, beta, decay), _writes(k, v, beta), init)
    return q @ states.transpose(-1, -2), states[:, :, -1]


def cam_bidirectional(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, decay: Tensor) -> Tensor:
    """Bidirectional numerator-only camera branch (the chunk-causal scan with one chunk); see
    :func:`sana_wm.ops.gdn.cam_bidirectional`."""
    return cam_chunk_causal(q, k, v, beta, decay, (0,))[0]


def gdn_chunk_causal(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_rot: Tensor,
    k_rot: Tensor,
    beta: Tensor,
    decay: Tensor,
    eps: float,
    starts: Sequence[int],
    initial_state: GDNState | None = None,
) -> tuple[Tensor, GDNState]:
    """Chunk-causal main branch; see :func:`sana_wm.ops.gdn.gdn_chunk_causal`."""
    q, k, v, q_rot, k_rot, beta, decay = (t.float() for t in (q, k, v, q_rot, k_rot, beta, decay))
    init_kv = None if initial_state is None else initial_state.kv.float()
    init_z = None if initial_state is None else initial_state.z.float()[..., None, :]
    kv_states = _bidirectional_states(
        _transitions(k_rot, beta, decay), _writes(k_rot, v, beta), starts, init_kv
    )
    z_states = _bidirectional_states(_transitions(k, beta, decay), beta[..., None, :] @ k, starts, init_z)
    out = (q_rot @ kv_states.transpose(-1, -2)) / (q @ z_states.transpose(-1, -2) + eps)
    # The backward direction is exclusive, so at the last frame the summed state is the forward one.
    return out, GDNState(kv=kv_states[:, :, -1], z=z_states[:, :, -1, 0])


def cam_chunk_causal(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    decay: Tensor,
    starts: Sequence[int],
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Chunk-causal camera branch; see :func:`sana_wm.ops.gdn.cam_chunk_causal`."""
    q, k, v, beta, decay = (t.float() for t in (q, k, v, beta, decay))
    init = None if initial_state is None else initial_state.float()
    states = _bidirectional_states(_transitions(k, beta, decay), _writes(k, v, beta), starts, init)
    return q @ states.transpose(-1, -2), states[:, :, -1]  # last frame: the forward state alone
