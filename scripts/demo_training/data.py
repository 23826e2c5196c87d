"""Training data of the demo model: procedural clips rendered on the GPU and in CPU worker processes, their
four symmetry variants, and the in-memory latent dataset the trainer reads.

Shape letters: ``F`` pixel frames, ``H``/``W`` pixels, ``N`` samples, ``C`` latent channels, ``T`` latent
frames, ``h``/``w`` latent grid.

Variants: a static world seen along a camera path is equally valid mirrored left-right (world and camera
mirrored in x: ``c2w' = S·c2w·S`` with ``S = diag(-1, 1, 1, 1)``, principal point ``cx' = W - 1 - cx`` for
the flipped pixel columns) and played backwards (poses in reverse order). Both are exact: the flipped frames
are the view of the mirror-image world (geometry, textures and sun mirrored) from the mirrored cameras, and
a static world looks the same whichever way the path is walked.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult

import numpy as np
import torch
from torch import Tensor

from sana_wm.camera import action_to_c2w, prepare_camera
from sana_wm.inference.demo_model import centred_intrinsics, null_text
from sana_wm.worlds import ClipSettings, World, make_clip, render, sample_world

log = logging.getLogger("sana_wm")

MIRROR_X = np.diag([-1.0, 1.0, 1.0, 1.0])
VARIANTS = ((False, False), (True, False), (False, True), (True, True))  # (mirrored, reversed)


@dataclass(frozen=True)
class RenderedClip:
    """Frames ``(F, H, W, 3)`` uint8 on the CPU with their cameras (c2w ``(F, 4, 4)``, intrinsics ``(F, 4)``
    in pixels)."""

    key: str
    frames_FHW3: Tensor
    c2w_F44: np.ndarray
    intrinsics_F4: np.ndarray


def clip_settings(height: int, width: int, num_frames: int, seed: int, shadows: bool) -> ClipSettings:
    return ClipSettings(num_frames=num_frames, height=height, width=width, seed=seed, shadows=shadows)


def render_clip(settings: ClipSettings, index: int, device: str | torch.device = "cpu") -> RenderedClip:
    """Draw clip ``index`` of ``settings`` (:func:`sana_wm.worlds.make_clip`) and render all its frames."""
    clip = make_clip(settings, index)
    frames = render(
        clip.world,
        clip.path.c2w_F44,
        clip.path.intrinsics_F4,
        settings.height,
        settings.width,
        shadows=settings.shadows,
        device=device,
        # ~15 frames per batch on a GPU; the CPU default keeps a worker's peak memory near 1 GB.
        rays_per_batch=1 << 20 if torch.device(device).type == "cuda" else 1 << 18,
    ).rgb_FHW3.cpu()
    return RenderedClip(clip.key, frames, clip.path.c2w_F44, clip.path.intrinsics_F4)


def _render_in_worker(settings: ClipSettings, index: int) -> tuple[int, np.ndarray]:
    return index, render_clip(settings, index).frames_FHW3.numpy()


def _init_worker() -> None:
    torch.set_num_threads(1)


class CpuRenderPool:
    """Renders clips ``first_index, first_index + 1, ...`` in ``workers`` processes (one thread each) while
    the main process uses the GPU; :meth:`harvest` collects what is done, :meth:`stop` kills the workers.

    A clip whose worker fails is logged and skipped (a lost CPU clip must not end a run)."""

    def __init__(self, settings: ClipSettings, first_index: int, workers: int, max_clips: int) -> None:
        self.settings, self.next_index, self.workers = settings, first_index, workers
        self.remaining = max_clips
        self.pending: list[AsyncResult] = []
        self.pool = None
        if workers > 0:
            self.pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker)
            self._top_up()

    def _top_up(self) -> None:
        while self.pool is not None and self.remaining > 0 and len(self.pending) < 2 * self.workers:
            self.pending.append(self.pool.apply_async(_render_in_worker, (self.settings, self.next_index)))
            self.next_index += 1
            self.remaining -= 1

    def harvest(self) -> list[RenderedClip]:
        """The clips finished since the last call, in index order."""
        done = [r for r in self.pending if r.ready()]
        self.pending = [r for r in self.pending if not r.ready()]
        results = []
        for result in done:
            try:
                results.append(result.get())
            except Exception as err:
                log.warning("CPU render failed: %s", err)
        clips = []
        for index, frames in sorted(results, key=lambda r: r[0]):
            clip = make_clip(self.settings, index)
            path = clip.path
            clips.append(RenderedClip(clip.key, torch.from_numpy(frames), path.c2w_F44, path.intrinsics_F4))
        self._top_up()
        return clips

    def stop(self) -> list[RenderedClip]:
        """Collect the finished clips, then terminate the workers (unfinished clips are dropped)."""
        self.remaining = 0
        clips = self.harvest()
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None
        self.pending = []
        return clips


def auto_workers(requested: int) -> int:
    """Worker processes for CPU rendering: ``requested``, or all cores but three (main process, data)."""
    return requested if requested >= 0 else max(0, (os.cpu_count() or 1) - 3)


def render_for(
    settings: ClipSettings, start: int, seconds: float, max_clips: int, device: str | torch.device
) -> list[RenderedClip]:
    """Render clips ``start, start + 1, ...`` on ``device`` until ``seconds`` have passed (at least one)."""
    begin, clips = time.perf_counter(), []
    while len(clips) < max_clips and (not clips or time.perf_counter() - begin < seconds):
        clips.append(render_clip(settings, start + len(clips), device))
    return clips


def variant(clip: RenderedClip, mirrored: bool, reversed_: bool) -> tuple[Tensor, np.ndarray, np.ndarray]:
    """One symmetry variant of a clip (module docstring): frames ``(F, H, W, 3)``, c2w, intrinsics."""
    frames, c2w, intrinsics = clip.frames_FHW3, clip.c2w_F44.astype(np.float64), clip.intrinsics_F4.copy()
    if mirrored:
        width = frames.shape[2]
        frames = frames.flip(2)
        c2w = MIRROR_X @ c2w @ MIRROR_X
        intrinsics = intrinsics.astype(np.float64)
        intrinsics[:, 2] = width - 1 - intrinsics[:, 2]
    if reversed_:
        frames, c2w, intrinsics = frames.flip(0), c2w[::-1].copy(), intrinsics[::-1].copy()
    return frames, c2w.astype(np.float32), intrinsics.astype(np.float32)


def to_video(frames_BFHW3: Tensor, device: str | torch.device) -> Tensor:
    """uint8 frames -> float32 ``(B, 3, F, H, W)`` in [-1, 1] on ``device`` (``x / 127.5 - 1``)."""
    video = frames_BFHW3.to(device, non_blocking=True).permute(0, 4, 1, 2, 3).float()
    return video / 127.5 - 1.0


class LatentClips:
    """The DiT's training set held in memory (a :class:`sana_wm.train.TrainingDataset`).

    Sample ``i``: normalised ``latents`` (C, T, h, w), ``camera_conditions`` (T, 20), ``chunk_plucker``
    (48, T, h, w) and the null caption of :func:`sana_wm.inference.demo_model.null_text` (``text`` (1, D),
    ``text_mask`` (1,)), all float32 / int64 CPU tensors.
    """

    def __init__(
        self, latents_NCThw: Tensor, camera_NT20: Tensor, plucker_NCThw: Tensor, caption_channels: int
    ):
        self.latents, self.camera, self.plucker = latents_NCThw, camera_NT20, plucker_NCThw
        text, mask = null_text(caption_channels)
        self.text, self.mask = text[0], mask[0]

    def __len__(self) -> int:
        return self.latents.shape[0]

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {
            "latents": self.latents[index],
            "camera_conditions": self.camera[index],
            "chunk_plucker": self.plucker[index],
            "text": self.text,
            "text_mask": self.mask,
        }


def camera_tensors(
    c2w_F44: np.ndarray, intrinsics_F4: np.ndarray, height: int, width: int
) -> tuple[Tensor, Tensor]:
    """``camera_conditions`` (T, 20) and ``chunk_plucker`` (48, T, h, w), as the pipeline builds them."""
    return prepare_camera(c2w_F44, intrinsics_F4, height, width)


def demo_world(
    seed: tuple[int, int], action: str, mapping: str, height: int, width: int
) -> tuple[World, np.ndarray, np.ndarray]:
    """The held-out world of the bundled first frame, built around the default action's path.

    Returns the world, the path's c2w ``(F, 4, 4)`` and the intrinsics ``(F, 4)`` (``DEMO_HFOV_DEG``).
    """
    c2w = action_to_c2w(action, mapping=mapping)
    world = sample_world(np.random.default_rng(list(seed)), c2w)
    intrinsics = np.repeat(centred_intrinsics(height, width)[None], len(c2w), axis=0)
    return world, c2w, intrinsics
