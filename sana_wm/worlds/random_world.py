"""Draw a random :class:`~sana_wm.worlds.scene.World` around a known camera path.

Ranges (uniform unless stated): eye height (ground below the path's cameras) 1.2-2.0 m; 6-18 objects,
kinds box / wall / pillar / sphere with weights 0.35 / 0.2 / 0.25 / 0.2; sun elevation 20-70 deg at any
azimuth; ambient 0.3-0.5 (0.6 under an overcast sky); fog distance 40-150 m; one of five sky palettes.
Materials pair a texture (checker, bricks, stripes, noise) with named colours; 40 % of objects reuse an
earlier object's material, so captions can count ("two red brick walls").

Placement keeps the path clear: an object is placed ahead of a random path camera (2-18 m ahead, 80 %;
else 20-50 m, for parallax), up to 9 m to either side, and kept only if its ground footprint is at least
``CLEARANCE_M`` from every camera position of the path; otherwise it is redrawn (up to 20 tries, then
dropped). Every camera therefore sits at least ``CLEARANCE_M`` from every object, from the first frame on.
"""

from __future__ import annotations

import math

import numpy as np

from sana_wm.worlds.scene import Materials, World, footprint_distance
from sana_wm.worlds.textures import BRICKS, CHECKER, NOISE, STRIPES

CLEARANCE_M = 1.0
EYE_HEIGHT_RANGE_M = (1.2, 2.0)
NUM_OBJECTS_RANGE = (6, 18)
PLACEMENT_TRIES = 20

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.72, 0.16, 0.14),
    "orange": (0.90, 0.48, 0.12),
    "yellow": (0.92, 0.80, 0.22),
    "green": (0.25, 0.55, 0.22),
    "teal": (0.12, 0.52, 0.52),
    "blue": (0.18, 0.32, 0.72),
    "purple": (0.45, 0.25, 0.62),
    "pink": (0.90, 0.52, 0.64),
    "white": (0.90, 0.90, 0.88),
    "grey": (0.52, 0.52, 0.52),
    "black": (0.12, 0.12, 0.13),
    "brown": (0.45, 0.30, 0.18),
    "beige": (0.82, 0.74, 0.58),
}
MORTAR = {"light grey": (0.78, 0.77, 0.74), "dark grey": (0.30, 0.30, 0.30), "cream": (0.88, 0.84, 0.72)}

# name -> (zenith, horizon, ambient or None for the drawn range)
SKIES: dict[str, tuple[tuple[float, ...], tuple[float, ...], float | None]] = {
    "clear blue sky": ((0.22, 0.42, 0.85), (0.75, 0.84, 0.93), None),
    "pale hazy sky": ((0.55, 0.65, 0.80), (0.85, 0.87, 0.88), None),
    "warm sunset sky": ((0.30, 0.30, 0.60), (0.95, 0.62, 0.38), None),
    "overcast grey sky": ((0.55, 0.57, 0.60), (0.76, 0.77, 0.78), 0.6),
    "deep evening sky": ((0.10, 0.15, 0.40), (0.55, 0.45, 0.55), None),
}

OBJECT_KINDS = ("box", "wall", "pillar", "sphere")
_OBJECT_WEIGHTS = np.array([0.35, 0.2, 0.25, 0.2])

# Pattern period ranges in metres, for the ground and for objects.
_GROUND_SCALE = {CHECKER: (0.5, 2.0), BRICKS: (0.4, 1.0), STRIPES: (0.3, 1.5), NOISE: (0.5, 3.0)}
_OBJECT_SCALE = {CHECKER: (0.25, 1.0), BRICKS: (0.25, 0.5), STRIPES: (0.1, 0.5), NOISE: (0.2, 1.0)}


def _pick(rng: np.random.Generator, names: list[str]) -> str:
    return names[int(rng.integers(len(names)))]


def random_material(rng: np.random.Generator, ground: bool) -> tuple[int, np.ndarray, np.ndarray, float, str]:
    """``(kind, colour0, colour1, scale_m, name)`` for a random textured material."""
    kind = int(rng.integers(4))
    names = list(COLOURS)
    first = _pick(rng, names)
    colour0 = np.array(COLOURS[first])
    if kind in (CHECKER, STRIPES):
        second = _pick(rng, [n for n in names if n != first])
        colour1 = np.array(COLOURS[second])
        name = f"{first} and {second} {'checkered' if kind == CHECKER else 'striped'}"
    elif kind == BRICKS:
        colour1 = np.array(MORTAR[_pick(rng, list(MORTAR))])
        name = f"{first} brick"
    else:
        colour1 = colour0 * rng.uniform(0.5, 0.8)
        name = f"mottled {first}"
    jitter = rng.uniform(-0.04, 0.04, size=3)
    lo, hi = (_GROUND_SCALE if ground else _OBJECT_SCALE)[kind]
    colour0 = np.clip(colour0 + jitter, 0.0, 1.0)
    colour1 = np.clip(colour1 + jitter, 0.0, 1.0)
    return kind, colour0, colour1, float(rng.uniform(lo, hi)), name


