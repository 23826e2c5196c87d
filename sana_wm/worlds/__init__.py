"""Procedural worlds rendered along known camera paths (ground truth for demos, training and evaluation).

- :mod:`~sana_wm.worlds.scene`: the :class:`World` description (ground, primitives, materials, sky, sun).
- :mod:`~sana_wm.worlds.raycast`: the batched PyTorch ray-caster, :func:`render` (RGB + depth).
- :mod:`~sana_wm.worlds.paths` / :mod:`~sana_wm.worlds.random_world` / :mod:`~sana_wm.worlds.captions`:
  random camera paths, random worlds kept clear of them, and their captions, all drawn from a seed.
- :mod:`~sana_wm.worlds.clips`: whole clips written in the official training-data layout.
- :mod:`~sana_wm.worlds.ground`: the tiny numpy checker-ground renderer of the overlay demo.
"""

from sana_wm.worlds.captions import caption
from sana_wm.worlds.clips import ClipSettings, make_clip, write_worlds
from sana_wm.worlds.ground import render_checker_ground
from sana_wm.worlds.paths import CameraPath, random_action, random_path
from sana_wm.worlds.random_world import sample_world
from sana_wm.worlds.raycast import RenderResult, camera_rays, render, render_batches
from sana_wm.worlds.scene import Materials, World, footprint_distance

__all__ = [
    "CameraPath",
    "ClipSettings",
    "Materials",
    "RenderResult",
    "World",
    "camera_rays",
    "caption",
    "footprint_distance",
    "make_clip",
    "random_action",
    "random_path",
    "render",
    "render_batches",
    "render_checker_ground",
    "sample_world",
    "write_worlds",
]
