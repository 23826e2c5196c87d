"""Reference frame-wise gated delta rule: a per-frame Python loop in fp32, written as the specification.

Shape letters: docs/conventions.md.

One frame is one step of the recurrence; all ``S`` tokens of a frame are written into (and read from) the
state in parallel, so each step is a rank-``S`` update with the *pre-update* state as the prediction:

    M ← g·M + (V_t − g·M·K̃_t)·diag(β_t)·K̃_tᵀ          (M: V×E, value × key)
    z ← g·z + K_t·diag(β_t)·(1 − g·K_tᵀ·z)             (z: E; main branch only, unrotated keys)
    num_t = M·Q̃_t,   den_t = zᵀ·Q_t                     (read with the *post-update* state: inclusive)

Columns of ``K_t``, ``Q_t``, ``V_t`` are the frame's tokens. See ``sana_wm/ops/README.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sana_wm.ops.gdn.types import GDNState


def _update_kv(
    kv_BNVE: torch.Tensor,
    k_BNSE: torch.Tensor,
    v_BNSV: torch.Tensor,
    beta_BNS: torch.Tensor,
    g_BN: torch.Tensor,
) -> torch.Tensor:
    g = g_BN[..., None, None]
    prediction_BNSV = g * (k_BNSE @ kv_BNVE.transpose(-1, -2))
    delta_BNSV = (v_BNSV - prediction_BNSV) * beta_BNS[..., None]
    return g * kv_BNVE + delta_BNSV.transpose(-1, -2) @ k_BNSE


def _update_z(
    z_BNE: torch.Tensor, k_BNSE: torch.Tensor, beta_BNS: torch.Tensor, g_BN: torch.Tensor
) -> torch.Tensor:
    g = g_BN[..., None]
    prediction_BNS = g * (k_BNSE @ z_BNE[..., None])[..., 0]
    return g * z_BNE + (((1.0 - prediction_BNS) * beta_BNS)[..., None, :] @ k_BNSE)[..., 0, :]


def _f32(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(t.float() for t in tensors)


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
    q, k, v, q_rot, k_rot, beta, decay = _f32(q, k, v, q_rot, k_rot, beta, decay)
    b, n, t_len, _, e = q.shape
    if initial_state is None:
        kv = q.new_zeros(b, n, v.shape[-1], e)
        z = q.new_zeros(b, n, e)
    else:
        kv, z = initial_state.kv.float(), initial_state.z.float()
    nums, dens = [], []
    for t in range(t_len):
        kv = _update_kv(kv, k_rot[:, :, t], v[:, :, t], beta[:, :, t], decay[:, :, t])
        z = _update_z(z, k[:, :, t], beta[:, :, t], decay[:, :, t])
        nums.append(q_rot[:, :, t] @ kv.transpose(-1, -2))
        dens.append((q[:, :, t] @ z[..., None])[..., 0])
    return torch.stack(nums, dim=2), torch.stack(dens, dim=2), GDNState(kv=kv, z=z)


def _gdn_backward_scan(
    q: Tensor, k: Tensor, v: Tensor, q_rot: Tensor, k_rot: Tensor, beta: Tensor, decay: Tensor
) -> tuple[Tensor, Tensor]:
    """Backward (exclusive) scan: frame ``t`` reads a state holding frames ``t+1 … T−1`` only."""
    b, n, t_len, _, e = q.shape
    kv = q.new_zeros(b, n, v.shape[-1], e)
    z = q.new_zeros(b, n, e)
    nums, dens = [], []
    for t in reversed(range(t_len)):
        nums.append(q_rot[:, :, t] @ kv.transpose(-1, -2))
        dens.append((q[:, :, t] @ z[..., None])[..., 0])
        kv = _update_kv(kv, k_rot[:, :, t], v[:, :, t], beta[:, :, t], decay[:, :, t])
        z = _update_z(z, k[:, :, t], beta[:, :, t], decay[:, :, t])
    return torch.stack(nums[::-1], dim=2), torch.stack(dens[::-1], dim=2)


def gdn_bidirectional(
    q: Tensor, k: Tensor, v: Tensor, q_rot: Tensor, k_rot: Tensor, beta: Tensor, decay: Tensor, eps: float
) -> Tensor:
    """Bidirectional main branch ``(num_fwd + num_bwd) / (den_fwd + den_bwd + eps)``; see the package docs."""
    return gdn_chunk_causal(q, k, v, q_rot, k_rot, beta, decay, eps, [0])[0]  # one chunk


def cam_forward_scan(
    q: Tensor, k: Tensor, v: Tensor, beta: Tensor, decay: Tensor, initial_state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Forward (inclusive) numerator-only camera scan; see :func:`sana_wm.ops.gdn.cam_forward_scan`."""
    q, k, v, beta, decay = _f32(q, k, v, beta, decay)
    b, n, t_len, _, e = q.shape
    kv = q.new_zeros(b, n, v.shape[-1], e) if initial_state is None else initial_state.float()
    outs = []
    for t in range(t_len):
        kv = _update_kv(kv, k[:, :, t], v[:, :, t], beta[:, :, t], decay[:, :, t])
        outs.append(q[:, :, t] @ kv.transpose(-1, -2))
    return torch.stack(outs, dim=2), kv


def cam_bidirectional(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, decay: Tensor) -> Tensor:
    """Bidirectional numerator-only camera branch: forward inclusive plus backward exclusive read-outs."""
    return cam_chunk_causal(q, k, v, beta, decay, [0])[0]  # one chunk


def _cam_backward_scan(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, decay: Tensor) -> Tensor:
    """Backward (exclusive) camera scan: frame ``t`` reads a state holding frames ``t+1 … T−1`` only."""
    b, n, t_len, _, e = q.shape
    kv = q.new_zeros(b, n, v.shape[-1], e)
    outs = []
    for t in reversed(range(t_len)):
        outs.append(q[:, :, t] @ kv.transpose(-1, -2))
        kv = _update_kv(kv, k[:, :, t], v[:, :, t], beta[:, :, t], decay[:, :, t])
    return torch.stack(outs[::-1], dim=2)


def _chunk_bounds(starts: Sequence[int], num_frames: int) -> list[tuple[int, int]]:
    ends = [*starts[1:], num_frames]
    return list(zip(starts, ends, strict=True))


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
    """Chunk-causal main branch: the forward scan runs over every frame from ``initial_state``, the backward
    scan inside each chunk only; see :func:`sana_wm.ops.gdn.gdn_chunk_causal`."""
    q, k, v, q_rot, k_rot, beta, decay = _f32(q, k, v, q_rot, k_rot, beta, decay)
    num, den, state = gdn_forward_scan(q, k, v, q_rot, k_rot, beta, decay, initial_state)
    for start, end in _chunk_bounds(starts, q.shape[2]):
        part = (x[:, :, start:end] for x in (q, k, v, q_rot, k_rot, beta, decay))
        num_bwd, den_bwd = _gdn_backward_scan(*part)
        num[:, :, start:end] += num_bwd
        den[:, :, start:end] += den_bwd
    return num / (den[..., None] + eps), state


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
    q, k, v, beta, decay = _f32(q, k, v, beta, decay)
    out, state = cam_forward_scan(q, k, v, beta, decay, initial_state)
    for start, end in _chunk_bounds(starts, q.shape[2]):
        out[:, :, start:end] += _cam_backward_scan(*(x[:, :, start:end] for x in (q, k, v, beta, decay)))
    return out, state
