"""Procedural training clips written in the official SANA-WM data layout (:mod:`sana_wm.data.layout`).

Clip ``i`` of seed ``s`` is drawn from ``numpy.random.default_rng([s, i])`` alone (camera path, then the
world around it, then its caption), so a clip does not depend on how many clips are rendered or how they
are sharded. Output under ``out_dir``:

- ``raw/worlds_<shard>.zip``: per clip ``<key>.json`` (``prompt``, ``width``, ``height`` plus how the clip
  was made) and ``<key>.mp4`` (the frames, H.264);
- ``raw/worlds_<shard>_camera.npz``: poses (c2w, metres) and intrinsics (pixels of width x height);
- ``raw/worlds_<shard>_metric_scale_stats.json``: ``{key: {"median": 1.0}}`` (poses are already metric);
- ``worlds_settings.json``: the render settings; rendering into a directory made with other settings is
  refused, and shards that are already complete are kept, so an interrupted render resumes.

Latents go to ``latents/`` (``sana-wm cache-latents``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sana_wm.data.layout import shard_paths, write_camera_sidecar, write_json, write_zip
from sana_wm.errors import InputError
from sana_wm.utils.video_io import VideoWriter
from sana_wm.worlds.captions import caption
from sana_wm.worlds.paths import CameraPath, random_path
from sana_wm.worlds.random_world import sample_world
from sana_wm.worlds.raycast import render_batches
from sana_wm.worlds.scene import World

log = logging.getLogger(__name__)

RAW_DIR, LATENT_DIR, SETTINGS_FILE = "raw", "latents", "worlds_settings.json"
FORMAT = "sana-wm-worlds/1"


@dataclass(frozen=True)
class ClipSettings:
    """What every clip of a render shares. ``trajectory``: actions | smooth | mixed; ``mapping``:
    v1 | v2 | mixed (for action paths)."""

    num_frames: int
    height: int
    width: int
    seed: int = 0
    fps: float = 16.0
    trajectory: str = "mixed"
    mapping: str = "mixed"
    shadows: bool = True
    crf: int = 18

    def __post_init__(self) -> None:
        if self.num_frames < 1 or (self.num_frames - 1) % 8 or self.num_frames > 100_000:
            raise InputError(
                f"--frames: must be 8k+1 (the VAE folds 8 frames per latent), got {self.num_frames}"
            )
        sides = (self.height, self.width)
        if min(sides) < 16 or max(sides) > 8192 or self.height % 2 or self.width % 2:
            raise InputError(
                f"--size: height and width must be even, from 16 to 8192, got {self.height}x{self.width}"
            )
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise InputError(f"--fps: must be a positive number, got {self.fps}")
        if not 0 <= self.seed < 2**63:
            raise InputError(f"--seed: must be in [0, 2^63), got {self.seed}")
        if self.trajectory not in ("actions", "smooth", "mixed"):
            raise InputError(
                f"--trajectory: unknown kind {self.trajectory!r}; choose actions, smooth or mixed"
            )
        if self.mapping not in ("v1", "v2", "mixed"):
            raise InputError(f"--mapping: unknown mapping {self.mapping!r}; choose v1, v2 or mixed")
        if not 0 <= self.crf <= 51:
            raise InputError(f"--crf: must be 0 to 51, got {self.crf}")


@dataclass(frozen=True)
class Clip:
    key: str
    index: int
    path: CameraPath
    world: World
    prompt: str


def clip_key(seed: int, index: int) -> str:
    return f"world_{seed}_{index:06d}"


def make_clip(settings: ClipSettings, index: int) -> Clip:
    """Draw clip ``index`` (camera path, world, caption) without rendering it."""
    rng = np.random.default_rng([settings.seed, index])
    path = random_path(
        rng,
        settings.num_frames,
        settings.height,
        settings.width,
        trajectory=settings.trajectory,
        mapping=settings.mapping,
    )
    world = sample_world(rng, path.c2w_F44)
    return Clip(clip_key(settings.seed, index), index, path, world, caption(world, rng))


def clip_info(clip: Clip, settings: ClipSettings) -> dict[str, Any]:
    """The clip's ``<key>.json``: the official fields first, then how it was made."""
    path, world = clip.path, clip.world
    return {
        "prompt": clip.prompt,
        "width": settings.width,
        "height": settings.height,
        "num_frames": settings.num_frames,
        "fps": settings.fps,
        "generator": FORMAT,
        "seed": settings.seed,
        "clip_index": clip.index,
        "trajectory": path.kind,
        "action": path.action,
        "action_mapping": path.mapping,
        "translation_speed": path.translation_speed,
        "rotation_speed_deg": path.rotation_speed_deg,
        "hfov_deg": path.hfov_deg,
        "eye_height_m": float(world.ground_y - path.c2w_F44[0, 1, 3]),
        "num_objects": world.num_objects,
        "sky": world.sky_name,
        "sun_dir": [float(v) for v in world.sun_dir],
    }


