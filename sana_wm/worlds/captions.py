"""One-sentence captions for procedural worlds: ground, the objects that stand out, sky and sunlight.

The words come from the world's material names and object labels; the sentence template is drawn from
``rng``. Directions and prominence are judged from the first camera (at the origin, OpenCV axes: +X
right, +Z ahead, +Y down).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from sana_wm.worlds.scene import World

_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_PLURAL = {"box": "boxes", "wall": "walls", "pillar": "pillars", "sphere": "spheres"}
_TEMPLATES = (
    "{ground_cap} with {objects} under {sky}, {light}.",
    "{sky_cap} over {ground}, with {objects}; {light}.",
    "A walk across {ground} past {objects} under {sky}, {light}.",
)
MAX_GROUPS = 3


def _article(phrase: str) -> str:
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def _group_phrase(count: int, kind: str, material: str) -> str:
    if count == 1:
        return _article(f"{material} {kind}")
    number = _NUMBERS[count] if count < len(_NUMBERS) else "many"
    return f"{number} {material} {_PLURAL[kind]}"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def describe_light(world: World) -> str:
    """e.g. "low sun from the left casting long shadows" or "soft overcast light"."""
    if world.sky_name.startswith("overcast"):
        return "soft overcast light"
    sun = np.asarray(world.sun_dir, dtype=np.float64)
    elevation = math.degrees(math.asin(min(1.0, max(-1.0, -sun[1] / np.linalg.norm(sun)))))
    azimuth = math.degrees(math.atan2(sun[0], sun[2]))
    where = (
        "ahead"
        if abs(azimuth) < 45
        else "behind the camera"
        if abs(azimuth) > 135
        else "from the right"
        if azimuth > 0
        else "from the left"
    )
    if elevation < 35:
        return f"low sun {where} casting long shadows"
    return f"{'high midday' if elevation > 55 else 'afternoon'} sun {where}"


def prominence(world: World) -> np.ndarray:
    """How much each object (order of ``world.labels``) stands out from the first camera (at the origin,
    looking along +Z): its size over its horizontal distance, ``radius / max(distance - radius, 1 m)``,
    times 0.2 unless it is ahead within about 45 degrees of the view axis."""
    b, c, s = world.boxes_N7, world.cylinders_N5, world.spheres_N4
    centres = np.concatenate([b[:, [0, 2]], c[:, [0, 1]], s[:, [0, 2]]]).astype(np.float64)
    radii = np.concatenate(
        [np.linalg.norm(b[:, 3:6], axis=1), np.hypot(c[:, 2], (c[:, 4] - c[:, 3]) / 2), s[:, 3]]
    ).astype(np.float64)
    ahead = np.abs(centres[:, 0]) < centres[:, 1] + radii * math.sqrt(2.0)
    return radii / np.maximum(np.linalg.norm(centres, axis=1) - radii, 1.0) * np.where(ahead, 1.0, 0.2)


def caption(world: World, rng: np.random.Generator) -> str:
    """A short sentence describing ``world``: ground texture, sky, light, and the (up to) three object
    groups (same kind and material) that stand out most from the first camera, with their counts."""
    names = world.materials.names
    ground = f"{names[world.ground_material]} ground" if names else "open ground"
    weight: Counter[tuple[str, str]] = Counter()
    counts: Counter[tuple[str, str]] = Counter()
    for (kind, m), p in zip(world.labels, prominence(world), strict=True):
        group = (kind, names[m] if names else "plain")
        weight[group] += float(p)
        counts[group] += 1
    groups = sorted(weight, key=lambda g: -weight[g])
    parts = [_group_phrase(counts[g], *g) for g in groups[:MAX_GROUPS]]
    if len(groups) > MAX_GROUPS:
        parts.append("other shapes")
    objects = _join(parts) if parts else "nothing else in sight"
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    ground_phrase, sky_phrase = _article(ground), _article(world.sky_name)
    return template.format(
        ground=ground_phrase,
        ground_cap=ground_phrase[0].upper() + ground_phrase[1:],
        objects=objects,
        sky=sky_phrase,
        sky_cap=sky_phrase[0].upper() + sky_phrase[1:],
        light=describe_light(world),
    )
