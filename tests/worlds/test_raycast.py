import math

import numpy as np
import pytest
import torch

from sana_wm.camera import compute_raymap
from sana_wm.worlds import ClipSettings, Materials, World, camera_rays, make_clip, render
from sana_wm.worlds.paths import yaw_pitch_to_rotation
from sana_wm.worlds.textures import CHECKER, NOISE

H, W = 48, 80
FOCAL = 40.0
INTR = np.array([FOCAL, FOCAL, 40.0, 24.0], dtype=np.float32)  # integer principal point: an exact centre ray


def _pose(x: float = 0.0, y: float = 0.0, z: float = 0.0, yaw_deg: float = 0.0, pitch_deg: float = 0.0):
    c2w = np.eye(4, dtype=np.float32)
    c2w[:3, :3] = yaw_pitch_to_rotation(np.radians([yaw_deg]), np.radians([pitch_deg]))[0]
    c2w[:3, 3] = x, y, z
    return c2w


def _world(**kwargs) -> World:
    materials = Materials(
        kind=np.array([CHECKER, NOISE], np.int64),
        colour0=np.array([[0.8, 0.2, 0.1], [0.5, 0.5, 0.5]], np.float32),
        colour1=np.array([[0.1, 0.3, 0.9], [0.4, 0.4, 0.4]], np.float32),
        scale_m=np.array([1.0, 0.5], np.float32),
    )
    base = dict(
        ground_y=1.5,
        ground_material=0,
        materials=materials,
        sun_dir=np.array([0.3, -0.8, 0.52], np.float32),
        ambient=0.35,
        fog_m=50.0,
    )
    return World(**{**base, **kwargs})


def _depth(world: World, c2w: np.ndarray, shadows: bool = True):
    out = render(world, c2w[None], INTR[None], H, W, shadows=shadows)
    return out.depth_FHW[0].numpy(), out.rgb_FHW3[0].numpy().astype(np.int64)


def test_rays_are_the_plucker_rays_of_the_camera_module() -> None:
    g = torch.Generator().manual_seed(0)
    yaw, pitch = (torch.rand(5, generator=g) - 0.5) * 3, (torch.rand(5, generator=g) - 0.5)
    c2w = torch.eye(4).repeat(5, 1, 1)
    c2w[:, :3, :3] = torch.from_numpy(yaw_pitch_to_rotation(yaw.numpy(), pitch.numpy())).float()
    c2w[:, :3, 3] = torch.randn(5, 3, generator=g)
    intr = torch.tensor([[50.0, 45.0, 39.5, 20.0]]).repeat(5, 1) + torch.rand(5, 4, generator=g)
    origins, dirs, z_per_m = camera_rays(c2w, intr, H, W)
    reference = compute_raymap(intr.double(), c2w.double(), H, W)
    assert (dirs - reference[..., :3]).abs().max().item() < 1e-6
    assert torch.equal(origins, c2w[:, :3, 3])
    # z_per_m is the camera-z of a unit step: the third camera-frame component of the unit ray.
    dirs_cam = torch.einsum("fji,fhwj->fhwi", c2w[:, :3, :3], dirs)
    assert (dirs_cam[..., 2] - z_per_m).abs().max().item() < 1e-6


