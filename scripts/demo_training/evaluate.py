"""Held-out numbers of the demo model: does the generated video move the way the camera does?

Shape letters: ``F`` frames, ``H``/``W`` pixels.

Motion: the global image translation between frames ``k`` and ``k + gap`` is estimated by phase correlation
of their Hann-windowed grey images (the peak of the normalised cross-power spectrum, integer pixels). A yaw
or a sideways step moves the whole image horizontally, a pitch vertically; the per-pair shifts of a
generated video are compared with those of the true render along the same camera path (Pearson correlation
over all pairs of all held-out clips, and the fraction of clearly moving pairs whose horizontal shift has
the right sign). The demo world is also generated with the mirrored action (yaw keys swapped): a model that
follows the camera must then move the other way (negative correlation with the true render).
"""

from __future__ import annotations

import numpy as np


def grey(frames_FHW3: np.ndarray) -> np.ndarray:
    """Luma-like grey ``(F, H, W)`` float64 in [0, 1]."""
    return frames_FHW3.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0


def phase_shift(a_HW: np.ndarray, b_HW: np.ndarray) -> tuple[int, int]:
    """Integer ``(dy, dx)`` such that ``b`` is ``a`` moved by ``dy`` rows and ``dx`` columns (phase
    correlation of the Hann-windowed, mean-removed images)."""
    height, width = a_HW.shape
    window = np.outer(np.hanning(height), np.hanning(width))
    fa = np.fft.fft2((a_HW - a_HW.mean()) * window)
    fb = np.fft.fft2((b_HW - b_HW.mean()) * window)
    cross = fb * np.conj(fa)
    response = np.fft.ifft2(cross / np.maximum(np.abs(cross), 1e-12)).real
    dy, dx = np.unravel_index(int(np.argmax(response)), response.shape)
    return int(dy if dy <= height // 2 else dy - height), int(dx if dx <= width // 2 else dx - width)


def motion(frames_FHW3: np.ndarray, gap: int = 4) -> np.ndarray:
    """Shifts ``(P, 2)`` = ``(dy, dx)`` from frame ``k`` to ``k + gap``, for ``k = 0, gap, 2 gap, ...``."""
    g = grey(frames_FHW3)
    return np.array([phase_shift(g[k], g[k + gap]) for k in range(0, len(g) - gap, gap)], dtype=np.float64)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two flat arrays (0 when either is constant)."""
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / norm) if norm > 0 else 0.0


def sign_agreement(generated_dx: np.ndarray, true_dx: np.ndarray, min_shift: float = 1.0) -> float:
    """Fraction of pairs with ``|true dx| >= min_shift`` whose generated dx has its sign (NaN if none)."""
    moving = np.abs(true_dx) >= min_shift
    if not moving.any():
        return float("nan")
    return float(np.mean(np.sign(generated_dx[moving]) == np.sign(true_dx[moving])))


def psnr(a_FHW3: np.ndarray, b_FHW3: np.ndarray) -> float:
    """PSNR in dB of 8-bit frames."""
    mse = float(np.mean((a_FHW3.astype(np.float64) - b_FHW3.astype(np.float64)) ** 2))
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def mirrored_action(action: str, mapping: str) -> str:
    """The action with its yaw keys swapped (j <-> l under v1, a <-> d under v2)."""
    left, right = ("j", "l") if mapping == "v1" else ("a", "d")
    swap = {left: right, right: left, left.upper(): right.upper(), right.upper(): left.upper()}
    return action.translate(str.maketrans(swap))


def motion_metrics(generated: list[np.ndarray], truth: list[np.ndarray], gap: int = 4) -> dict[str, float]:
    """Motion agreement and PSNR of generated videos against the true renders (lists of ``(F, H, W, 3)``)."""
    gen = np.concatenate([motion(v, gap) for v in generated])
    true = np.concatenate([motion(v, gap) for v in truth])
    return {
        "dx_correlation": correlation(gen[:, 1], true[:, 1]),
        "dy_correlation": correlation(gen[:, 0], true[:, 0]),
        "dx_sign_agreement": sign_agreement(gen[:, 1], true[:, 1]),
        "psnr_db": float(np.mean([psnr(g[1:], t[1:]) for g, t in zip(generated, truth, strict=True)])),
        "psnr_first_frame_db": float(
            np.mean([psnr(g[:1], t[:1]) for g, t in zip(generated, truth, strict=True)])
        ),
    }
