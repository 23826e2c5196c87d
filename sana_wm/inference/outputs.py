"""Writing a generation to disk: the mp4 (with the action HUD), its JSON sidecar, the latents, the trajectory.

Every file is written through :func:`sana_wm.utils.atomic.atomic_output` (the mp4 by :class:`VideoWriter`),
so an interrupted or failed run leaves no partial file; :func:`check_output_path` refuses an unusable
output folder or name before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sana_wm.errors import InputError
from sana_wm.inference.pipeline import GenerationOutput
from sana_wm.utils.atomic import MAX_NAME_BYTES, atomic_output, check_output_folder
from sana_wm.utils.video_io import VideoWriter


@dataclass(frozen=True, kw_only=True)
class OutputSpec:
    """Where and how a generation is written: ``<folder>/<name>.mp4`` + ``.json`` at ``fps``."""

    folder: Path
    name: str = "output"
    fps: float = 16.0
    overlay: bool = True
    action_mapping: str = "v1"
    save_latents: bool = False
    save_stage1: bool = False
    flag: str = "--output_dir"  # how the user named the folder, for errors
    frames_requested: int | None = None  # the frame count asked for (the sidecar records it)


def check_output_path(folder: Path, name: str, *, flag: str = "--output_dir") -> None:
    """Refuse, before any work, a folder that cannot hold the outputs or a name that is not a file stem."""
    if not name or "/" in name or "\0" in name or name in (".", "..") or len(name.encode()) > MAX_NAME_BYTES:
        raise InputError(f"--name: {name[:40]!r}{'...' if len(name) > 40 else ''} is not a file name stem")
    check_output_folder(folder, flag)


def write_video(path: Path, video: GenerationOutput, spec: OutputSpec) -> None:
    """Decode ``video`` into an H.264 mp4, with the HUD of its own poses unless ``spec.overlay`` is off."""
    frames = iter(video.frames)
    if spec.overlay:
        from sana_wm.viz.overlay import HUD_KEY_LABELS, apply_overlay

        frames = apply_overlay(frames, video.c2w, key_labels=HUD_KEY_LABELS[spec.action_mapping])
    with VideoWriter(path, fps=spec.fps) as writer:
        writer.write_many(frames)


def save_latents(path: Path, video: GenerationOutput, *, seed: int) -> None:
    """The latents ``video.frames`` decode from, as ``latents`` ``(1, C, T, h, w)`` in a safetensors file."""
    from safetensors.torch import save_file

    metadata = {
        "format": "sana-wm-latents",
        "layout": "BCThw",
        "normalised": "true",
        "seed": str(seed),
        "stage": "stage1" if video.stage1 is None else "refined",
    }
    with atomic_output(path) as tmp:
        save_file({"latents": video.latents.contiguous()}, str(tmp), metadata=metadata)


def save_trajectory(folder: Path, c2w_F44: np.ndarray, title: str | None) -> tuple[Path, Path]:
    """``trajectory.npy`` (the poses) and ``trajectory.png`` (their picture) in ``folder``."""
    from sana_wm.viz.trajectory_plot import save_trajectory as save

    npy, png = folder / "trajectory.npy", folder / "trajectory.png"
    save(c2w_F44, npy, png, title=title)
    return npy, png
