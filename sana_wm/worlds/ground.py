"""A checkered ground plane under a sky gradient, ray-cast for any camera.

The smallest world that shows camera motion at a glance: forward motion streams the checkers towards the
viewer, yaw swings the horizon sideways, pitch moves it up and down. Used by ``sana-wm overlay-demo`` and as a
known-geometry fixture in tests. Conventions are the project's (``docs/conventions.md``): OpenCV camera axes
(+X right, +Y down, +Z forward), camera-to-world poses, world units in metres, world "up" is -Y.
"""

from __future__ import annotations

import numpy as np


def render_checker_ground(
    c2w_44: np.ndarray,
    intrinsics_4: np.ndarray,
    height: int,
    width: int,
    *,
    eye_height_m: float = 1.6,
    tile_m: float = 1.0,
) -> np.ndarray:
    """Render one ``(height, width, 3)`` uint8 frame for camera ``c2w_44`` and pinhole ``[fx, fy, cx, cy]``.

    The ground is the plane y = ``eye_height_m`` (below a camera at the origin, since +Y is down), tiled
    with ``tile_m`` squares in two tones; shading fades with distance so the horizon reads clearly. Rays that
    do not hit the ground within 200 m show a vertical sky gradient.
    """
    fx, fy, cx, cy = (float(v) for v in intrinsics_4)
    xs = (np.arange(width, dtype=np.float32) + 0.5 - cx) / fx
    ys = (np.arange(height, dtype=np.float32) + 0.5 - cy) / fy
    dirs_cam_HW3 = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None], np.float32(1.0)), axis=-1)
    rot, origin = c2w_44[:3, :3].astype(np.float32), c2w_44[:3, 3].astype(np.float32)
    dirs_HW3 = dirs_cam_HW3 @ rot.T
    dirs_HW3 /= np.linalg.norm(dirs_HW3, axis=-1, keepdims=True)

    dy = dirs_HW3[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        dist_HW = (eye_height_m - origin[1]) / dy
    hit_HW = (dy > 1e-6) & (dist_HW < 200.0)
    dist_HW = np.where(hit_HW, dist_HW, 0.0)
    px = origin[0] + dist_HW * dirs_HW3[..., 0]
    pz = origin[2] + dist_HW * dirs_HW3[..., 2]
    checker = (np.floor(px / tile_m) + np.floor(pz / tile_m)) % 2
    ground_HW3 = np.where(checker[..., None] > 0, [0.78, 0.72, 0.58], [0.33, 0.47, 0.30]).astype(np.float32)
    fog_HW = np.exp(-dist_HW / 40.0)[..., None]
    horizon_rgb = np.array([0.80, 0.85, 0.90], dtype=np.float32)
    ground_HW3 = ground_HW3 * fog_HW + horizon_rgb * (1.0 - fog_HW)

    # Sky: blend from the horizon colour to deep blue as the ray points further up (-Y).
    up_HW = np.clip(-dy, 0.0, 1.0)[..., None]
    sky_HW3 = horizon_rgb * (1.0 - up_HW) + np.array([0.25, 0.45, 0.85], dtype=np.float32) * up_HW
    rgb_HW3 = np.where(hit_HW[..., None], ground_HW3, sky_HW3)
    return (np.clip(rgb_HW3, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