def test_sphere_box_and_pillar_depths_are_analytic() -> None:
    sphere = _world(spheres_N4=np.array([[0.0, 0.0, 10.0, 1.0]], np.float32), sphere_material=np.array([1]))
    depth, _ = _depth(sphere, _pose())
    assert depth[24, 40] == pytest.approx(9.0, abs=1e-4)
    # Turned 90 degrees right (looking along +X) from (-3, 0, 10): the same sphere, 2 m in front.
    depth, _ = _depth(sphere, _pose(x=-3.0, z=10.0, yaw_deg=90.0))
    assert depth[24, 40] == pytest.approx(2.0, abs=1e-4)
    # A pixel off-centre: depth (camera z) of the sphere's front surface along that ray, by hand.
    ray = np.array([(42 - 40) / FOCAL, (22 - 24) / FOCAL, 1.0])
    ray /= np.linalg.norm(ray)
    b = ray @ np.array([0.0, 0.0, 10.0])
    t = b - math.sqrt(b * b - (100.0 - 1.0))
    depth, _ = _depth(sphere, _pose())
    assert depth[22, 42] == pytest.approx(t * ray[2], abs=1e-4)

    # A box facing the camera has constant depth over its front face, at any yaw multiple of 90 deg.
    box = np.array([[0.2, -0.1, 6.0, 1.0, 0.8, 1.0, math.pi / 2]], np.float32)
    depth, _ = _depth(_world(boxes_N7=box, box_material=np.array([1])), _pose())
    front = depth[24 - 5 : 24 + 5, 40 - 5 : 40 + 5]
    np.testing.assert_allclose(front, 5.0, atol=1e-4)

    pillar = np.array([[0.0, 8.0, 0.5, -3.0, 1.5]], np.float32)
    depth, _ = _depth(_world(cylinders_N5=pillar, cylinder_material=np.array([1])), _pose())
    assert depth[24, 40] == pytest.approx(7.5, abs=1e-4)
    assert depth[12, 40] == pytest.approx(7.5, abs=1e-4)  # a vertical line of the pillar: same depth
    assert np.isinf(depth[4, 40])  # above the pillar's top (y = -3 m): sky
    # Column 42: x = 0.05 z on the circle x^2 + (z - 8)^2 = 0.25, the nearer root.
    a, b, c = 1 + 0.05**2, -16.0, 64.0 - 0.25
    assert depth[24, 42] == pytest.approx((-b - math.sqrt(b * b - 4 * a * c)) / (2 * a), abs=1e-4)


def _ground_colour(world: World, x: float, z: float, dist: float) -> np.ndarray:
    cell = (math.floor(x / 1.0) + math.floor(z / 1.0)) % 2
    albedo = world.materials.colour1[0] if cell else world.materials.colour0[0]
    sun = world.sun_dir / np.linalg.norm(world.sun_dir)
    lit = albedo * (world.ambient + (1 - world.ambient) * max(0.0, -sun[1]))
    fog = math.exp(-dist / world.fog_m)
    return np.round(np.clip(lit * fog + world.sky_horizon * (1 - fog), 0, 1) * 255)


def test_ground_pixel_depth_and_colour() -> None:
    world = _world()
    depth, rgb = _depth(world, _pose())
    for row, col in ((40, 40), (42, 10), (47, 70)):  # near enough that the texture is resolved
        dx, dy = (col - 40) / FOCAL, (row - 24) / FOCAL
        z = 1.5 / dy
        assert depth[row, col] == pytest.approx(z, rel=1e-5)
        expected = _ground_colour(world, dx * z, z, z * math.sqrt(1 + dx * dx + dy * dy))
        np.testing.assert_allclose(rgb[row, col], expected, atol=1)
    # The horizon row (the principal point's) and everything above it is sky.
    assert np.isinf(depth[:25]).all()
    # Just below the horizon a pixel spans many tiles: the checker is averaged (no shimmer), then fogged.
    z = 1.5 / (1 / FOCAL)
    fog = math.exp(-z * math.sqrt(1 + (1 / FOCAL) ** 2) / world.fog_m)
    mean = (
        (world.materials.colour0[0] + world.materials.colour1[0])
        / 2
        * (world.ambient + (1 - world.ambient) * 0.8)
    )
    expected = np.round((mean * fog + world.sky_horizon * (1 - fog)) * 255)
    np.testing.assert_allclose(rgb[25, 40], expected, atol=1)


def test_translation_by_one_checker_period_keeps_the_ground_pixels() -> None:
    world = _world(ground_material=0)
    _, a = _depth(world, _pose(yaw_deg=20, pitch_deg=-15))
    _, b = _depth(world, _pose(x=2.0, z=-4.0, yaw_deg=20, pitch_deg=-15))
    _, c = _depth(world, _pose(x=1.0, yaw_deg=20, pitch_deg=-15))
    differ = np.abs(a - b).max(axis=-1) > 1
    assert differ.mean() < 2e-3  # only pixels exactly on a tile edge may round the other way
    ground = slice(30, H)
    assert np.abs(a[ground] - c[ground]).mean() > 20  # one tile sideways swaps the two colours


