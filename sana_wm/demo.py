"""Model-free demos: render a camera path through a procedural world, with the action HUD on top."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sana_wm.camera import default_intrinsics
from sana_wm.utils.video_io import VideoWriter, write_sidecar
from sana_wm.viz.overlay import HUD_KEY_LABELS, apply_overlay
from sana_wm.worlds import render_checker_ground


def render_path_video(
    c2w_F44: np.ndarray,
    out_path: str | os.PathLike[str],
    *,
    height: int = 704,
    width: int = 1280,
    fps: float = 16,
    intrinsics_F4: np.ndarray | None = None,
    overlay: bool = True,
    key_labels: tuple[str, ...] = HUD_KEY_LABELS["v1"],
    progress: bool = True,
    settings: dict[str, Any] | None = None,
) -> Path:
    """Fly ``c2w_F44`` over the checkered ground and write an H.264 mp4 plus its JSON sidecar.

    One frame per pose, rendered and encoded one at a time (constant memory). ``intrinsics_F4`` are
    ``[fx, fy, cx, cy]`` per frame in pixels of the ``height`` x ``width`` frames; None = the default 60 deg
    horizontal FOV. The sidecar (``<out>.json``) records the trajectory, intrinsics and settings;
    it is written only after the video was renamed into place.

    Returns:
        The path of the written video.
    """
    if intrinsics_F4 is None:
        intrinsics_F4 = np.repeat(default_intrinsics((height, width))[None], len(c2w_F44), axis=0)
    frames: Iterator[np.ndarray] = (
        render_checker_ground(c2w_44, intrinsics_4, height, width)
        for c2w_44, intrinsics_4 in tqdm(
            zip(c2w_F44, intrinsics_F4, strict=True),
            total=len(c2w_F44),
            desc="render",
            unit="frame",
            disable=not progress,
            leave=False,
        )
    )
    if overlay:
        frames = apply_overlay(frames, c2w_F44, key_labels=key_labels)
    out_path = Path(out_path)
    with VideoWriter(out_path, fps=fps) as writer:
        writer.write_many(frames)
    write_sidecar(
        out_path.with_suffix(".json"),
        c2w=c2w_F44,
        intrinsics=intrinsics_F4,
        settings={
            "world": "checker_ground",
            "height": height,
            "width": width,
            "fps": fps,
            "action_overlay": overlay,
            **(settings or {}),
        },
        seed=None,
    )
    return out_path
