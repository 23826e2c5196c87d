"""Batched analytic ray-caster for :class:`~sana_wm.worlds.scene.World` (PyTorch, any device).

Cameras follow :mod:`sana_wm.camera` exactly: OpenCV axes, camera-to-world poses, intrinsics
``[fx, fy, cx, cy]`` in pixels, and pixel ``(x, y)`` (integer column, row; no half-pixel offset) looks
along ``R @ ((x - cx) / fx, (y - cy) / fy, 1)``, the ray :func:`sana_wm.camera.compute_raymap` gives.

Per pixel: nearest hit among the ground plane and every primitive (closed-form ray/plane, ray/box slab,
ray/vertical-cylinder and ray/sphere tests over all objects at once), its texture, Lambert shading from a
directional sun plus ambient, an optional hard shadow ray toward the sun, and exponential fog toward the
horizon colour. Rays that hit nothing within ``FAR_M`` see a sky gradient with a sun disc.

Depth is the camera-space z of the hit (the usual depth-map convention, in metres; ``inf`` for sky), so a
plane facing the camera has constant depth. Shape letters: F frames, H/W image rows/columns, R rays,
N objects of one family, M hits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch

from sana_wm.worlds.scene import World
from sana_wm.worlds.textures import pattern

EPS = 1e-4
FAR_M = 1000.0
SHADOW_BIAS_M = 1e-3
SUN_DISC_DEG = 1.5

GROUND, BOX, CYLINDER, SPHERE = 0, 1, 2, 3


class RenderResult(NamedTuple):
    rgb_FHW3: torch.Tensor  # uint8
    depth_FHW: torch.Tensor  # float32, metres, camera z; inf where the ray sees sky


class _Scene:
    """A :class:`World` as float32 tensors on one device."""

    def __init__(self, world: World, device: torch.device) -> None:
        def t(x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)

        self.ground_y = float(world.ground_y)
        boxes = t(world.boxes_N7).reshape(-1, 7)
        # [cx, cy, cz, hx, hy, hz, yaw, cos(yaw), sin(yaw)]
        self.boxes = torch.cat([boxes, torch.cos(boxes[:, 6:7]), torch.sin(boxes[:, 6:7])], dim=1)
        self.cylinders = t(world.cylinders_N5).reshape(-1, 5)
        self.spheres = t(world.spheres_N4).reshape(-1, 4)
        materials = world.materials
        self.kind = t(materials.kind, torch.int64)
        self.colour0, self.colour1 = t(materials.colour0), t(materials.colour1)
        self.scale = t(materials.scale_m)
        # Material of every (family, index): family offsets into one flat table, ground first.
        self.material = t(
            np.concatenate(
                [[world.ground_material], world.box_material, world.cylinder_material, world.sphere_material]
            ),
            torch.int64,
        )
        counts = [1, len(world.boxes_N7), len(world.cylinders_N5), len(world.spheres_N4)]
        self.offset = t(np.concatenate([[0], np.cumsum(counts)[:-1]]), torch.int64)
        self.sun = t(world.sun_dir)
        self.sun = self.sun / torch.linalg.vector_norm(self.sun)
        self.ambient = float(world.ambient)
        self.zenith, self.horizon = t(world.sky_zenith), t(world.sky_horizon)
        self.fog_m = float(world.fog_m)


def _parts(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x, y, z components of (..., 3) vectors, each (..., 1) so they broadcast against (N,) objects."""
    return v[..., 0:1], v[..., 1:2], v[..., 2:3]


