"""Frame-wise bidirectional Gated DeltaNet scans (main branch with denominator, camera branch numerator-only).

Shape letters: docs/conventions.md. Inputs are ``(B, N, T, S, E)`` (values ``(B, N, T, S, V)``), ``beta``
is per token ``(B, N, T, S)``, ``decay`` per frame ``(B, N, T)``. All scans compute in fp32 and return fp32.

Main branch: the numerator stream uses RoPE-rotated queries/keys (``q_rot``, ``k_rot``), the denominator
stream the unrotated ones. Output ``(num_fwd + num_bwd) / (den_fwd + den_bwd + eps)``, where the forward
direction is inclusive (frame ``t`` sees frames ``0 … t``) and the backward one exclusive (frames
``t+1 … T−1``), and both directions are summed *before* the single division. Camera branch: numerator only,
no RoPE split.

The forward-direction scans take an initial state and return the final one, so a clip can be scanned in
chunks. The chunk-causal functions (the chunk-causal teacher and the streaming student) run the forward
direction over every frame from an initial state and the backward direction inside each chunk only, and
return the forward state after the last frame: a stream of chunks, each scanned with the state the previous
one returned, equals one chunk-causal scan of all of them. The bidirectional functions are the one-chunk
case without a state.

Backends: ``"reference"`` (``reference.py``), ``"torch"`` (``torch_scan.py``) and ``"triton"``
(``triton_scan.py`` launching the kernels of ``triton_kernels.py``; imported on first use; forward only). The
triton read-outs are laid out in memory like ``q`` (as ``torch.empty_like``) when ``V == E``; the others are
contiguous.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from sana_wm.ops.backend import Backend, Dispatch
from sana_wm.ops.gdn.types import GDNState

__all__ = [
    "GDNState",
    "cam_bidirectional",
    "cam_chunk_causal",
    "cam_forward_scan",
    "gdn_bidirectional",
    "gdn_chunk_causal",
    "gdn_forward_scan",
]

_IMPLEMENTATIONS = Dispatch(__name__, reference="reference", torch="torch_scan", triton="triton_scan")


def gdn_bidirectional(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_rot: Tensor,
    k_rot: Tensor,
    beta: Tensor,
    decay: Tensor,
    *,
    eps: float,
    backend: Backend = "torch",
) -> Tensor:
    """Bidirectional main-branch GDN; returns ``(B, N, T, S, V)`` fp32."""
    return _IMPLEMENTATIONS[backend].gdn_bidirectional(q, k, v, q_rot, k_rot, beta, decay, eps)


def gdn_forward_scan(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_rot: Tensor,
    k_rot: Tensor,
    beta: Tensor,
    decay: Tensor,
    *,
    initial_state: GDNState | None = None,
    backend: Backend = "torch",
) -> tuple[Tensor, Tensor, GDNState]:
    """Forward (inclusive) main-branch scan from ``initial_state`` (zeros if None).

    Returns ``num (B, N, T, S, V)``, ``den (B, N, T, S)`` and the state after the last frame.
    """
    return _IMPLEMENTATIONS[backend].gdn_forward_scan(q, k, v, q_rot, k_rot, beta, decay, initial_state)


def cam_bidirectional(
    q: Tensor, k: Tensor, v: Tensor, beta: Tensor, decay: Tensor, *, backend: Backend = "torch"
) -> Tensor:
    """Bidirectional numerator-only camera-branch delta rule; returns ``(B, N, T, S, V)`` fp32."""
    return _IMPLEMENTATIONS[backend].cam_bidirectional(q, k, v, beta, decay)


def cam_forward_scan(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    decay: Tensor,
    *,
    initial_state: Tensor | None = None,
    backend: Backend = "torch",
) -> tuple[Tensor, Tensor]:
    """Forward (inclusive) camera scan from ``initial_state`` ``(B, N, V, E)`` (zeros if None).

    Returns the read-out ``(B, N, T, S, V)`` and the state after the last frame.
    """
    return _IMPLEMENTATIONS[backend].cam_forward_scan(q, k, v, beta, decay, initial_state)


def gdn_chunk_causal(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_rot: Tensor,
    k_rot: Tensor,
    beta: Tensor,
    decay: Tensor,
    *,
    eps: float,
    starts: Sequence[int] = (0,),
    initial_state: GDNState | None = None,
    backend: Backend = "torch",
) -> tuple[Tensor, GDNState]:
    """Chunk-causal main branch: chunks begin at frames ``starts`` (the first is 0); frame ``t`` of chunk
    ``c`` reads the forward state of frames ``0 … t`` (plus ``initial_state``, the summary of everything
    before frame 0) and the backward state of frames ``t+1 …`` up to the end of chunk ``c``.

    Returns ``(B, N, T, S, V)`` fp32 and the forward state after the last frame. One chunk and no initial
    state is :func:`gdn_bidirectional`.
    """
    return _IMPLEMENTATIONS[backend].gdn_chunk_causal(
        q, k, v, q_rot, k_rot, beta, decay, eps, list(starts), initial_state
    )


def cam_chunk_causal(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    decay: Tensor,
    *,
    starts: Sequence[int] = (0,),
    initial_state: Tensor | None = None,
    backend: Backend = "torch",
) -> tuple[Tensor, Tensor]:
    """Chunk-causal numerator-only camera branch (as :func:`gdn_chunk_causal`); returns ``(B, N, T, S, V)``
    fp32 and the forward state ``(B, N, V, E)`` after the last frame."""
    return _IMPLEMENTATIONS[backend].cam_chunk_causal(q, k, v, beta, decay, list(starts), initial_state)
