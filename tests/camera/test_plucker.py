"""Plücker ray maps and the packed camera tensors, against the diffusers oracle and hand-derived values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sana_wm.camera import action_to_c2w, compute_raymap, prepare_camera

from .test_pose import random_c2w


def _random_intrinsics(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    low = [0.3 * width, 0.3 * height, 0.3 * width, 0.3 * height]
    high = [1.5 * width, 1.5 * height, 0.7 * width, 0.7 * height]
    return rng.uniform(low, high, size=(count, 4)).astype(np.float32)


def test_raymap_matches_diffusers():
    cam_utils = pytest.importorskip("diffusers.pipelines.sana_wm.cam_utils")
    rng = np.random.default_rng(0)
    for height, width in ((13, 17), (22, 40), (1, 1)):
        intrinsics = torch.from_numpy(_random_intrinsics(rng, 6, height, width))
        c2w = torch.from_numpy(random_c2w(rng, 6, spread=20.0).astype(np.float32))
        ours = compute_raymap(intrinsics, c2w, height, width)
        ref = cam_utils.compute_raymap(intrinsics, c2w, height, width)
        assert ours.shape == (6, height, width, 6) and ours.dtype == torch.float32
        torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-5)


def test_raymap_hand_values():
    c2w = np.eye(4)[None].copy()
    c2w[0, :3, 3] = [1.0, 2.0, 3.0]
    rays = compute_raymap(
        torch.tensor([[2.0, 4.0, 1.0, 2.0]], dtype=torch.float64), torch.from_numpy(c2w), 5, 4
    )
    assert rays.dtype == torch.float64
    # Pixel (x=1, y=2) is the principal point: the ray is the optical axis, moment = o x (0, 0, 1).
    torch.testing.assert_close(rays[0, 2, 1], torch.tensor([0.0, 0, 1, 2, -1, 0], dtype=torch.float64))
    # Pixel (x=3, y=2) is fx = 2 px right of it: direction (1, 0, 1) / sqrt(2), no half-pixel offset.
    d = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64) / math.sqrt(2.0)
    m = torch.linalg.cross(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), d)
    torch.testing.assert_close(rays[0, 2, 3], torch.cat([d, m]))
    torch.testing.assert_close(rays[..., :3].norm(dim=-1), torch.ones(1, 5, 4, dtype=torch.float64))
    torch.testing.assert_close(
        (rays[..., :3] * rays[..., 3:]).sum(-1), torch.zeros(1, 5, 4, dtype=torch.float64)
    )


@pytest.mark.parametrize("num_frames", [1, 2, 7, 8, 9, 17, 23, 41])
def test_prepare_camera_matches_diffusers(num_frames):
    cam_utils = pytest.importorskip("diffusers.pipelines.sana_wm.cam_utils")
    rng = np.random.default_rng(num_frames)
    c2w = random_c2w(rng, num_frames, spread=10.0).astype(np.float32)
    intrinsics = _random_intrinsics(rng, num_frames, 704, 1280)
    conditions, plucker = prepare_camera(c2w, intrinsics)
    ref = cam_utils.prepare_camera(c2w, intrinsics, target_size=(704, 1280), vae_stride=(8, 32, 32))
    latents = (num_frames - 1) // 8 + 1
    assert conditions.shape == (latents, 20) and plucker.shape == (48, latents, 22, 40)
    assert conditions.dtype == plucker.dtype == torch.float32
    # Relative translations reach ~30 m; the oracle works in float32 throughout, we in float64.
    torch.testing.assert_close(conditions, ref["raymap"], atol=3e-5, rtol=1e-5)
    torch.testing.assert_close(plucker, ref["chunk_plucker"], atol=3e-5, rtol=1e-5)


def test_prepare_camera_other_geometry_and_tensor_input_match_diffusers():
    cam_utils = pytest.importorskip("diffusers.pipelines.sana_wm.cam_utils")
    c2w = action_to_c2w("w-30,jw-20,ik-3,l-12", rotation_speed_deg=3.0)[:57]
    intrinsics = np.tile(np.array([300.0, 290.0, 250.0, 130.0], dtype=np.float32), (57, 1))
    ours = prepare_camera(torch.from_numpy(c2w), torch.from_numpy(intrinsics), 256, 512, (4, 16, 16))
    ref = cam_utils.prepare_camera(c2w, intrinsics, target_size=(256, 512), vae_stride=(4, 16, 16))
    assert ours[1].shape == (24, 15, 16, 32)
    torch.testing.assert_close(ours[0], ref["raymap"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours[1], ref["chunk_plucker"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("num_frames", "windows"),
    [
        (3, [[0, 1, 2, 2, 2, 2, 2, 2]]),
        (12, [list(range(8)), list(range(1, 9))]),
        (17, [list(range(8)), list(range(1, 9)), list(range(9, 17))]),
    ],
)
def test_window_layout(num_frames, windows):
    # Frame i sits at x = i + 5 looking along +Z, so after relativisation the moment's y component at the
    # principal pixel is -(i): the channel layout 6 j + c reveals which frame fills window slot j.
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    c2w[:, 0, 3] = np.arange(num_frames) + 5.0
    intrinsics = np.tile([1000.0, 1000.0, 640.0, 352.0], (num_frames, 1))
    conditions, plucker = prepare_camera(c2w, intrinsics)
    slots = -plucker[4::6, :, 11, 20].T  # (T_lat, 8): principal pixel (20, 11) on the 22 x 40 grid
    torch.testing.assert_close(slots, torch.tensor(windows, dtype=torch.float32), atol=0, rtol=0)
    torch.testing.assert_close(plucker[2::6, :, 11, 20], torch.ones(8, len(windows)))
    expected_first = torch.cat([torch.eye(4).flatten(), torch.tensor([31.25, 1000 / 32, 20.0, 11.0])])
    torch.testing.assert_close(conditions[0], expected_first, atol=0, rtol=0)
    assert conditions[1:, 3].tolist() == [8.0 * k for k in range(1, len(windows))]
