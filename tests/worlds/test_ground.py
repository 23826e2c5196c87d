import math

import numpy as np

from sana_wm.worlds import render_checker_ground

H, W = 48, 80
F = W / (2 * math.tan(math.radians(35)))
INTR = np.array([F, F, W / 2, H / 2], dtype=np.float32)


def _pose(x: float = 0.0, z: float = 0.0, yaw_deg: float = 0.0) -> np.ndarray:
    a = math.radians(yaw_deg)
    c2w = np.eye(4, dtype=np.float32)
    c2w[:3, :3] = [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
    c2w[0, 3], c2w[2, 3] = x, z
    return c2w


def test_two_tiles_forward_is_the_same_picture() -> None:
    # The checker has a period of two tiles and fog depends only on distance, so moving 2 m is invisible...
    a = render_checker_ground(_pose(), INTR, H, W).astype(int)
    b = render_checker_ground(_pose(z=2.0), INTR, H, W).astype(int)
    assert np.abs(a - b).max() <= 1
    # ...while moving one tile swaps the two tones on the near ground.
    c = render_checker_ground(_pose(z=1.0), INTR, H, W).astype(int)
    near = slice(H - 8, H)
    assert np.abs(a[near] - c[near]).mean() > 40


def test_horizon_sits_at_the_principal_point_row() -> None:
    img = render_checker_ground(_pose(), INTR, H, W).astype(int)
    # Sky is blue-dominant above the horizon; the nearest ground rows are not.
    assert (img[: H // 2 - 1, :, 2] > img[: H // 2 - 1, :, 0]).all()
    assert (img[H - 4 :, :, 2] <= img[H - 4 :, :, 0] + 10).mean() > 0.9


def test_yaw_by_90_degrees_matches_swapping_axes() -> None:
    # Turning right by 90 degrees at the origin looks along +X; the checker is symmetric under x<->z.
    a = render_checker_ground(_pose(yaw_deg=0.0), INTR, H, W).astype(int)
    b = render_checker_ground(_pose(yaw_deg=90.0), INTR, H, W).astype(int)
    assert np.abs(a - b[:, ::-1]).mean() < 2.0
