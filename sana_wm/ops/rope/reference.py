"""3D rotary position embedding ("wan_rope") as used by SANA-WM: the tables and the reference rotation.

Shape letters: docs/conventions.md.

A head vector of ``E`` channels is rotated as ``P`` interleaved pairs ``(2i, 2i+1)``. The pairs are split
over the three axes: ``Pt = E//2 − 2·(E//6)`` temporal pairs, then ``E//6`` height pairs, then ``E//6`` width
pairs (for ``E = 112``: 20 | 18 | 18). An axis with ``k`` pairs has an axis width of ``2k`` channels and
frequencies ``ω_i = θ^(−2i / 2k)``, ``i < k``; token ``(t, y, x)`` rotates its pairs by ``t·ω`` (temporal),
``y·ω`` (height) and ``x·ω`` (width). Positions are latent indices starting at 0.

Numerics (diffusers 0.42.1): frequencies and angles are fp32 (the official NVlabs code uses float64; the
difference is below 1e-5 rad for positions under 128). Rotations are applied in fp32 and cast back to the
input dtype.

The camera branch uses a smaller table for its ``E/2``-channel RoPE half: it *slices* the first pairs of each
axis of the main table (for ``E = 112``: temporal pairs 0..9, height 20..28, width 38..46) rather than
recomputing frequencies for a narrower head (:func:`camera_rope_tables`).
"""

from __future__ import annotations

import torch


def axis_pairs(head_dim: int) -> tuple[int, int, int]:
    """Number of rotation pairs given to the (temporal, height, width) axes for a head of ``head_dim``."""
    spatial = head_dim // 6
    return head_dim // 2 - 2 * spatial, spatial, spatial


def _axis_angles(
    positions: int, pairs: int, theta: float, device: torch.device | None, offset: int = 0
) -> torch.Tensor:
    """Angles ``(positions, pairs)`` in fp32 for one axis with ``pairs`` rotation pairs, at positions
    ``offset … offset + positions − 1``."""
    width = 2 * pairs
    freqs = 1.0 / (theta ** (torch.arange(0, width, 2, dtype=torch.float32, device=device) / width))
    return torch.outer(torch.arange(offset, offset + positions, device=device), freqs)


def rope_tables(
    num_frames: int,
    height: int,
    width: int,
    head_dim: int,
    *,
    theta: float = 10000.0,
    device: torch.device | str | None = None,
    frame_offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine tables ``(cos_MP, sin_MP)`` (fp32) for a ``num_frames × height × width`` token grid
    whose first frame sits at absolute position ``frame_offset`` (a chunk of a stream: "causal Wan RoPE")."""
    pt, ph, pw = axis_pairs(head_dim)
    device = torch.device(device) if device is not None else None
    ang_t = _axis_angles(num_frames, pt, theta, device, frame_offset)[:, None, None, :].expand(
        num_frames, height, width, pt
    )
    ang_h = _axis_angles(height, ph, theta, device)[None, :, None, :].expand(num_frames, height, width, ph)
    ang_w = _axis_angles(width, pw, theta, device)[None, None, :, :].expand(num_frames, height, width, pw)
    angles_MP = torch.cat([ang_t, ang_h, ang_w], dim=-1).reshape(num_frames * height * width, pt + ph + pw)
    return torch.cos(angles_MP), torch.sin(angles_MP)


def camera_rope_tables(
    cos_MP: torch.Tensor, sin_MP: torch.Tensor, head_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slice the main ``(M, E/2)`` tables to the camera branch's ``(M, E/4)`` (first pairs of each axis)."""
    pt, ph, _ = axis_pairs(head_dim)
    ct, ch, cw = axis_pairs(head_dim // 2)
    # Slices, not an index tensor built on the host: no host-to-device copy (CUDA-graph capturable).
    ranges = ((0, ct), (pt, pt + ch), (pt + ph, pt + ph + cw))
    cos_MQ = torch.cat([cos_MP[..., a:b] for a, b in ranges], dim=-1)
    sin_MQ = torch.cat([sin_MP[..., a:b] for a, b in ranges], dim=-1)
    return cos_MQ, sin_MQ


def apply_rope(
    x_BNME: torch.Tensor, cos_MP: torch.Tensor, sin_MP: torch.Tensor, *, conjugate: bool = False
) -> torch.Tensor:
    """Rotate interleaved channel pairs of ``x_BNME`` by per-token angles (``conjugate``: backwards), as one
    complex multiply per pair. ``E`` must equal ``2·P``. Computed in fp32, returned in ``x_BNME.dtype``."""
    pairs_BNMP2 = x_BNME.float().unflatten(-1, (-1, 2))
    sin_MP = -sin_MP if conjugate else sin_MP
    rotation_MP = torch.complex(cos_MP.float(), sin_MP.float())
    rotated = torch.view_as_real(torch.view_as_complex(pairs_BNMP2.contiguous()) * rotation_MP)
    return rotated.flatten(-2).to(x_BNME.dtype)
