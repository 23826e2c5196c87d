"""PSNR, SSIM and the flow-agreement camera-following score on inputs whose values are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio

from sana_wm.errors import InputError
from sana_wm.eval.metrics import (
    FLOW_STRIDE,
    PSNR_CAP_DB,
    camera_following,
    flow_agreement,
    optical_flow,
    psnr_per_frame,
    ssim_per_frame,
)


def _ramp(height: int = 16, width: int = 64) -> np.ndarray:
    """One frame whose grey level is 4 x the column: 0, 4, ..., 252."""
    row = (4 * np.arange(width)).astype(np.uint8)
    return np.tile(row[None, None, :, None], (1, height, 1, 3))


def test_psnr_identical_frames_are_capped_and_a_one_pixel_shift_has_the_hand_value() -> None:
    frame = _ramp()
    # torchmetrics itself says inf for identical frames: the cap keeps JSON and plots finite.
    same = torch.from_numpy(frame).permute(0, 3, 1, 2).float()
    assert math.isinf(peak_signal_noise_ratio(same, same, data_range=255.0).item())
    # Frame 0 identical, frame 1 shifted right by one pixel (overlap only): every difference is 4 levels,
    # so MSE = 16 and PSNR = 20 log10(255 / 4).
    pred = np.concatenate([frame[:, :, :-1], frame[:, :, 1:]])
    target = np.concatenate([frame[:, :, :-1], frame[:, :, :-1]])
    np.testing.assert_allclose(
        psnr_per_frame(pred, target), [PSNR_CAP_DB, 20 * math.log10(255 / 4)], rtol=1e-6
    )
    # Circular shift: 63 columns differ by 4, the wrapped one by 252 -> MSE = (63 * 16 + 252^2) / 64 = 1008.
    rolled = np.roll(frame, 1, axis=2)
    np.testing.assert_allclose(psnr_per_frame(rolled, frame), [10 * math.log10(255**2 / 1008)], rtol=1e-6)


def test_psnr_of_a_one_level_difference_has_the_hand_value() -> None:
    a = np.zeros((1, 64, 96, 3), np.uint8)
    b = a.copy()
    b[0, 5, 7, 1] = 1  # one level, one channel, one pixel: MSE = 1 / (64 * 96 * 3)
    expected = 10 * math.log10(255**2 * 64 * 96 * 3)
    np.testing.assert_allclose(psnr_per_frame(b, a), [expected], rtol=1e-6)
    assert expected < PSNR_CAP_DB  # 90.8 dB: at 64 x 96 not even this reaches the cap


def test_ssim_identical_is_one_and_constant_frames_give_the_luminance_term() -> None:
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, size=(3, 24, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(ssim_per_frame(video, video), 1.0, atol=1e-6)
    # Constant frames a and b: no variance, SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 255)^2.
    a, b = np.full((1, 24, 32, 3), 100, np.uint8), np.full((1, 24, 32, 3), 110, np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
    assert 1.0 - expected > 4e-3
    np.testing.assert_allclose(ssim_per_frame(a, b), [expected], atol=3e-4)  # float32 variance round-off
    # The negative: equal means and variances, covariance -variance, so SSIM is close to -1.
    assert (ssim_per_frame(255 - video, video) < -0.9).all()


@pytest.mark.parametrize(
    "pred",
    [
        np.zeros((2, 16, 16, 3), np.uint8),
        np.zeros((3, 16, 16, 3), np.float32),
        np.zeros((3, 16, 16), np.uint8),
    ],
)
def test_metric_inputs_are_checked(pred) -> None:
    target = np.zeros((3, 16, 16, 3), np.uint8)
    for metric in (psnr_per_frame, ssim_per_frame, camera_following):
        with pytest.raises(InputError, match="^frames: ") as err:
            metric(pred, target)
        assert "\n" not in str(err.value)


def test_flow_agreement_of_hand_made_fields() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(size=(1, 8, 8, 2)).astype(np.float32)
    tiny = np.full_like(r, 0.01)
    pairs = np.concatenate([r, np.zeros_like(r), -r, r / 2, tiny, r])
    refs = np.concatenate([r, r, r, r, tiny, np.zeros_like(r)])
    # same, still, opposite, half speed (2 * 0.5 / 1.25), both still, moving where the truth is still.
    np.testing.assert_allclose(flow_agreement(pairs, refs), [1.0, 0.0, -1.0, 0.8, 1.0, 0.0], atol=1e-6)


def _sliding(texture: np.ndarray, offsets: np.ndarray, width: int = 96) -> np.ndarray:
    """Frames that look at ``texture`` through a window moved to the given column offsets."""
    return np.stack([texture[:, int(o) : int(o) + width] for o in offsets])


def test_camera_following_perfect_for_the_truth_poor_for_still_reversed_and_slow() -> None:
    import cv2

    rng = np.random.default_rng(2)
    noise = rng.integers(0, 256, size=(64, 200, 3), dtype=np.uint8)
    texture = cv2.GaussianBlur(noise, (0, 0), 2.0)  # smooth enough for the flow to track
    frames = 13
    gt = _sliding(texture, 40 + 2 * np.arange(frames))  # the camera pans: content moves 2 px per frame
    assert optical_flow(gt).shape == (frames - FLOW_STRIDE, 64, 96, 2)
    same = camera_following(gt, gt)
    assert same.score == 1.0 and same.flow_ratio == 1.0 and (same.agreement_P == 1.0).all()
    still = camera_following(np.repeat(gt[:1], frames, axis=0), gt)
    assert abs(still.score) < 1e-3 and still.flow_ratio < 1e-2
    backwards = camera_following(_sliding(texture, 40 - 2 * np.arange(frames) + 2 * frames), gt)
    assert backwards.score < -0.97 and abs(backwards.flow_ratio - 1.0) < 0.03
    slow = camera_following(_sliding(texture, 40 + np.arange(frames)), gt)  # half speed: 0.8 in theory
    assert abs(slow.score - 0.8) < 0.03 and abs(slow.flow_ratio - 0.5) < 0.03
    # Reusing the ground truth's flow gives the same numbers.
    reused = camera_following(
        slow_video := _sliding(texture, 40 + np.arange(frames)), gt, gt_flow=optical_flow(gt)
    )
    np.testing.assert_array_equal(reused.agreement_P, camera_following(slow_video, gt).agreement_P)
