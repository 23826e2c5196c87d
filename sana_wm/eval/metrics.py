"""Per-frame image metrics against ground truth and a network-free camera-following score.

Frames are RGB ``uint8`` arrays ``(F, H, W, 3)``; generated and ground-truth videos have the same shape.

- PSNR (torchmetrics, ``data_range = 255``) per frame, in dB. Identical frames have an infinite PSNR; it is
  reported as :data:`PSNR_CAP_DB` (100 dB) so that every number stays finite in JSON and plots. The cap
  also takes frames closer than MSE = 255^2 * 1e-10 (squared differences summing to less than 4.4 grey
  levels^2 over a whole 352 x 640 frame): identical for any practical purpose.
- SSIM (torchmetrics: Gaussian window of 11 pixels, sigma 1.5, ``k1 = 0.01``, ``k2 = 0.03``,
  ``data_range = 255``) per frame, averaged over the three channels and the valid pixels of the window.
- Camera following: does the generated video move the way the ground truth moves? Dense optical flow
  (OpenCV Farneback, on grey frames scaled to at most :data:`FLOW_MAX_WIDTH` pixels wide) is computed from
  frame ``t`` to ``t + k`` (``k`` = :data:`FLOW_STRIDE`) in both videos, and per pair of frames the
  agreement of the two flow fields ``g`` (generated) and ``r`` (ground truth), summed over every pixel and
  both components, is

      A_t = 2 <g, r> / (|g|^2 + |r|^2)

  which is 1 exactly when the fields are equal, 0 when the generated video stands still while the ground
  truth moves (or moves orthogonally), -1 for equal and opposite motion, and is lowered by a wrong speed
  (half the speed gives 0.8). Pairs where both fields are below :data:`STILL_FLOW_PX` RMS (both videos stand
  still) count as agreeing, A_t = 1. The clip score is the mean of A_t over the pairs.

Why flow agreement rather than re-estimating poses (essential matrix + ``recoverPose``) and comparing them
with the path: the essential matrix is undefined when the camera does not translate (turning on the spot,
standing still, both common in our paths), needs enough well-spread feature matches (few on small,
repetitive procedural frames), and only gives the direction of the translation; the flow comparison needs
none of that, applies the same estimator to both videos, so its biases cancel, and is also sensitive to
speed. Consecutive frames (k = 1) move by well under a pixel at 0.02-0.08 m per frame and their flow is
dominated by texture aliasing; with k = 4 a copy of a rendered clip lagged by one frame scores 0.86-0.97,
the same world seen along another random path -0.35 to 0.19 (6 held-out worlds, 176 x 320, 41 frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from sana_wm.errors import InputError

PSNR_CAP_DB = 100.0
DATA_RANGE = 255.0
SSIM_KERNEL = 11
FLOW_STRIDE = 4
FLOW_MAX_WIDTH = 320
STILL_FLOW_PX = 0.05
# cv2.calcOpticalFlowFarneback: pyramid scale, levels, window, iterations, polynomial size and sigma.
# Larger windows and polynomials than OpenCV's sample values: smoother fields on repetitive textures.
FARNEBACK_PARAMS = (0.5, 4, 21, 5, 7, 1.5)
_CHUNK_FRAMES = 8  # SSIM keeps ~15 float maps per frame: bound the memory of long, large videos


def check_videos(pred_FHW3: np.ndarray, target_FHW3: np.ndarray, name: str = "frames") -> None:
    """Both arrays uint8 ``(F, H, W, 3)`` of the same shape, else :class:`InputError`."""
    for array in (pred_FHW3, target_FHW3):
        if (
            not isinstance(array, np.ndarray)
            or array.dtype != np.uint8
            or array.ndim != 4
            or array.shape[3] != 3
        ):
            got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
            raise InputError(f"{name}: expected uint8 (F, H, W, 3) videos, got {got}")
    if pred_FHW3.shape != target_FHW3.shape:
        raise InputError(f"{name}: generated {pred_FHW3.shape} and ground truth {target_FHW3.shape} differ")


def _chunks(pred_FHW3: np.ndarray, target_FHW3: np.ndarray, device: str | torch.device):
    """Float32 ``(N, 3, H, W)`` tensors in 0..255 on ``device``, at most ``_CHUNK_FRAMES`` frames each."""
    for start in range(0, len(pred_FHW3), _CHUNK_FRAMES):
        frames = slice(start, start + _CHUNK_FRAMES)
        pred = torch.from_numpy(pred_FHW3[frames]).to(device).permute(0, 3, 1, 2).float()
        target = torch.from_numpy(target_FHW3[frames]).to(device).permute(0, 3, 1, 2).float()
        yield pred, target


def psnr_per_frame(
    pred_FHW3: np.ndarray, target_FHW3: np.ndarray, *, device: str | torch.device = "cpu"
) -> np.ndarray:
    """PSNR of every frame in dB, ``(F,)`` float64; identical frames give :data:`PSNR_CAP_DB`. ``device``
    runs the computation."""
    check_videos(pred_FHW3, target_FHW3)
    values = [
        peak_signal_noise_ratio(pred, target, data_range=DATA_RANGE, reduction="none", dim=(1, 2, 3))
        for pred, target in _chunks(pred_FHW3, target_FHW3, device)
    ]
    psnr_F = torch.cat(values).double().cpu().numpy()
    return np.minimum(psnr_F, PSNR_CAP_DB)


def ssim_per_frame(
    pred_FHW3: np.ndarray, target_FHW3: np.ndarray, *, device: str | torch.device = "cpu"
) -> np.ndarray:
    """SSIM of every frame, ``(F,)`` float64 in [-1, 1]; identical frames give 1. Frames must be at least
    :data:`SSIM_KERNEL` pixels on each side. ``device`` runs the computation (a GPU is ~50x faster)."""
    check_videos(pred_FHW3, target_FHW3)
    if min(pred_FHW3.shape[1:3]) < SSIM_KERNEL:
        raise InputError(f"frames: SSIM needs frames of at least {SSIM_KERNEL} pixels, got {pred_FHW3.shape}")
    values = [
        structural_similarity_index_measure(pred, target, data_range=DATA_RANGE, reduction="none")
        for pred, target in _chunks(pred_FHW3, target_FHW3, device)
    ]
    return torch.cat(values).double().cpu().numpy()


def optical_flow(frames_FHW3: np.ndarray, stride: int = FLOW_STRIDE) -> np.ndarray:
    """Farneback flow from frame ``t`` to ``t + stride`` for every ``t``: ``(F - stride, h, w, 2)`` float32
    ``(dx, dy)`` in pixels of the frames scaled to at most :data:`FLOW_MAX_WIDTH` wide (``h``, ``w``)."""
    height, width = frames_FHW3.shape[1:3]
    scale = min(1.0, FLOW_MAX_WIDTH / width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    grey = []
    for frame_HW3 in frames_FHW3:
        g = cv2.cvtColor(np.ascontiguousarray(frame_HW3), cv2.COLOR_RGB2GRAY)
        grey.append(cv2.resize(g, size, interpolation=cv2.INTER_AREA) if scale < 1.0 else g)
    flows = [
        cv2.calcOpticalFlowFarneback(grey[t], grey[t + stride], None, *FARNEBACK_PARAMS, 0)
        for t in range(len(grey) - stride)
    ]
    if not flows:
        return np.zeros((0, size[1], size[0], 2), dtype=np.float32)
    return np.stack(flows)


@dataclass(frozen=True)
class CameraFollowing:
    """Flow agreement of a generated video with the ground truth (see the module docstring).

    Attributes:
        agreement_P: ``A_t`` for each pair ``(t, t + stride)``, ``P = F - stride`` values in [-1, 1].
        score: mean of ``agreement_P`` (nan when the videos are shorter than ``stride + 1`` frames).
        flow_ratio: RMS flow of the generated video over that of the ground truth, all pairs together
            (1 = the same amount of motion, 0 = a still video; nan when the ground truth never moves).
    """

    agreement_P: np.ndarray
    score: float
    flow_ratio: float


def flow_agreement(flow_gen_PHW2: np.ndarray, flow_ref_PHW2: np.ndarray) -> np.ndarray:
    """``A_t = 2 <g, r> / (|g|^2 + |r|^2)`` per pair, 1 where both fields are still: ``(P,)`` float64."""
    g = flow_gen_PHW2.reshape(len(flow_gen_PHW2), -1).astype(np.float64)
    r = flow_ref_PHW2.reshape(len(flow_ref_PHW2), -1).astype(np.float64)
    gg, rr = (g * g).sum(axis=1), (r * r).sum(axis=1)
    limit = (g.shape[1] // 2) * STILL_FLOW_PX**2  # pixels x (RMS length of a still field)^2
    still = (gg <= limit) & (rr <= limit)
    agreement = 2.0 * (g * r).sum(axis=1) / np.where(still, 1.0, gg + rr)
    return np.where(still, 1.0, agreement)


def camera_following(
    gen_FHW3: np.ndarray,
    gt_FHW3: np.ndarray,
    *,
    stride: int = FLOW_STRIDE,
    gt_flow: np.ndarray | None = None,
) -> CameraFollowing:
    """Flow agreement of ``gen`` with ``gt`` (``gt_flow``: the ground truth's :func:`optical_flow`, when it
    was already computed for another video of the same clip)."""
    check_videos(gen_FHW3, gt_FHW3)
    flow_ref = optical_flow(gt_FHW3, stride) if gt_flow is None else gt_flow
    flow_gen = optical_flow(gen_FHW3, stride)
    if flow_ref.shape != flow_gen.shape:
        raise InputError(f"gt_flow: shape {flow_ref.shape}, the generated video's flow is {flow_gen.shape}")
    agreement_P = flow_agreement(flow_gen, flow_ref)
    score = float(agreement_P.mean()) if len(agreement_P) else float("nan")
    ref_energy = float(np.square(flow_ref, dtype=np.float64).sum())
    gen_energy = float(np.square(flow_gen, dtype=np.float64).sum())
    ratio = float(np.sqrt(gen_energy / ref_energy)) if ref_energy > 0 else float("nan")
    return CameraFollowing(agreement_P, score, ratio)