def _check_settings(out_dir: Path, settings: ClipSettings, clips_per_shard: int) -> None:
    wanted = {"format": FORMAT, **dataclasses.asdict(settings), "clips_per_shard": clips_per_shard}
    existing = out_dir / SETTINGS_FILE
    if existing.is_file():
        found = json.loads(existing.read_text(encoding="utf-8"))
        if found != wanted:
            changed = sorted(k for k in wanted.keys() | found.keys() if found.get(k) != wanted.get(k))
            raise InputError(
                f"--out: {out_dir} holds a render with other settings ({', '.join(changed)}); "
                "use a new directory"
            )
    else:
        write_json(existing, wanted)


def write_worlds(
    out_dir: str | os.PathLike[str],
    settings: ClipSettings,
    num_clips: int,
    *,
    clips_per_shard: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> list[Path]:
    """Render ``num_clips`` clips into ``out_dir`` (layout in the module docstring).

    Returns:
        The raw shard zips of this dataset, including ones kept from an earlier, interrupted run.
    """
    if num_clips < 1:
        raise InputError(f"--num_clips: must be >= 1, got {num_clips}")
    if clips_per_shard < 1:
        raise InputError(f"--clips_per_shard: must be >= 1, got {clips_per_shard}")
    if settings.height % 32 or settings.width % 32:
        log.warning(
            "--size %dx%d: the LTX-2 VAE needs multiples of 32 to cache latents",
            settings.height,
            settings.width,
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_settings(out_dir, settings, clips_per_shard)
    shards = []
    for shard, start in enumerate(range(0, num_clips, clips_per_shard)):
        raw_zip = out_dir / RAW_DIR / f"worlds_{shard:05d}.zip"
        shards.append(raw_zip)
        indices = range(start, min(start + clips_per_shard, num_clips))
        if _shard_complete(raw_zip, len(indices)):
            log.info("keeping %s (complete)", raw_zip)
            continue
        _write_shard(raw_zip, settings, indices, device, progress)
    return shards


def _shard_complete(raw_zip: Path, num_clips: int) -> bool:
    if not (raw_zip.exists() and all(p.exists() for p in shard_paths(raw_zip))):
        return False
    with zipfile.ZipFile(raw_zip) as archive:
        return sum(name.endswith(".json") for name in archive.namelist()) == num_clips


def _write_shard(
    raw_zip: Path, settings: ClipSettings, indices: range, device: str | torch.device, progress: bool
) -> None:
    clips = [make_clip(settings, i) for i in indices]
    camera_npz, scale_json = shard_paths(raw_zip)
    with tempfile.TemporaryDirectory() as tmp:
        members: list[tuple[str, bytes | Path]] = []
        for clip in clips:
            batches = render_batches(
                clip.world,
                clip.path.c2w_F44,
                clip.path.intrinsics_F4,
                settings.height,
                settings.width,
                shadows=settings.shadows,
                device=device,
            )
            video = Path(tmp) / f"{clip.key}.mp4"
            with VideoWriter(video, fps=settings.fps, crf=settings.crf) as writer:
                for batch in batches:  # frames go to the encoder as they are rendered
                    writer.write_many(batch.rgb_FHW3.cpu().numpy())
            info = clip_info(clip, settings)
            members.append((f"{clip.key}.json", (json.dumps(info, indent=1) + "\n").encode()))
            members.append((f"{clip.key}.mp4", video))
            if progress:
                log.info("rendered %s: %s", clip.key, clip.prompt)
        # Sidecars first, the zip (what readers look for) last: a shard with a zip is complete.
        write_camera_sidecar(
            camera_npz,
            [c.key for c in clips],
            [c.path.c2w_F44 for c in clips],
            [c.path.intrinsics_F4 for c in clips],
        )
        write_json(scale_json, {c.key: {"median": 1.0} for c in clips})
        write_zip(raw_zip, members)