def _slab(o: torch.Tensor, inv_d: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> tuple:
    # A direction component of exactly 0 gives inv_d = inf and the right (-inf, inf) or empty interval.
    ta, tb = (lo - o) * inv_d, (hi - o) * inv_d
    return torch.minimum(ta, tb), torch.maximum(ta, tb)


def _hit_or_inf(ok: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.where(ok & (t > EPS), t, torch.full_like(t, math.inf))


# Ray/primitive tests. Origins o and directions d broadcast against each other ((B, 1, 3) origins for the
# pixels of one camera, (1, 1, 3) for the sun's direction), so per-origin terms cost one value per
# (origin, object) instead of one per (ray, object). Each returns the entry distance (B, P, N), inf on a
# miss or when the entry is behind the origin.


def _box_t(boxes_N9: torch.Tensor, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Yawed boxes ``[cx, cy, cz, hx, hy, hz, yaw, cos(yaw), sin(yaw)]``: slab test in box coordinates."""
    (ox, oy, oz), (dx, dy, dz) = _parts(o), _parts(d)
    b = boxes_N9
    cos, sin = b[..., 7], b[..., 8]
    px, pz = ox - b[..., 0], oz - b[..., 2]
    near_x, far_x = _slab(cos * px - sin * pz, 1.0 / (cos * dx - sin * dz), -b[..., 3], b[..., 3])
    near_z, far_z = _slab(sin * px + cos * pz, 1.0 / (sin * dx + cos * dz), -b[..., 5], b[..., 5])
    near_y, far_y = _slab(oy - b[..., 1], 1.0 / dy, -b[..., 4], b[..., 4])
    entry = torch.maximum(torch.maximum(near_x, near_z), near_y)
    exit_ = torch.minimum(torch.minimum(far_x, far_z), far_y)
    return _hit_or_inf(entry <= exit_, entry)


def _cylinder_t(cylinders_N5: torch.Tensor, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Vertical capped cylinders ``[cx, cz, radius, y_min, y_max]``: circle test in xz, slab test in y."""
    (ox, oy, oz), (dx, dy, dz) = _parts(o), _parts(d)
    c = cylinders_N5
    px, pz = ox - c[..., 0], oz - c[..., 1]
    a = (dx * dx + dz * dz).clamp_min(1e-12)
    half_b = px * dx + pz * dz
    disc = half_b * half_b - a * (px * px + pz * pz - c[..., 2] * c[..., 2])
    root = torch.sqrt(disc.clamp_min(0.0))
    near_y, far_y = _slab(oy, 1.0 / dy, c[..., 3], c[..., 4])
    entry = torch.maximum((-half_b - root) / a, near_y)
    exit_ = torch.minimum((root - half_b) / a, far_y)
    return _hit_or_inf((disc >= 0) & (entry <= exit_), entry)


def _sphere_t(spheres_N4: torch.Tensor, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Spheres ``[cx, cy, cz, radius]`` (d must be unit length): the nearer root of the quadratic."""
    (ox, oy, oz), (dx, dy, dz) = _parts(o), _parts(d)
    c = spheres_N4
    px, py, pz = ox - c[..., 0], oy - c[..., 1], oz - c[..., 2]
    half_b = px * dx + py * dy + pz * dz
    disc = half_b * half_b - (px * px + py * py + pz * pz - c[..., 3] * c[..., 3])
    return _hit_or_inf(disc >= 0, -half_b - torch.sqrt(disc.clamp_min(0.0)))


_TESTS = {BOX: _box_t, CYLINDER: _cylinder_t, SPHERE: _sphere_t}


def _nearest(
    s: _Scene, o: torch.Tensor, d: torch.Tensor, families: dict[int, tuple[torch.Tensor, torch.Tensor]]
) -> tuple[torch.Tensor, ...]:
    """Nearest hit per ray among the ground and ``families`` ({family: (params, object ids)}): distance
    (inf = sky), family (-1 = sky) and object index in its family, each (B, P)."""
    dy = d[..., 1].expand(torch.broadcast_shapes(o.shape, d.shape)[:-1])
    best_t = _hit_or_inf(dy > 1e-9, (s.ground_y - o[..., 1]) / dy)
    family = torch.full_like(best_t, GROUND, dtype=torch.int64)
    index = torch.zeros_like(family)
    for fam, (params, ids) in families.items():
        if params.shape[0] == 0:
            continue
        t_fam, i_fam = _TESTS[fam](params, o, d).min(dim=-1)
        closer = t_fam < best_t
        best_t = torch.where(closer, t_fam, best_t)
        family = torch.where(closer, torch.full_like(family, fam), family)
        index = torch.where(closer, ids[i_fam], index)
    sky = best_t > FAR_M
    family = torch.where(sky, torch.full_like(family, -1), family)
    return torch.where(sky, torch.full_like(best_t, math.inf), best_t), family, index


def _occluded(s: _Scene, o_M3: torch.Tensor, d_3: torch.Tensor) -> torch.Tensor:
    """Whether each ray from ``o_M3`` along the one direction ``d_3`` hits any primitive (the ground never
    shadows: the sun is above it).

    Seen along ``d_3`` every bounding sphere is a disc, so a cheap 2-D point-in-disc test per (ray, object)
    finds the few (ray, object) pairs that can hit; only those get the exact test.
    """
    blocked = torch.zeros(o_M3.shape[0], dtype=torch.bool, device=o_M3.device)
    helper = torch.tensor([1.0, 0.0, 0.0] if abs(float(d_3[0])) < 0.9 else [0.0, 1.0, 0.0], device=d_3.device)
    e1 = torch.linalg.cross(d_3, helper)
    e1 = e1 / torch.linalg.vector_norm(e1)
    basis_3x3 = torch.stack([e1, torch.linalg.cross(d_3, e1), d_3], dim=1)
    o_uvw = o_M3 @ basis_3x3
    for fam, spheres in _bounding_spheres(s).items():
        if spheres.shape[0] == 0:
            continue
        c_uvw, r = spheres[:, :3] @ basis_3x3, spheres[:, 3]
        near = (o_uvw[:, None, 0] - c_uvw[:, 0]) ** 2 + (o_uvw[:, None, 1] - c_uvw[:, 1]) ** 2 < r * r
        ray, obj = (near & (c_uvw[:, 2] - o_uvw[:, None, 2] > -r)).nonzero().unbind(dim=1)
        if ray.numel():
            params = {BOX: s.boxes, CYLINDER: s.cylinders, SPHERE: s.spheres}[fam][obj][:, None]
            # Fields (K, 1), origins (K, 1) per component, one direction: K independent pair tests.
            hit = torch.isfinite(_TESTS[fam](params, o_M3[ray], d_3.view(1, 3)))[:, 0]
            blocked[ray[hit]] = True
    return blocked


def _bounding_spheres(s: _Scene) -> dict[int, torch.Tensor]:
    """Centre and radius (N, 4) of a sphere around every object, per family."""
    b, c = s.boxes, s.cylinders
    return {
        BOX: torch.cat([b[:, :3], torch.linalg.vector_norm(b[:, 3:6], dim=1, keepdim=True)], dim=1),
        CYLINDER: torch.stack(
            [c[:, 0], (c[:, 3] + c[:, 4]) / 2, c[:, 1], torch.hypot(c[:, 2], (c[:, 4] - c[:, 3]) / 2)], dim=1
        ),
        SPHERE: s.spheres,
    }


def _in_view(
    s: _Scene, c2w_F44: torch.Tensor, intrinsics_F4: torch.Tensor, height: int, width: int
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Objects whose bounding sphere may touch any of these cameras' view frusta, per family: (params,
    ids). A conservative test (sphere against the four side planes and the camera plane), so culling
    never changes a pixel."""
    fx, fy, cx, cy = intrinsics_F4.unbind(dim=1)
    # Frustum side planes through the camera centre, as bounds on x / z and y / z in camera coordinates.
    slopes = torch.stack([-cx / fx, (width - 1 - cx) / fx, -cy / fy, (height - 1 - cy) / fy], dim=1)
    out = {}
    for fam, spheres in _bounding_spheres(s).items():
        params = {BOX: s.boxes, CYLINDER: s.cylinders, SPHERE: s.spheres}[fam]
        ids = torch.arange(params.shape[0], device=params.device)
        if params.shape[0] == 0:
            out[fam] = (params, ids)
            continue
        rel = spheres[None, :, :3] - c2w_F44[:, None, :3, 3]
        x, y, z = torch.einsum("fji,fnj->fni", c2w_F44[:, :3, :3], rel).unbind(dim=-1)
        r = spheres[None, :, 3]
        lo_x, hi_x, lo_y, hi_y = (slopes[:, i, None] for i in range(4))
        outside = (
            (z < -r)
            | (lo_x * z - x > r * torch.sqrt(1 + lo_x * lo_x))
            | (x - hi_x * z > r * torch.sqrt(1 + hi_x * hi_x))
            | (lo_y * z - y > r * torch.sqrt(1 + lo_y * lo_y))
            | (y - hi_y * z > r * torch.sqrt(1 + hi_y * hi_y))
        )
        keep = (~outside).any(dim=0).nonzero().squeeze(1)
        out[fam] = (params[keep], ids[keep])
    return out


def _surface(s: _Scene, p_M3: torch.Tensor, family: torch.Tensor, index: torch.Tensor) -> tuple:
    """Unit normal (M, 3) and texture coordinates u, v (metres) at hit points of known family/index."""
    normal = torch.zeros_like(p_M3)
    u, v = p_M3[:, 0].clone(), p_M3[:, 2].clone()
    normal[:, 1] = -1.0  # ground (and what any unset row keeps): faces up, -Y

    sel = (family == BOX).nonzero().squeeze(1)
    if sel.numel():
        b = s.boxes[index[sel]]
        cos, sin = b[:, 7], b[:, 8]
        rx, ry, rz = (p_M3[sel] - b[:, :3]).unbind(1)
        q = torch.stack([cos * rx - sin * rz, ry, sin * rx + cos * rz], dim=1)
        axis = (q.abs() / b[:, 3:6]).argmax(dim=1)
        n_local = torch.nn.functional.one_hot(axis, 3).to(q) * torch.sign(q)
        normal[sel] = torch.stack(
            [
                cos * n_local[:, 0] + sin * n_local[:, 2],
                n_local[:, 1],
                cos * n_local[:, 2] - sin * n_local[:, 0],
            ],
            dim=1,
        )
        corner = q + b[:, 3:6]  # texture anchored at the box corner; v runs up the faces
        up = 2.0 * b[:, 4] - corner[:, 1]
        u[sel] = torch.where(axis == 0, corner[:, 2], corner[:, 0])
        v[sel] = torch.where(axis == 1, corner[:, 2], up)

    sel = (family == CYLINDER).nonzero().squeeze(1)
    if sel.numel():
        c = s.cylinders[index[sel]]
        rx, rz = p_M3[sel, 0] - c[:, 0], p_M3[sel, 2] - c[:, 1]
        py = p_M3[sel, 1]
        cap_top, cap_bottom = (py - c[:, 3]).abs() < 1e-3, (c[:, 4] - py).abs() < 1e-3
        side = torch.stack([rx, torch.zeros_like(rx), rz], dim=1) / c[:, 2:3]
        cap = torch.zeros_like(side)
        cap[:, 1] = torch.where(cap_top, -1.0, 1.0)
        on_cap = (cap_top | cap_bottom)[:, None]
        normal[sel] = torch.where(on_cap, cap, side)
        u[sel] = torch.where(on_cap[:, 0], rx, torch.atan2(rz, rx) * c[:, 2])
        v[sel] = torch.where(on_cap[:, 0], rz, c[:, 4] - py)

    sel = (family == SPHERE).nonzero().squeeze(1)
    if sel.numel():
        c = s.spheres[index[sel]]
        n = (p_M3[sel] - c[:, :3]) / c[:, 3:4]
        normal[sel] = n
        u[sel] = torch.atan2(n[:, 2], n[:, 0]) * c[:, 3]
        v[sel] = torch.asin((-n[:, 1]).clamp(-1.0, 1.0)) * c[:, 3]
    return normal, u, v


def _sky(s: _Scene, d_M3: torch.Tensor) -> torch.Tensor:
    up = (-d_M3[:, 1:2]).clamp(0.0, 1.0).sqrt()
    rgb = torch.lerp(s.horizon.expand_as(d_M3), s.zenith.expand_as(d_M3), up)
    towards_sun = (d_M3 @ s.sun).clamp_min(0.0)[:, None]
    glow = 0.35 * towards_sun.pow(64.0) * torch.tensor([1.0, 0.9, 0.7], device=d_M3.device)
    disc = towards_sun > math.cos(math.radians(SUN_DISC_DEG))
    return torch.where(disc, torch.tensor([1.0, 0.97, 0.9], device=d_M3.device), rgb + glow)


def _shade(
    s: _Scene,
    o_B13: torch.Tensor,
    d_BP3: torch.Tensor,
    pixel_rad_B: torch.Tensor,
    families: dict[int, tuple[torch.Tensor, torch.Tensor]],
    shadows: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB in [0, 1] (B P, 3) and hit distance along the unit ray (B P,) for P rays from each of B origins,
    testing the objects in ``families``."""
    num_rays = d_BP3.shape[1]
    t, family, index = (x.reshape(-1) for x in _nearest(s, o_B13, d_BP3, families))
    d_R3 = d_BP3.reshape(-1, 3)
    rgb = _sky(s, d_R3)
    hit = (family >= 0).nonzero().squeeze(1)
    if hit.numel() == 0:
        return rgb, t
    d, th = d_R3[hit], t[hit]
    fam, idx = family[hit], index[hit]
    source = hit // num_rays
    p = o_B13[source, 0] + th[:, None] * d
    normal, u, v = _surface(s, p, fam, idx)
    material = s.material[s.offset[fam] + idx]
    facing = (normal * d).sum(dim=1).abs().clamp_min(0.1)
    m = pattern(s.kind[material], u, v, s.scale[material], material, th * pixel_rad_B[source] / facing)
    albedo = torch.lerp(s.colour0[material], s.colour1[material], m[:, None])

    lambert = (normal @ s.sun).clamp_min(0.0)
    if shadows:
        lit = (lambert > 0).nonzero().squeeze(1)
        if lit.numel():
            origin = p[lit] + SHADOW_BIAS_M * normal[lit]
            blocked = _occluded(s, origin, s.sun)
            lambert[lit] = torch.where(blocked, torch.zeros_like(lambert[lit]), lambert[lit])
    colour = albedo * (s.ambient + (1.0 - s.ambient) * lambert)[:, None]
    fog = torch.exp(-th / s.fog_m)[:, None]
    rgb[hit] = colour * fog + s.horizon * (1.0 - fog)
    return rgb, t


def camera_rays(
    c2w_F44: torch.Tensor, intrinsics_F4: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """World rays of every pixel: origins (F, 3), unit directions (F, H, W, 3), and the camera-z of one
    metre along each ray (F, H, W), i.e. ``1 / |((x - cx) / fx, (y - cy) / fy, 1)|``."""
    fx, fy, cx, cy = (intrinsics_F4[:, i, None, None] for i in range(4))
    xs = torch.arange(width, dtype=c2w_F44.dtype, device=c2w_F44.device)
    ys = torch.arange(height, dtype=c2w_F44.dtype, device=c2w_F44.device)
    x_FHW = ((xs[None, None, :] - cx) / fx).expand(-1, height, -1)
    y_FHW = ((ys[None, :, None] - cy) / fy).expand(-1, -1, width)
    dirs_cam = torch.stack([x_FHW, y_FHW, torch.ones_like(x_FHW)], dim=-1)
    z_per_m = 1.0 / torch.linalg.vector_norm(dirs_cam, dim=-1)
    dirs = torch.einsum("fij,fhwj->fhwi", c2w_F44[:, :3, :3], dirs_cam * z_per_m[..., None])
    return c2w_F44[:, :3, 3], dirs, z_per_m


@torch.no_grad()
def render_batches(
    world: World,
    c2w_F44: np.ndarray | torch.Tensor,
    intrinsics_F4: np.ndarray | torch.Tensor,
    height: int,
    width: int,
    *,
    shadows: bool = True,
    device: str | torch.device = "cpu",
    rays_per_batch: int = 1 << 18,
) -> Iterator[RenderResult]:
    """Render F frames of ``world`` seen by cameras ``c2w_F44`` with ``intrinsics_F4`` (pixels), yielding
    consecutive batches of about ``rays_per_batch`` rays (whole frames; at least one frame per batch), so a
    long clip can be written out without holding it all. Peak memory is a few hundred bytes per ray per
    object. The same inputs give the same pixels on the same device, whatever the batching.
    """
    device = torch.device(device)
    scene = _Scene(world, device)
    c2w = torch.as_tensor(np.asarray(c2w_F44), dtype=torch.float32, device=device).reshape(-1, 4, 4)
    intr = torch.as_tensor(np.asarray(intrinsics_F4), dtype=torch.float32, device=device).reshape(-1, 4)
    if intr.shape[0] != c2w.shape[0]:
        raise ValueError(f"intrinsics_F4 has {intr.shape[0]} rows for {c2w.shape[0]} poses")
    step = max(1, rays_per_batch // (height * width))
    for start in range(0, c2w.shape[0], step):
        frames = slice(start, start + step)
        origins_F3, dirs_FHW3, z_per_m = camera_rays(c2w[frames], intr[frames], height, width)
        n = dirs_FHW3.shape[0]
        families = _in_view(scene, c2w[frames], intr[frames], height, width)
        pixel_rad = 1.0 / intr[frames, :2].min(dim=1).values
        colour, t = _shade(
            scene, origins_F3[:, None], dirs_FHW3.reshape(n, -1, 3), pixel_rad, families, shadows
        )
        rgb = (colour.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).reshape(n, height, width, 3)
        yield RenderResult(rgb, t.reshape(n, height, width) * z_per_m)


def render(
    world: World,
    c2w_F44: np.ndarray | torch.Tensor,
    intrinsics_F4: np.ndarray | torch.Tensor,
    height: int,
    width: int,
    *,
    shadows: bool = True,
    device: str | torch.device = "cpu",
    rays_per_batch: int = 1 << 18,
) -> RenderResult:
    """All frames of :func:`render_batches` at once.

    Returns:
        ``RenderResult(rgb_FHW3 uint8, depth_FHW float32)`` on ``device``.
    """
    batches = list(
        render_batches(
            world,
            c2w_F44,
            intrinsics_F4,
            height,
            width,
            shadows=shadows,
            device=device,
            rays_per_batch=rays_per_batch,
        )
    )
    return RenderResult(torch.cat([b.rgb_FHW3 for b in batches]), torch.cat([b.depth_FHW for b in batches]))
