"""Procedural surface patterns evaluated at surface coordinates ``(u, v)`` in metres.

A pattern returns a blend factor ``m`` in [0, 1]; the surface colour is ``(1 - m) * colour0 + m * colour1``.
Every pattern is a pure function of world-anchored coordinates (so a camera that moves by one period sees
the same picture) and of an integer hash, so it is identical on every device and every run.

Far away a pixel covers many periods and a point sample shimmers from frame to frame; :func:`pattern`
therefore fades each pattern toward its mean as the pixel footprint approaches the pattern scale (a cheap
analytic pre-filter instead of super-sampling).
"""

from __future__ import annotations

import torch

CHECKER, BRICKS, STRIPES, NOISE = 0, 1, 2, 3
TEXTURES = ("checker", "bricks", "stripes", "noise")

# Bricks are `scale` wide and `scale / 2` tall with mortar joints `MORTAR * scale` thick.
MORTAR = 0.06
_BRICK_AREA = (1.0 - MORTAR) * (1.0 - 2.0 * MORTAR)
_BRICK_JITTER = 0.25
# Mean blend factor of each pattern over one period (what it fades to when it cannot be resolved).
MEANS = (0.5, (1.0 - _BRICK_AREA) + _BRICK_AREA * _BRICK_JITTER / 2.0, 0.5, 0.5)

FADE_START = 0.4
_MASK32 = 0xFFFFFFFF


def hash01(ix: torch.Tensor, iy: torch.Tensor, salt: torch.Tensor | int = 0) -> torch.Tensor:
    """Uniform-looking float32 in [0, 1) from integer lattice coordinates (int64 tensors, any shape).

    A 32-bit integer mix kept in int64 so no product overflows: every factor stays below 2^31 and every
    intermediate below 2^32 before the next multiply.
    """
    h = (ix * 0x27D4EB2D + iy * 0x165667B1 + salt * 0x3C6EF372) & _MASK32
    h = h ^ (h >> 15)
    h = (h * 0x2C1B3C6D) & _MASK32
    h = h ^ (h >> 12)
    h = (h * 0x297A2D39) & _MASK32
    h = h ^ (h >> 15)
    return h.to(torch.float32) * (1.0 / 4294967296.0)


def value_noise(u: torch.Tensor, v: torch.Tensor, salt: torch.Tensor | int = 0) -> torch.Tensor:
    """Smooth 2-D value noise in [0, 1] with unit lattice spacing (bilinear over a smoothstep)."""
    fu, fv = torch.floor(u), torch.floor(v)
    iu, iv = fu.to(torch.int64), fv.to(torch.int64)
    su, sv = u - fu, v - fv
    su = su * su * (3.0 - 2.0 * su)
    sv = sv * sv * (3.0 - 2.0 * sv)
    n00, n10 = hash01(iu, iv, salt), hash01(iu + 1, iv, salt)
    n01, n11 = hash01(iu, iv + 1, salt), hash01(iu + 1, iv + 1, salt)
    return torch.lerp(torch.lerp(n00, n10, su), torch.lerp(n01, n11, su), sv)


def _checker(u: torch.Tensor, v: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return torch.remainder(torch.floor(u / scale) + torch.floor(v / scale), 2.0)


def _stripes(u: torch.Tensor, v: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return torch.remainder(torch.floor(u / scale), 2.0)


def _bricks(u: torch.Tensor, v: torch.Tensor, scale: torch.Tensor, salt: torch.Tensor) -> torch.Tensor:
    row = torch.floor(v / (0.5 * scale))
    shifted = u / scale + 0.5 * torch.remainder(row, 2.0)
    column = torch.floor(shifted)
    joint_u = (shifted - column) < MORTAR
    joint_v = (v / (0.5 * scale) - row) < 2.0 * MORTAR
    jitter = _BRICK_JITTER * hash01(column.to(torch.int64), row.to(torch.int64), salt)
    return torch.where(joint_u | joint_v, torch.ones_like(u), jitter)


def _noise(u: torch.Tensor, v: torch.Tensor, scale: torch.Tensor, salt: torch.Tensor) -> torch.Tensor:
    x, y = u / scale, v / scale
    n = 0.6 * value_noise(x, y, salt) + 0.4 * value_noise(2.03 * x + 17.0, 2.03 * y + 31.0, salt + 1)
    return ((n - 0.5) * 2.2 + 0.5).clamp(0.0, 1.0)


def pattern(
    kind: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    scale: torch.Tensor,
    salt: torch.Tensor,
    footprint: torch.Tensor,
) -> torch.Tensor:
    """Blend factor ``m`` in [0, 1] for N surface points (all inputs 1-D of length N).

    Args:
        kind: texture id per point (:data:`CHECKER`, :data:`BRICKS`, :data:`STRIPES`, :data:`NOISE`).
        u, v: surface coordinates in metres (v runs up a vertical face).
        scale: pattern period in metres (checker tile, stripe width, brick width, noise cell).
        salt: integer per material, decorrelating the hashed patterns of different surfaces.
        footprint: approximate size of one pixel on the surface, in metres.
    """
    m = torch.empty_like(u)
    mean = torch.empty_like(u)
    for k, fn in enumerate((_checker, _bricks, _stripes, _noise)):
        sel = (kind == k).nonzero().squeeze(1)
        if sel.numel() == 0:
            continue
        args = (u[sel], v[sel], scale[sel])
        m[sel] = fn(*args, salt[sel]) if k in (BRICKS, NOISE) else fn(*args)
        mean[sel] = MEANS[k]
    # Fully resolved down to 2.5 pixels per period, fully averaged at 1 pixel per period.
    fade = ((footprint / scale - FADE_START) / (1.0 - FADE_START)).clamp(0.0, 1.0)
    return torch.lerp(m, mean, fade)
