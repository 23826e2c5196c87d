"""Frame-count rules tying a camera trajectory to the LTX-2 VAE (pixel frames = 8k + 1)."""

from __future__ import annotations

import logging

from sana_wm.latent_shape import LTX2_STRIDE, latent_frames

logger = logging.getLogger(__name__)


def snap_num_frames(n: int, stride: int = LTX2_STRIDE.time, upper_bound: int | None = None) -> int:
    """Snap ``n`` to the nearest count of the form ``stride * k + 1``.

    Ties go up. When the rounded-up value exceeds ``upper_bound`` the rounded-down one is used. The result
    is never below 1 (``n < 1`` gives 1).
    """
    if n < 1:
        return 1
    below = n - (n - 1) % stride
    if below == n:
        return n
    above = below + stride
    snapped = below if n - below < above - n else above
    if upper_bound is not None and snapped > upper_bound:
        snapped = below
    return max(snapped, 1)


def align_num_frames(requested: int, trajectory_len: int, stride: int = LTX2_STRIDE.time) -> int:
    """Frames to generate: ``min(requested, trajectory_len)`` snapped to ``stride * k + 1`` poses or fewer.

    Logs a warning when the result differs from ``requested``.
    """
    if trajectory_len < 1:
        raise ValueError(f"trajectory must hold at least one pose, got {trajectory_len}")
    num_frames = snap_num_frames(min(requested, trajectory_len), stride, upper_bound=trajectory_len)
    if num_frames != requested:
        logger.warning(
            "--num_frames: using %d frames instead of %d (the trajectory has %d poses; videos have "
            "%dk+1 frames)",
            num_frames,
            requested,
            trajectory_len,
            stride,
        )
    return num_frames


__all__ = ["align_num_frames", "latent_frames", "snap_num_frames"]