def test_hard_shadow_is_ambient_only() -> None:
    # Pixel (44, 43) sees the ground at (0.316, 1.5, 3.158) (mid-tile); a sphere floats right above it.
    row, col = 43, 44
    z = 1.5 / ((row - 24) / FOCAL)
    x = (col - 40) / FOCAL * z
    world = _world(
        sun_dir=np.array([0.0, -1.0, 0.0], np.float32),  # straight overhead
        spheres_N4=np.array([[x, -1.0, z, 0.6]], np.float32),
        sphere_material=np.array([1]),
    )
    depth, shadowed = _depth(world, _pose())
    _, lit = _depth(world, _pose(), shadows=False)
    assert depth[row, col] == pytest.approx(z, rel=1e-5)
    fog = math.exp(-z * math.sqrt(1 + ((col - 40) ** 2 + (row - 24) ** 2) / FOCAL**2) / world.fog_m)
    albedo = world.materials.colour1[0] if (math.floor(x) + math.floor(z)) % 2 else world.materials.colour0[0]
    for image, light in ((shadowed, world.ambient), (lit, 1.0)):
        expected = np.round(np.clip(albedo * light * fog + world.sky_horizon * (1 - fog), 0, 1) * 255)
        np.testing.assert_allclose(image[row, col], expected, atol=1)
    assert np.abs(shadowed[row, col] - lit[row, col]).max() > 40


def test_same_seed_same_pixels_and_other_seed_other_pixels() -> None:
    settings = ClipSettings(num_frames=9, height=H, width=W, seed=7)
    clip = make_clip(settings, 3)
    again = make_clip(settings, 3)
    first = render(clip.world, clip.path.c2w_F44, clip.path.intrinsics_F4, H, W)
    second = render(again.world, again.path.c2w_F44, again.path.intrinsics_F4, H, W, rays_per_batch=5000)
    assert torch.equal(first.rgb_FHW3, second.rgb_FHW3)  # also across different batchings
    assert torch.equal(first.depth_FHW, second.depth_FHW)
    assert clip.prompt == again.prompt
    other = make_clip(ClipSettings(num_frames=9, height=H, width=W, seed=8), 3)
    third = render(other.world, other.path.c2w_F44, other.path.intrinsics_F4, H, W)
    assert (first.rgb_FHW3.int() - third.rgb_FHW3.int()).abs().float().mean() > 10


def test_view_culling_and_shadow_prefilter_change_no_pixel(monkeypatch) -> None:
    from sana_wm.worlds import raycast

    settings = ClipSettings(num_frames=25, height=H, width=W, seed=11, trajectory="smooth")
    clips = [make_clip(settings, i) for i in range(2)]
    culled = []

    def count_culling(scene, c2w, intr, height, width):
        kept = real_in_view(scene, c2w, intr, height, width)
        culled.append(
            sum(len(p) for p in (scene.boxes, scene.cylinders, scene.spheres))
            - sum(len(p) for p, _ in kept.values())
        )
        return kept

    def everything(scene, *args):
        return {
            fam: (params, torch.arange(len(params)))
            for fam, params in (
                (raycast.BOX, scene.boxes),
                (raycast.CYLINDER, scene.cylinders),
                (raycast.SPHERE, scene.spheres),
            )
        }

    def brute_force_occluded(scene, o_M3, d_3):
        blocked = torch.zeros(len(o_M3), dtype=torch.bool)
        for fam, (params, _) in everything(scene).items():
            if len(params):
                blocked |= torch.isfinite(raycast._TESTS[fam](params, o_M3[None], d_3.view(1, 1, 3))).any(-1)[
                    0
                ]
        return blocked

    real_in_view = raycast._in_view
    monkeypatch.setattr(raycast, "_in_view", count_culling)
    fast = [
        render(c.world, c.path.c2w_F44, c.path.intrinsics_F4, H, W, rays_per_batch=8 * H * W) for c in clips
    ]
    monkeypatch.setattr(raycast, "_in_view", everything)
    monkeypatch.setattr(raycast, "_occluded", brute_force_occluded)
    slow = [
        render(c.world, c.path.c2w_F44, c.path.intrinsics_F4, H, W, rays_per_batch=8 * H * W) for c in clips
    ]
    assert sum(culled) >= 10  # culling really happened
    for a, b in zip(fast, slow, strict=True):
        assert torch.equal(a.rgb_FHW3, b.rgb_FHW3) and torch.equal(a.depth_FHW, b.depth_FHW)