def _random_object(rng: np.random.Generator, kind: str, ground_y: float, x: float, z: float) -> np.ndarray:
    """Primitive row (box: 7, pillar: 5, sphere: 4 values) standing on the ground at (x, z)."""
    if kind in ("box", "wall"):
        if kind == "box":
            hx, hy, hz = rng.uniform(0.3, 1.2), rng.uniform(0.3, 1.5), rng.uniform(0.3, 1.2)
        else:
            hx, hy, hz = rng.uniform(1.5, 5.0), rng.uniform(0.8, 2.0), rng.uniform(0.1, 0.25)
        return np.array([x, ground_y - hy, z, hx, hy, hz, rng.uniform(0.0, math.pi)])
    if kind == "pillar":
        return np.array([x, z, rng.uniform(0.15, 0.6), ground_y - rng.uniform(2.0, 7.0), ground_y])
    radius = rng.uniform(0.3, 1.5)
    lift = rng.uniform(0.5, 2.0) if rng.random() < 0.3 else 0.0
    return np.array([x, ground_y - radius - lift, z, radius])


def _candidate(kind: str, row: np.ndarray, ground_y: float) -> World:
    empty = Materials(np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
    fields = {"box": "boxes_N7", "wall": "boxes_N7", "pillar": "cylinders_N5", "sphere": "spheres_N4"}
    return World(ground_y=ground_y, ground_material=0, materials=empty, **{fields[kind]: row[None]})


def sample_world(rng: np.random.Generator, c2w_F44: np.ndarray) -> World:
    """A random world around the camera path ``c2w_F44`` (see the module docstring for the ranges)."""
    c2w_F44 = np.asarray(c2w_F44, dtype=np.float64)
    path_xz = c2w_F44[:, [0, 2], 3]
    ground_y = float(c2w_F44[:, 1, 3].max() + rng.uniform(*EYE_HEIGHT_RANGE_M))

    kinds, colour0s, colour1s, scales, names = [], [], [], [], []

    def add_material(ground: bool) -> int:
        for column, value in zip(
            (kinds, colour0s, colour1s, scales, names), random_material(rng, ground), strict=True
        ):
            column.append(value)
        return len(kinds) - 1

    ground_material = add_material(ground=True)
    rows: dict[str, list[tuple[np.ndarray, int]]] = {k: [] for k in OBJECT_KINDS}
    object_materials: list[int] = []
    for _ in range(int(rng.integers(NUM_OBJECTS_RANGE[0], NUM_OBJECTS_RANGE[1] + 1))):
        kind = OBJECT_KINDS[rng.choice(len(OBJECT_KINDS), p=_OBJECT_WEIGHTS)]
        for _ in range(PLACEMENT_TRIES):
            anchor = int(rng.integers(len(c2w_F44)))
            forward = c2w_F44[anchor, [0, 2], 2]
            forward = forward / max(float(np.linalg.norm(forward)), 1e-6)
            right = np.array([forward[1], -forward[0]])
            ahead = rng.uniform(2.0, 18.0) if rng.random() < 0.8 else rng.uniform(20.0, 50.0)
            x, z = path_xz[anchor] + ahead * forward + rng.uniform(-9.0, 9.0) * right
            row = _random_object(rng, kind, ground_y, x, z)
            if footprint_distance(_candidate(kind, row, ground_y), path_xz).min() >= CLEARANCE_M:
                reuse = object_materials and rng.random() < 0.4
                material = object_materials[int(rng.integers(len(object_materials)))] if reuse else None
                if material is None:
                    material = add_material(ground=False)
                object_materials.append(material)
                rows[kind].append((row, material))
                break

    def stack(kinds_: tuple[str, ...], width: int) -> tuple[np.ndarray, np.ndarray, list]:
        items = [(k, r, m) for k in kinds_ for r, m in rows[k]]
        array = np.array([r for _, r, _ in items], dtype=np.float32).reshape(-1, width)
        return array, np.array([m for _, _, m in items], dtype=np.int64), [(k, m) for k, _, m in items]

    boxes, box_material, box_labels = stack(("box", "wall"), 7)
    cylinders, cylinder_material, cylinder_labels = stack(("pillar",), 5)
    spheres, sphere_material, sphere_labels = stack(("sphere",), 4)

    sky_name = _pick(rng, list(SKIES))
    zenith, horizon, ambient = SKIES[sky_name]
    elevation, azimuth = math.radians(rng.uniform(20.0, 70.0)), rng.uniform(0.0, 2.0 * math.pi)
    sun = [
        math.cos(elevation) * math.sin(azimuth),
        -math.sin(elevation),
        math.cos(elevation) * math.cos(azimuth),
    ]
    materials = Materials(
        kind=np.array(kinds, dtype=np.int64),
        colour0=np.array(colour0s, dtype=np.float32),
        colour1=np.array(colour1s, dtype=np.float32),
        scale_m=np.array(scales, dtype=np.float32),
        names=tuple(names),
    )
    return World(
        ground_y=ground_y,
        ground_material=ground_material,
        materials=materials,
        boxes_N7=boxes,
        box_material=box_material,
        cylinders_N5=cylinders,
        cylinder_material=cylinder_material,
        spheres_N4=spheres,
        sphere_material=sphere_material,
        sun_dir=np.array(sun, dtype=np.float32),
        ambient=float(ambient if ambient is not None else rng.uniform(0.3, 0.5)),
        sky_zenith=np.array(zenith, dtype=np.float32),
        sky_horizon=np.array(horizon, dtype=np.float32),
        fog_m=float(rng.uniform(40.0, 150.0)),
        labels=tuple(box_labels + cylinder_labels + sphere_labels),
        sky_name=sky_name,
    )
