"""The procedural world: a textured ground plane, scene primitives, materials, sky, sun and fog.

World conventions are the project's: OpenCV-style world axes with +Y DOWN (gravity), metres, the first
camera of a clip at the origin looking along +Z. The ground is the plane ``y = ground_y`` (> 0, i.e. below
a camera at height 0). Colours are linear-ish RGB in [0, 1] (written to video without a transfer curve).

Primitive parameter layouts (float32 arrays, one row per object):

- ``boxes_N7``: ``[cx, cy, cz, hx, hy, hz, yaw]``: centre, half extents along the box's own axes, and
  the rotation about the world Y axis in radians (``R_y(yaw)``, the same rotation the action language uses
  for yaw, so positive yaw turns the box's +Z toward +X). Walls are long thin boxes.
- ``cylinders_N5``: ``[cx, cz, radius, y_min, y_max]``: vertical pillars from ``y_min`` (top, since +Y is
  down) to ``y_max`` (bottom).
- ``spheres_N4``: ``[cx, cy, cz, radius]``.

Each object refers to a row of the material table (``*_material`` int arrays); the ground uses
``ground_material``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Materials:
    """Surface materials: ``kind`` (texture id from :mod:`sana_wm.worlds.textures`), two colours the pattern
    blends between, the pattern period ``scale_m`` in metres, and a name for captions (e.g. "red brick")."""

    kind: np.ndarray  # (K,) int64
    colour0: np.ndarray  # (K, 3) float32
    colour1: np.ndarray  # (K, 3) float32
    scale_m: np.ndarray  # (K,) float32
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class World:
    """Everything the ray-caster needs, plus the words a caption is made from (``labels``).

    ``labels`` holds one ``(object kind, material index)`` pair per object in the order boxes, cylinders,
    spheres, where the kind is one of ``box``, ``wall``, ``pillar``, ``sphere``.
    """

    ground_y: float
    ground_material: int
    materials: Materials
    boxes_N7: np.ndarray = field(default_factory=lambda: np.zeros((0, 7), np.float32))
    box_material: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cylinders_N5: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), np.float32))
    cylinder_material: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    spheres_N4: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    sphere_material: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sun_dir: np.ndarray = field(default_factory=lambda: np.array([0.0, -1.0, 0.0], np.float32))
    ambient: float = 0.4
    sky_zenith: np.ndarray = field(default_factory=lambda: np.array([0.25, 0.45, 0.85], np.float32))
    sky_horizon: np.ndarray = field(default_factory=lambda: np.array([0.8, 0.85, 0.9], np.float32))
    fog_m: float = 60.0
    labels: tuple[tuple[str, int], ...] = ()
    sky_name: str = "clear blue sky"

    @property
    def num_objects(self) -> int:
        return len(self.boxes_N7) + len(self.cylinders_N5) + len(self.spheres_N4)


def footprint_distance(world: World, points_P2: np.ndarray) -> np.ndarray:
    """Horizontal distance (metres) from each ``(x, z)`` point to every object's ground footprint.

    Returns ``(P, N)`` with objects in the order boxes, cylinders, spheres; 0 inside a footprint. Used to keep
    objects away from a camera path (every object stands on the ground and the camera stays above it).
    """
    points_P2 = np.asarray(points_P2, dtype=np.float64).reshape(-1, 2)
    columns = []
    if len(world.boxes_N7):
        boxes = world.boxes_N7.astype(np.float64)
        px = points_P2[:, 0:1] - boxes[:, 0]
        pz = points_P2[:, 1:2] - boxes[:, 2]
        cos, sin = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
        qx = np.abs(cos * px - sin * pz) - boxes[:, 3]
        qz = np.abs(sin * px + cos * pz) - boxes[:, 5]
        columns.append(np.hypot(np.maximum(qx, 0.0), np.maximum(qz, 0.0)))
    for centres_N2, radius_N in (
        (world.cylinders_N5[:, [0, 1]], world.cylinders_N5[:, 2]),
        (world.spheres_N4[:, [0, 2]], world.spheres_N4[:, 3]),
    ):
        if len(radius_N):
            gap = np.linalg.norm(points_P2[:, None, :] - centres_N2[None].astype(np.float64), axis=-1)
            columns.append(np.maximum(gap - radius_N.astype(np.float64), 0.0))
    if not columns:
        return np.zeros((len(points_P2), 0))
    return np.concatenate(columns, axis=1)
